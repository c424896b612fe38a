"""A session's saved preview grids as a time-lapse: the newest is shown first and left/right step
through the others (`samples/step_*.png`, frozen row over adapted row). The images are drawn by
`PixelImage` (real pixels where the terminal can), which loads and scales each file on its own
thread; this widget only keeps the list and the position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from nada_tui.widgets.pixel_image import PixelImage


def frames_of(info: Any) -> list[tuple[int | None, Path]]:
    """(step, file) of each saved preview grid of a session, oldest first; its `grid.png` alone
    when it kept no samples. Reads the folder: call it off the UI thread."""
    from engine import sessions
    from engine.video import sample_step

    files = sessions.samples(info.path)
    if not files and (info.path / sessions.GRID_FILE).exists():
        return [(None, info.path / sessions.GRID_FILE)]
    return [(sample_step(f), f) for f in files]


class Timelapse(Vertical):
    """Text (`update`) or a session's frames (`show_frames`); `step(±1)` moves through the frames."""

    DEFAULT_CSS = """
    Timelapse { height: 1fr; }
    Timelapse .timelapse-caption { height: 1; color: $text-muted; }
    Timelapse .timelapse-message { height: 1fr; }
    """

    def __init__(self, text: Any = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._text = text
        self.frames: list[tuple[int | None, Path]] = []
        self.index = 0

    def compose(self) -> ComposeResult:
        yield Static("", classes="timelapse-caption")
        yield Static(self._text, classes="timelapse-message")
        yield PixelImage(align="left")

    def on_mount(self) -> None:
        self._mode(images=False)

    def _mode(self, images: bool) -> None:
        self.query_one(".timelapse-caption").display = images
        self.query_one(PixelImage).display = images
        self.query_one(".timelapse-message").display = not images

    def update(self, text: Any) -> None:
        """Show text instead of frames (loading, a damaged session, no preview yet)."""
        self.frames = []
        self.query_one(PixelImage).show(None)
        self.query_one(".timelapse-message", Static).update(text)
        self._mode(images=False)

    def show_frames(self, frames: list[tuple[int | None, Path]]) -> None:
        """Frames oldest first; the newest is shown."""
        self.frames = list(frames)
        self.index = len(self.frames) - 1
        self._mode(images=True)
        self._draw()

    def step(self, delta: int) -> None:
        if self.frames:
            self.index = max(0, min(len(self.frames) - 1, self.index + delta))
            self._draw()

    def _draw(self) -> None:
        step, path = self.frames[self.index]
        caption = Text.assemble(
            ("step " + (str(step) if step is not None else "final"), "bold"),
            (f"  {self.index + 1}/{len(self.frames)}", ""),
            ("   \u2190/\u2192 time-lapse" if len(self.frames) > 1 else "", "dim"),
        )
        self.query_one(".timelapse-caption", Static).update(caption)
        self.query_one(PixelImage).show(path)
