"""Previews with real pixels: each seed's frozen ("before") and adapted ("after") image side by side,
drawn with the Kitty graphics protocol, Sixel, or half blocks (`nada_tui.graphics` decides
at start-up), as large as the panel allows; a zoom shows one seed filling the panel.

`PixelImage` holds a PIL image (or a PNG path) and draws it scaled to fit its box. Scaling and encoding
(the costly part: a Sixel of a large tile takes ~0.2 s) run on a thread worker that only posts the
result back; the UI thread only places what is ready. Half blocks are finished as Strips, not rendered
through Textual's renderable pipeline (a preview of eight 18 x 9 tiles cost the UI thread ~42 ms that
way), and small half-block tiles are made on the UI thread itself (see INLINE_CELLS): while training
on a CPU every millisecond the UI spends is taken from the trainer. Upscaling is by
a whole factor with nearest neighbour, so each generated pixel is a crisp square block (what you judge
is what the model made); larger images are shrunk with Lanczos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from rich.color import Color, ColorType
from rich.color_triplet import ColorTriplet
from rich.control import Control
from rich.padding import Padding
from rich.segment import ControlType, Segment
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.dom import NoScreen
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from nada_tui import graphics
from nada_tui.widgets.status_bar import StatusBar

GUTTER = 2  # columns between pairs
CAPTION_ROWS = 1  # each pair's "seed N" line
# Half-block images up to this many cells are made on the UI thread, in the frame that shows them:
# an 18x9 tile takes ~0.6 ms, less than a thread worker costs the UI thread (a thread, three state
# messages, a Ready, and a frame of its own). Larger ones (a zoom: 76x38 takes ~10 ms) go to a thread.
INLINE_CELLS = 400
# A control code Rich and Textual treat as zero cells wide, so escape data never shifts the layout.
_ZERO_WIDTH = ((ControlType.CURSOR_FORWARD, 0),)


def fit(src: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The size `src` is shown at in a `box` (both in pixels): the largest whole multiple when it
    fits at least once, else shrunk to fit with its aspect kept."""
    (sw, sh), (bw, bh) = src, box
    if sw <= 0 or sh <= 0 or bw <= 0 or bh <= 0:
        return 0, 0
    scale = min(bw / sw, bh / sh)
    if scale >= 1:
        k = int(scale)
        return sw * k, sh * k
    return max(1, int(sw * scale)), max(1, int(sh * scale))


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


@dataclass(frozen=True)
class Prepared:
    """An image ready for the terminal: `kind` is the renderer; `cells` the columns and rows it
    covers; `payload` a rich-pixels renderable, a Sixel string, or a textual-image Kitty renderable;
    `scale` the size shown over the source's (for the caption)."""

    kind: str
    cells: tuple[int, int]
    payload: Any
    scale: float


def load(source: Any, box: tuple[int, int, int, int] | None = None) -> Any:
    """A PIL RGB image from an image or a PNG path, cut to `box` (left, top, right, bottom)."""
    from PIL import Image

    if isinstance(source, str | Path):
        with Image.open(source) as img:
            image = img.convert("RGB")
    else:
        image = source if source.mode == "RGB" else source.convert("RGB")
    return image.crop(box) if box is not None else image


