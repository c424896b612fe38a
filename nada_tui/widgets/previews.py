"""The train screen's previews: each seed's frozen ("before") and adapted ("after") image side by side,
as large as the panel allows, drawn by `PixelImage` (nada_tui/widgets/pixel_image.py: Kitty, Sixel or
half blocks); a zoom shows one seed filling the panel.
"""

from __future__ import annotations

import math
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Static

from nada_tui import graphics
from nada_tui.widgets.pixel_image import PixelImage, fit
from nada_tui.widgets.status_bar import StatusBar

GUTTER = 2  # columns between pairs
CAPTION_ROWS = 1  # each pair's "seed N" line


def pair_columns(n: int, cols: int, rows: int, per_cell: tuple[int, int], tile: tuple[int, int]) -> int:
    """How many seed pairs (before | after) per grid row make the tiles largest in a `cols` x `rows`
    cell area."""
    best, best_c = -1.0, 1
    pw, ph = per_cell
    for c in range(1, max(n, 1) + 1):
        r = math.ceil(n / c)
        pair_w = (cols - (c - 1) * GUTTER) // c
        tile_w, tile_h = (pair_w - 1) // 2, rows // r - CAPTION_ROWS
        if tile_w <= 0 or tile_h <= 0:
            continue
        w, _ = fit(tile, (tile_w * pw, tile_h * ph))
        if w >= best:  # a tie goes to more columns: fewer rows of pairs to scan
            best, best_c = w, c
    return best_c


def fmt_scale(scale: float) -> str:
    """How big the generated pixels are shown: "4x" (each pixel a 4 x 4 block) or "0.42x"."""
    return f"{scale:.0f}x" if scale >= 1 else f"{scale:.2f}x"


class PairView(Vertical):
    """One seed: its caption over the frozen image (left) and the adapted one (right)."""

    DEFAULT_CSS = """
    PairView { height: 1fr; width: 1fr; }
    PairView .pair-caption { height: 1; color: $text-muted; }
    PairView Horizontal { height: 1fr; }
    PairView .after { margin-left: 1; }
    """

    def __init__(self, index: int, caption: str = "") -> None:
        super().__init__(classes="pair")
        self.index = index
        self._initial_caption = caption  # shown until the first images come
        # What to show, kept until the children exist (a pair is mounted after the panel asks).
        self._shown: tuple[str, Any, Any, tuple[Any, Any]] | None = None
        self._limit: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._initial_caption, classes="pair-caption")
        with Horizontal():
            yield PixelImage(align="right", classes="before")
            yield PixelImage(align="left", classes="after")

    def on_mount(self) -> None:
        self._apply()

    def show(self, caption: str, frozen: Any, adapted: Any, boxes: tuple[Any, Any]) -> None:
        self._shown = (caption, frozen, adapted, boxes)
        self._apply()

    def _caption(self, scale: float | None) -> None:
        if self._shown is not None:
            scale_text = "" if scale is None else f"  {fmt_scale(scale)}"
            caption = self.query_one(".pair-caption", Static)
            if str(caption.content) != self._shown[0] + scale_text:  # Static.update re-lays out the screen
                caption.update(self._shown[0] + scale_text)

    @on(PixelImage.Shown, ".after")
    def _after_shown(self, message: PixelImage.Shown) -> None:
        message.stop()
        self._caption(message.scale)

    def set_limit(self, limit: tuple[int, int]) -> None:
        self._limit = limit
        for image in self.query(PixelImage):
            image.set_limit(limit)

    def _apply(self) -> None:
        images = list(self.query(PixelImage))
        if self._shown is None or len(images) != 2:
            return
        caption, frozen, adapted, boxes = self._shown
        self._caption(images[1].prepared.scale if images[1].prepared is not None else None)
        for image, source, box in zip(images, (frozen, adapted), boxes, strict=True):
            image.limit = self._limit
            image.show(source, box)


