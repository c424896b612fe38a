"""The setup form's target-images field: a line of paths (shell-quoted, so a path may hold spaces), a
Browse button and ctrl+o for the picker (`nada_tui/widgets/file_picker.py`), a hint with the count or what
is wrong, and thumbnails of the images as they will train, drawn by `PixelImage` (Sixel, Kitty or half
blocks). Images are read and the sheet of thumbnails built on a thread, a moment after the typing stops;
the form reads the paths from the `#target_images` input."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Button, Input, Label
from textual.worker import get_current_worker

from engine.config import ConfigError, Setting
from engine.target_images import FIELD, describe, load_target_images
from nada_tui import graphics
from nada_tui.widgets.file_picker import ImagePicker
from nada_tui.widgets.pixel_image import PixelImage, box_rows

THUMB_PX = 10  # a thumbnail is THUMB_PX cells wide and THUMB_PX / 2 rows tall
THUMB_ROWS = 2  # rows of thumbnails at most; the hint gives the full count
DEBOUNCE_S = 0.4


def thumbnails(images: list[Any], width_cells: int, per_cell: tuple[int, int] = (1, 2)) -> tuple[Any, int, int]:
    """Square centre crops (what CLIP's preprocessing keeps) of the first images that fit in
    `width_cells` columns and THUMB_ROWS rows, on one sheet with `per_cell` pixels to a cell; returns
    (sheet, columns, rows) in cells. Runs off the UI thread."""
    from PIL import Image, ImageOps

    pw, ph = per_cell
    tw, th = THUMB_PX * pw, THUMB_PX // 2 * ph  # one thumbnail's pixels: THUMB_PX x THUMB_PX / 2 cells
    per_row = max(1, (width_cells + 1) // (THUMB_PX + 1))
    shown = images[: per_row * THUMB_ROWS]
    rows = (len(shown) + per_row - 1) // per_row
    cols = min(per_row, len(shown))
    cells = (cols * (THUMB_PX + 1) - 1, rows * (THUMB_PX // 2 + 1) - 1)
    sheet = Image.new("RGB", (cells[0] * pw, cells[1] * ph), (0, 0, 0))
    for i, img in enumerate(shown):
        tile = ImageOps.fit(img, (min(tw, th), min(tw, th)), Image.Resampling.BOX)
        x = (i % per_row) * (THUMB_PX + 1) * pw + (tw - tile.width) // 2
        sheet.paste(tile, (x, (i // per_row) * (THUMB_PX // 2 + 1) * ph))
    return sheet, *cells


class TargetImagesField(Vertical):
    """Label, paths input (id = the setting's name), Browse button, hint, thumbnails."""

    DEFAULT_CSS = """
    TargetImagesField { height: auto; }
    TargetImagesField .paths-row { height: 1; }
    TargetImagesField .paths-row Input { width: 1fr; }
    TargetImagesField .paths-row Button { width: auto; min-width: 10; margin-left: 1; }
    TargetImagesField #target-thumbs { width: auto; height: auto; }
    """
    BINDINGS = [Binding("ctrl+o", "pick", "Pick target images", id="form.pick_images")]

    def __init__(self, setting: Setting, value: tuple[str, ...]) -> None:
        super().__init__()
        self.setting = setting
        self.value = value
        self._timer: Timer | None = None
        self._shown: str | None = None  # the text whose images the thumbnails show
        self._session_text: str | None = None  # the paths of a session the form was filled from

    def compose(self) -> ComposeResult:
        s = self.setting
        yield Label(f"{s.label} (^O picks; optional)", classes="field-label")
        with Horizontal(classes="paths-row"):
            yield Input(s.format(self.value), id=s.name, placeholder="files or folders: png jpg jpeg webp",
                        tooltip=s.help)
            yield Button("Browse", id="pick-images", compact=True)
        yield Label("", id="target-images-hint", classes="hint")
        yield PixelImage(align="left", id="target-thumbs")

    def on_mount(self) -> None:
        self.reload()

    @property
    def input(self) -> Input:
        return self.query_one(f"#{self.setting.name}", Input)

    # ----- the picker ---------------------------------------------------------------------------
    def action_pick(self) -> None:
        try:
            current = self.setting.parse(self.input.value)
        except ConfigError:
            current = ()
        start = Path(current[0]).expanduser() if current else None
        self.app.push_screen(ImagePicker(start), self._picked)

    @on(Button.Pressed, "#pick-images")
    def _browse(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_pick()

    def _picked(self, paths: list[Path] | None) -> None:
        if paths:
            self.input.value = shlex.join(str(p) for p in paths)  # Input.Changed: thumbnails follow
            self.input.focus()

    # ----- thumbnails -----------------------------------------------------------------------------
    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        if event.input is not self.input:
            return
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_S, self.reload)

    def reload(self, session: bool = False) -> None:
        """Read the images named in the field again. The form calls this with `session` after filling in
        a saved session's settings: that session trains on its own copies, whatever became of these."""
        text = self.input.value
        if session:
            self._session_text = text
        if text == self._shown:
            return
        self._shown = text
        if not text.strip():
            self._show(text, "none: the target prompt alone", None, error=False)
            return
        self.query_one("#target-images-hint", Label).update(Text("reading the images…", style="dim"))
        self._read(text, max(THUMB_PX, self.content_size.width or 40))

    @work(thread=True, exclusive=True, group="target-thumbs", exit_on_error=False)
    def _read(self, text: str, width: int) -> None:
        worker = get_current_worker()
        try:
            images = load_target_images(self.setting.parse(text))
        except ConfigError as exc:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._show, text, str(exc).removeprefix(f"{FIELD}: "), None, True)
            return
        sizes = sorted({t.image.size for t in images}, key=lambda s: s[0] * s[1])
        span = f"{sizes[0][0]}x{sizes[0][1]}" + (f" .. {sizes[-1][0]}x{sizes[-1][1]}" if len(sizes) > 1 else "")
        hint = "\n".join([f"{describe('', len(images))} ({span} px as they train)",
                          *(t.note for t in images if t.note)])
        sheet = thumbnails([t.image for t in images], width, graphics.current().pixels_per_cell)
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, text, hint, sheet, False)

    def _show(self, text: str, hint: str, sheet: tuple[Any, int, int] | None, error: bool) -> None:
        if text != self.input.value:
            return  # typed on meanwhile: a newer read is on its way
        label = self.query_one("#target-images-hint", Label)
        if error and text == self._session_text:
            hint += " (the session keeps copies: resume, fork and retrain use those)"
        label.update(Text(hint, style="bold red") if error else hint)
        thumbs = self.query_one("#target-thumbs", PixelImage)
        thumbs.display = sheet is not None
        if sheet is None:
            thumbs.show(None)
            return
        image, cols, rows = sheet
        thumbs.styles.width, thumbs.styles.height = cols, box_rows(rows)
        self.call_after_refresh(thumbs.show, image)  # at its new size