def prepare(
    source: Any,
    box: tuple[int, int, int, int] | None,
    cols: int,
    rows: int,
    g: graphics.Graphics,
    align: str = "center",
    background: tuple[int, int, int] = (0, 0, 0),
) -> Prepared | None:
    """Scale and encode an image for a `cols` x `rows` cell box (runs on a thread worker)."""
    from PIL import Image

    image = load(source, box)
    pw, ph = g.pixels_per_cell
    w, h = fit(image.size, (cols * pw, rows * ph))
    if w == 0:
        return None
    method = Image.Resampling.NEAREST if w >= image.width else Image.Resampling.LANCZOS
    scaled = image.resize((w, h), method) if (w, h) != image.size else image
    cells = (math.ceil(w / pw), math.ceil(h / ph))
    scale = w / image.width
    if g.renderer == "halfblocks":
        return Prepared("halfblocks", cells, halfblock_strips(scaled), scale)
    # Pad to whole cells, so the image covers its cells exactly and hugs the side it is aligned to.
    canvas = Image.new("RGB", (cells[0] * pw, cells[1] * ph), background)
    x = {"left": 0, "right": canvas.width - w}.get(align, (canvas.width - w) // 2)
    canvas.paste(scaled, (x, 0))
    if g.renderer == "sixel":
        from nada_tui import sixel

        return Prepared("sixel", cells, sixel.encode(canvas), scale)
    from textual_image.renderable import TGPImage

    # The Kitty renderable sends the PNG on its first draw, then only draws placeholder cells.
    return Prepared("kitty", cells, TGPImage(canvas, width=cells[0], height=cells[1]), scale)


def halfblock_strips(image: Any) -> list[Strip]:
    """An RGB image as rows of half-block cells, one Strip per row of cells, runs of equal cells merged:
    the cells rich-pixels' HalfcellRenderer makes ("\u2584": the lower pixel in the foreground, the upper
    in the background; an odd height stretched to even with nearest neighbour), built from the pixel
    values. rich-pixels writes each cell's colours as text for rich to parse, and on a new preview rich's
    parse cache misses on nearly every cell: ~2.2 ms for a fresh 18 x 9 tile, here ~0.6 ms (see
    tests/test_previews.py for the two side by side)."""
    from PIL import Image

    rgb = image.convert("RGB")
    if rgb.height % 2:
        rgb = rgb.resize((rgb.width, rgb.height + 1), Image.Resampling.NEAREST)
    pixels = np.asarray(rgb)
    strips = []
    for y in range(0, rgb.height, 2):
        segments: list[Segment] = []
        run: tuple[int, ...] | None = None
        count = 0
        for upper, lower in zip(pixels[y].tolist(), pixels[y + 1].tolist(), strict=True):
            cell = (*lower, *upper)
            if cell != run:
                if run is not None:
                    segments.append(Segment("\u2584" * count, _halfcell_style(run)))
                run, count = cell, 0
            count += 1
        if run is not None:
            segments.append(Segment("\u2584" * count, _halfcell_style(run)))
        strips.append(Strip(segments, rgb.width))
    return strips


_HEX = [f"{i:02x}" for i in range(256)]


@lru_cache(maxsize=1 << 16)
def _truecolor(r: int, g: int, b: int) -> Color:
    """Color.from_rgb(r, g, b), without formatting its hex name anew for every colour."""
    return Color(f"#{_HEX[r]}{_HEX[g]}{_HEX[b]}", ColorType.TRUECOLOR, triplet=ColorTriplet(r, g, b))


def _halfcell_style(cell: tuple[int, ...]) -> Style:
    return Style.from_color(_truecolor(*cell[:3]), _truecolor(*cell[3:]))


class PixelImage(Widget):
    """One image, scaled to fit the widget, drawn with the current renderer."""

    DEFAULT_CSS = """
    PixelImage { width: 1fr; height: 1fr; padding: 0; border: none; }
    """

    class Ready(Message):
        def __init__(self, token: int, prepared: Prepared | None) -> None:
            super().__init__()
            self.token = token
            self.prepared = prepared

    class Shown(Message):
        """A new image is on screen at `scale` times its pixels (bubbles up for captions)."""

        def __init__(self, image: PixelImage, scale: float | None) -> None:
            super().__init__()
            self.image = image
            self.scale = scale

        @property
        def control(self) -> PixelImage:
            return self.image

    def __init__(
        self, align: str = "center", placeholder: str = "", *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.align = align
        self.placeholder = placeholder
        self.source: tuple[Any, tuple[int, int, int, int] | None] | None = None
        self.prepared: Prepared | None = None
        self.limit: tuple[int, int] | None = None  # at most this many cells: pairs share one size
        self._token = 0
        self._busy = False
        self._again = False
        # Half-block lines placed for (prepared, crop, size): a frame asks every widget under the box
        # around what changed for its lines, and the previews sit between the chart and the log, so
        # most frames while training ask for these unchanged lines again. Placing them anew each time
        # cost the UI thread ~280 ms in a 10 s demo run (160x48); kept, ~17 ms.
        self._placed: tuple[Prepared, Region, Size, list[Strip]] | None = None

    def show(self, source: Any, box: tuple[int, int, int, int] | None = None) -> None:
        """Draw `source` (a PIL image or a PNG path), or the part `box` of it; None clears."""
        if source is not None and self.prepared is not None and self.source is not None \
                and self.source[0] is source and self.source[1] == box:
            return  # the very same image (a frozen row comes back unchanged): nothing to redo
        self.source = None if source is None else (source, box)
        if source is None:
            self._token += 1  # whatever is being prepared now is for an image that is gone
            self._set(None)
        else:
            self._request()

    def on_resize(self) -> None:
        self._request()

    def set_limit(self, limit: tuple[int, int] | None) -> None:
        if limit != self.limit:
            self.limit = limit
            self._request()

    def _request(self) -> None:
        w, h = self.content_size
        if self.limit is not None:
            w, h = min(w, self.limit[0]), min(h, self.limit[1])
        if graphics.current().renderer == "sixel":
            h = min(h, self.content_size.height - 1)  # the row below the image carries it (render_lines)
        if self.source is None or w <= 0 or h <= 0:
            return
        g = graphics.current()
        if g.renderer == "halfblocks" and w * h <= INLINE_CELLS:
            self._token += 1  # a preparation still running on a thread is for an older request
            self._set(self._prepare_now(*self.source, w, h, g))
            return
        if self._busy:  # one preparation at a time; the last request wins when it is done
            self._again = True
            return
        self._busy = True
        self._token += 1
        bg = self.background_colors[1].rgb
        self._prepare(self._token, *self.source, w, h, g, bg)

    def _prepare_now(
        self, source: Any, box: Any, cols: int, rows: int, g: graphics.Graphics, bg: tuple[int, int, int] = (0, 0, 0)
    ) -> Prepared | None:
        try:
            return prepare(source, box, cols, rows, g, self.align, bg)
        except Exception:  # an unreadable file or an odd image: the placeholder stays, nothing breaks
            return None

    @work(thread=True, group="pixels", exit_on_error=False, description="scale a preview")
    def _prepare(
        self, token: int, source: Any, box: Any, cols: int, rows: int, g: graphics.Graphics, bg: tuple[int, int, int]
    ) -> None:
        self.post_message(self.Ready(token, self._prepare_now(source, box, cols, rows, g, bg)))

    @on(Ready)
    def _ready(self, message: Ready) -> None:
        message.stop()
        self._busy = False
        if message.token == self._token:
            self._set(message.prepared)
        if self._again:
            self._again = False
            self._request()

    def _set(self, prepared: Prepared | None) -> None:
        old, self.prepared = self.prepared, prepared
        if old is not None and old.kind == "kitty":
            old.payload.cleanup()  # frees the image in the terminal
        self.refresh()
        self.post_message(self.Shown(self, prepared.scale if prepared is not None else None))

    def _left(self, width: int) -> int:
        if self.prepared is None:
            return 0
        free = max(0, self.content_size.width - width)
        return {"left": 0, "right": free}.get(self.align, free // 2)

    def render(self) -> Any:
        p = self.prepared
        if p is None or p.kind != "kitty":
            return Text(self.placeholder if self.source is None else "", style="dim")
        return Padding(p.payload, (0, 0, 0, self._left(p.cells[0])))

    def render_lines(self, crop: Region) -> list[Strip]:
        p = self.prepared
        if p is None or p.kind == "kitty":
            return super().render_lines(crop)
        if p.kind == "halfblocks":
            return self._place_strips(p, crop)
        blank = Strip.blank(crop.width, self.rich_style)
        lines = [blank] * crop.height
        try:
            # Behind a dialog the screen is inactive: drawing pixels would cover the dialog.
            active = self.screen.is_active
        except NoScreen:
            active = False
        image = Region(self._left(p.cells[0]), 0, *p.cells)
        carrier = image.bottom - crop.y  # the line just below the image, which the image never covers
        if active and crop.contains_region(image) and 0 <= carrier < crop.height:
            # The lines over the image go out first and clear its cells; then, at the start of the
            # line below it (the bottom right is where toasts cover), the image is drawn and the
            # cursor put back, so that line's blank cells follow where the terminal expects them.
            region = self.content_region
            x, y = region.x + crop.x, region.y + crop.y + carrier
            lines[carrier] = Strip(
                [
                    Segment(Control.move_to(region.x + image.x, region.y + image.y).segment.text, None, _ZERO_WIDTH),
                    Segment(p.payload, None, _ZERO_WIDTH),
                    Segment(Control.move_to(x, y).segment.text, None, _ZERO_WIDTH),
                    *blank,
                ],
                crop.width,
            )
        return lines

    def notify_style_update(self) -> None:
        self._placed = None  # a new theme or background: place the rows again
        super().notify_style_update()

    def _place_strips(self, p: Prepared, crop: Region) -> list[Strip]:
        """The finished half-block rows at the image's place, cut to `crop` (no rendering here)."""
        size = self.content_size  # where the image sits depends on it
        if self._placed is not None and self._placed[0] is p and self._placed[1:3] == (crop, size):
            return self._placed[3]
        style = self.rich_style
        left = self._left(p.cells[0])
        pad = [Segment(" " * left, style)] if left else []
        rows: list[Strip] = p.payload
        placed = [
            Strip([*pad, *rows[y]], left + rows[y].cell_length).crop_extend(crop.x, crop.right, style)
            if 0 <= y < len(rows) else Strip.blank(crop.width, style)
            for y in range(crop.y, crop.bottom)
        ]
        self._placed = (p, crop, size, placed)
        return placed


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
        g = graphics.current()
        return f"{g.renderer} · z zoom"

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