class PreviewPanel(Vertical):
    """The seeds of a preview, before | after each, in as many columns as makes them largest.
    `zoom_to(i)` shows seed i alone; `step_zoom(±1)` moves to the next or previous seed."""

    DEFAULT_CSS = """
    PreviewPanel { height: 1fr; min-height: 4; }
    PreviewPanel #preview-caption { height: 1; }
    PreviewPanel #preview-grid { height: 1fr; grid-gutter: 0 2; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.step: int | None = None
        self.seeds: tuple[int, ...] = ()
        self.zoom: int | None = None
        self._rows: tuple[Any, Any] | None = None
        self._tile: tuple[int, int] | None = None  # one image's pixels: its shape picks the columns
        self._text = "previews appear as training runs"
        self._grid_shape: tuple[int, int, int] | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(id="preview-caption")  # changes with every preview: a repaint, not a relayout
        yield Grid(id="preview-grid")

    def on_mount(self) -> None:
        self.border_subtitle = self._subtitle()
        self.query_one("#preview-caption", StatusBar).set_text(Text(self._text, style="dim"))

    def _subtitle(self) -> str:
        """The renderer, and where half blocks get fewer than truecolor colours, what to do (said here, under
        the posterized previews, rather than in a toast that covered them)."""
        g = graphics.current()
        colours = self.app.console.color_system
        few = "" if g.renderer != "halfblocks" or colours == "truecolor" else \
            f" ({colours or 'no'} colours: try COLORTERM=truecolor)"
        return f"{g.renderer}{few} · z zoom"

    def show(self, step: int, frozen: Any, adapted: Any, seeds: tuple[int, ...]) -> None:
        """A preview: `frozen` and `adapted` are PIL rows of one tile per seed."""
        self.step, self._rows = step, (frozen, adapted)
        self._tile = (frozen.width // max(len(seeds), 1), frozen.height)
        if seeds != self.seeds:
            self._mount_pairs(seeds)
            self.call_after_refresh(self._draw)
        else:
            self._draw()

    def expect(self, seeds: tuple[int, ...], text: str) -> None:
        """Lay out empty pairs for the seeds of a run that is loading, with `text` as the caption until
        its first preview. The first preview then only fills them in: mounting and laying out the grid
        cost the UI thread ~140 ms, which otherwise fell on the first steps of training."""
        self.show_text(text)
        if seeds:
            self._tile = (1, 1)  # until the first image says otherwise: StyleGAN2 models are mostly square
            self._mount_pairs(seeds)
            self.call_after_refresh(self._arrange)

    def _mount_pairs(self, seeds: tuple[int, ...]) -> None:
        self.seeds = seeds
        self.zoom = None if self.zoom is None else min(self.zoom, len(seeds) - 1)
        grid = self.query_one("#preview-grid", Grid)
        grid.remove_children()
        grid.mount_all([PairView(i, f"seed {seed}") for i, seed in enumerate(seeds)])

    def show_text(self, text: str) -> None:
        self.step, self.seeds, self._rows, self._tile, self.zoom = None, (), None, None, None
        self._text = text
        self.query_one("#preview-grid", Grid).remove_children()
        self.query_one("#preview-caption", StatusBar).set_text(Text(text, style="dim"))

    def zoom_to(self, index: int | None) -> None:
        self.zoom = None if index is None or not self.seeds else index % len(self.seeds)
        self._draw()

    def step_zoom(self, delta: int) -> None:
        if self.zoom is not None:
            self.zoom_to(self.zoom + delta)

    def on_resize(self) -> None:
        self._arrange()

    def _arrange(self) -> None:
        """Columns for the pairs; in a zoom, the one pair alone."""
        pairs = list(self.query(PairView))
        if not pairs or self._tile is None:
            return
        grid = self.query_one("#preview-grid", Grid)
        for pair in pairs:
            pair.display = self.zoom is None or pair.index == self.zoom
        w, h = self.content_size.width, self.content_size.height - 1  # less the caption line
        if self.zoom is not None:
            columns, rows = 1, 1
        else:
            columns = pair_columns(len(pairs), w, h, graphics.current().pixels_per_cell, self._tile)
            rows = math.ceil(len(pairs) / columns)
        row_h = max(1, h // rows)
        if (columns, rows, row_h) != self._grid_shape:  # new styles re-lay out the screen: only on a change
            self._grid_shape = (columns, rows, row_h)
            grid.styles.grid_size_columns = columns
            grid.styles.grid_size_rows = rows
            grid.styles.grid_rows = str(row_h)  # equal rows (the rest stays empty below)
        # One tile size for every image, so that the seeds compare at the same scale.
        pair_w = (w - (columns - 1) * GUTTER) // columns
        limit = (max(1, (pair_w - 1) // 2), max(1, row_h - CAPTION_ROWS))
        for pair in pairs:
            pair.set_limit(limit)

    def _draw(self) -> None:
        if self._rows is None:
            return
        frozen, adapted = self._rows
        n = max(len(self.seeds), 1)
        self._arrange()
        for pair in self.query(PairView):
            i = pair.index
            if i >= len(self.seeds):
                continue
            tw = frozen.width // n
            boxes = ((i * tw, 0, (i + 1) * tw, frozen.height), (i * tw, 0, (i + 1) * tw, adapted.height))
            caption = f"seed {self.seeds[i]}"
            if self.zoom is not None:
                caption += f"  ({i + 1}/{n})   \u2190/\u2192 seed   z or Esc: all seeds"
            pair.show(caption, frozen, adapted, boxes)
        cap = Text.assemble(("before (frozen)", "bold"), " | ", ("after (adapted)", "bold"))
        if self.step is not None:
            cap.append(f"   step {self.step}", style="dim")
        self.query_one("#preview-caption", StatusBar).set_text(cap)
