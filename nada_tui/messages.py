"""Textual messages that carry engine events and loader progress from worker threads to the UI.

Worker threads only ever call `post_message` with these (non-blocking, thread-safe); handlers buffer
the data and the 4 Hz redraw timer draws it.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class EngineEvent(Message):
    """One event from the training worker (engine.events.*), tagged with its session."""

    def __init__(self, session_id: str, event: Any) -> None:
        super().__init__()
        self.session_id = session_id
        self.event = event


class PreviewRendered(Message):
    """Preview renderables, built on the training thread so the UI only has to place them."""

    def __init__(self, session_id: str, step: int, frozen: Any, adapted: Any, seeds: tuple[int, ...]) -> None:
        super().__init__()
        self.session_id = session_id
        self.step = step
        self.frozen = frozen
        self.adapted = adapted
        self.seeds = seeds


class LoadProgress(Message):
    """Model download/load progress (backend.Progress)."""

    def __init__(self, progress: Any) -> None:
        super().__init__()
        self.progress = progress


class RunReady(Message):
    """Models loaded and the trainer built: the run can start."""

    def __init__(self, run: Any) -> None:
        super().__init__()
        self.run = run


class RunLoadFailed(Message):
    def __init__(self, run: Any, message: str) -> None:
        super().__init__()
        self.run = run
        self.message = message


class SessionsChanged(Message):
    """A session was created, renamed, deleted or finished: lists should refresh."""
