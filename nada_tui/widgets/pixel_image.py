"""The one way the app draws an image: `PixelImage` holds a PIL image (or a PNG path) and draws it
scaled to fit its box with the renderer `nada_tui.graphics` chose at start-up (the Kitty graphics
protocol, Sixel, or half blocks, the fallback everywhere). The previews, the zoom, the compare view,
the target-image thumbnails and the time-lapse all draw through it.

Scaling and encoding (the costly part: a Sixel of a large tile takes ~0.2 s) run on a thread worker
that only posts the result back; the UI thread only places what is ready. Half blocks are finished as
Strips, not rendered through Textual's renderable pipeline (a preview of eight 18 x 9 tiles cost the UI
thread ~42 ms that way), and small half-block tiles are made on the UI thread itself (see
INLINE_CELLS): while training on a CPU every millisecond the UI spends is taken from the trainer.
Upscaling is by a whole factor with nearest neighbour, so each generated pixel is a crisp square block
(what you judge is what the model made); larger images are shrunk with Lanczos. Sixel and Kitty images
are padded to whole cells with transparent pixels, so the cell background shows around them (a padding
in the widget's own colour showed as a grey strip where the terminal quantises text colours).
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
from textual.dom import NoScreen
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from nada_tui import graphics

# Half-block images up to this many cells are made on the UI thread, in the frame that shows them:
# an 18x9 tile takes ~0.6 ms, less than a thread worker costs the UI thread (a thread, three state
# messages, a Ready, and a frame of its own). Larger ones (a zoom: 76x38 takes ~10 ms) go to a thread.
INLINE_CELLS = 400
# A control code Rich and Textual treat as zero cells wide, so escape data never shifts the layout.
_ZERO_WIDTH = ((ControlType.CURSOR_FORWARD, 0),)


def box_rows(rows: int) -> int:
    """The height of a PixelImage that shows an image `rows` cells tall: a Sixel image is drawn from
    the row below it (see PixelImage.render_lines), so it needs one more."""
    return rows + (1 if graphics.current().renderer == "sixel" else 0)


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
    # Pad to whole cells with transparent pixels, so the image covers its cells exactly, hugs the side it
    # is aligned to, and the cell background shows in the padding.
    canvas = Image.new("RGBA", (cells[0] * pw, cells[1] * ph), (0, 0, 0, 0))
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
        self._prepare(self._token, *self.source, w, h, g)

    def _prepare_now(
        self, source: Any, box: Any, cols: int, rows: int, g: graphics.Graphics
    ) -> Prepared | None:
        try:
            return prepare(source, box, cols, rows, g, self.align)
        except Exception:  # an unreadable file or an odd image: the placeholder stays, nothing breaks
            return None

    @work(thread=True, group="pixels", exit_on_error=False, description="scale a preview")
    def _prepare(
        self, token: int, source: Any, box: Any, cols: int, rows: int, g: graphics.Graphics
    ) -> None:
        self.post_message(self.Ready(token, self._prepare_now(source, box, cols, rows, g)))

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
