"""The sessions screen's progress of a video export: which video and a bar of its frames. Hidden while
no export runs; the screen's worker thread reports through `ExportProgress.Advanced` messages."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, ProgressBar


class ExportProgress(Vertical):
    DEFAULT_CSS = """
    ExportProgress { height: auto; display: none; padding: 0 1; }
    ExportProgress.-busy { display: block; }
    """

    class Advanced(Message):
        """`done` of `total` frames of the `kind` video are encoded."""

        def __init__(self, kind: str, done: int, total: int) -> None:
            super().__init__()
            self.kind, self.done, self.total = kind, done, total

    class Finished(Message):
        """The export ended: the files written, or the error that stopped it (then `paths` is empty)."""

        def __init__(self, session_name: str, paths: list[str], error: str | None) -> None:
            super().__init__()
            self.session_name, self.paths, self.error = session_name, paths, error

    def compose(self) -> ComposeResult:
        yield Label("", id="export-progress-text")
        yield ProgressBar(id="export-progress-bar", show_eta=False)

    @property
    def busy(self) -> bool:
        return self.has_class("-busy")

    def begin(self, text: str) -> None:
        self.add_class("-busy")
        self.query_one("#export-progress-text", Label).update(text)
        self.query_one(ProgressBar).update(total=None, progress=0)

    def advance(self, kind: str, done: int, total: int) -> None:
        self.query_one("#export-progress-text", Label).update(f"Exporting the {kind} video: frame {done}/{total}")
        self.query_one(ProgressBar).update(total=total, progress=done)

    def end(self) -> None:
        self.remove_class("-busy")
