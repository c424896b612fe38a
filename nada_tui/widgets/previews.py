"""Previews: the same seeds from the frozen and the adapted generator, side by side, as rich-pixels
half blocks. `build_pixels` runs on the training thread (it is the costly part); the widget only
swaps in renderables that are already built."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual.widgets import Static


def preview_side(width: int, height: int, seeds: int) -> int:
    """Pixels per tile side so that `seeds` tiles fit across `width` cells, and the frozen and the
    adapted rows (half blocks: 2 px per cell row) plus their two captions fit in `height` rows."""
    across = (width - (seeds - 1)) // max(seeds, 1)
    down = height - 2  # side/2 rows each for two rows of tiles
    return max(4, min(across, down) // 2 * 2)


def build_pixels(row: Any, seeds: int, side: int) -> Any:
    """A PIL row image of `seeds` tiles -> a Pixels renderable of side x side px per tile."""
    from PIL import Image
    from rich_pixels import Pixels

    w, h = row.size
    tile_w = w // max(seeds, 1)
    tiles = [row.crop((i * tile_w, 0, (i + 1) * tile_w, h)).resize((side, side), Image.Resampling.BOX)
             for i in range(seeds)]
    gap = 1
    out = Image.new("RGB", (seeds * side + (seeds - 1) * gap, side), (0, 0, 0))
    for i, t in enumerate(tiles):
        out.paste(t, (i * (side + gap), 0))
    return Pixels.from_image(out)


class PreviewPanel(Static):
    DEFAULT_CSS = """
    PreviewPanel { height: 1fr; min-height: 4; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(Text("previews appear as training runs", style="dim"), id=id, classes=classes)
        self.step: int | None = None
        self.seeds: tuple[int, ...] = ()

    def show(self, step: int, frozen: Any, adapted: Any, seeds: tuple[int, ...]) -> None:
        self.step, self.seeds = step, seeds
        seeds_txt = " ".join(str(s) for s in seeds)
        self.update(Group(
            Text.assemble(("before (frozen)", "bold"), (f"  seeds {seeds_txt}", "dim")),
            frozen,
            Text.assemble(("after (adapted)", "bold"), (f"  step {step}", "dim")),
            adapted,
        ))

    def show_text(self, text: str) -> None:
        self.update(Text(text, style="dim"))
