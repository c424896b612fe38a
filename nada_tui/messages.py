"""Every Textual message of the app, in two groups.

From worker threads to the app (posted with `post_message`, thread-safe, never blocking): engine events
wrapped with the token of the run they belong to, model loading progress and outcome.
From screens and widgets to the app (they bubble up): requests. A screen never changes the run itself;
it says what the user asked for, and the app decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.message import Message

from engine.config import TrainConfig
from engine.download import DownloadProgress
from engine.events import Event


# ----- worker threads -> app ---------------------------------------------------------------------
class RunEvents(Message):
    """Engine events (`engine.events.Event`: handlers `match` on their class) of run `token`, in order.
    Batched: once a second while training on the CPU, four times a second on a GPU; a pause, a resume and
    the end of the run are sent at once (see NadaApp._forward)."""

    def __init__(self, token: str, events: tuple[Event, ...]) -> None:
        super().__init__()
        self.token = token
        self.events = events


class PreviewPixels(Message):
    """A preview as PIL images (a row of one tile per seed from each generator); the preview widget
    scales and encodes them for the terminal on its own thread."""

    def __init__(self, token: str, step: int, frozen: Any, adapted: Any, seeds: tuple[int, ...]) -> None:
        super().__init__()
        self.token = token
        self.step = step
        self.frozen = frozen
        self.adapted = adapted
        self.seeds = seeds


class LoadProgress(Message):
    """Model download progress while run `token` loads (token None: a download without a run)."""

    def __init__(self, token: str | None, progress: DownloadProgress) -> None:
        super().__init__()
        self.token = token
        self.progress = progress


class RunLoaded(Message):
    """Models loaded, session created: `run` (an engine.runs.Run) is ready to train."""

    def __init__(self, token: str, run: Any) -> None:
        super().__init__()
        self.token = token
        self.run = run


class RunLoadFailed(Message):
    def __init__(self, token: str, message: str, title: str) -> None:
        super().__init__()
        self.token = token
        self.message = message
        self.title = title


class SessionsChanged(Message):
    """A session was created, renamed, deleted, finished or released: lists should refresh."""


# ----- screens and widgets -> app ----------------------------------------------------------------
class StartRequested(Message):
    def __init__(self, config: TrainConfig, model_id: str) -> None:
        super().__init__()
        self.config = config
        self.model_id = model_id


class RetrainRequested(StartRequested):
    """Stop the current run (it saves), then train these settings as a fork of its session."""


class PauseToggleRequested(Message):
    pass


class StopRequested(Message):
    pass


class SaveRequested(Message):
    pass


class GlobalWeightChanged(Message):
    def __init__(self, value: float, quiet: bool = False) -> None:
        super().__init__()
        self.value = value
        self.quiet = quiet


class PinsChanged(Message):
    """Layer pins edited (layer map or setup form): W+ indices always trained / never trained. The train
    screen keeps the form in step (the next start uses them); the app applies them to the run, from its
    next step. `index` and `state` ("on", "off", "free") name the cell the map changed, if it was one."""

    def __init__(self, pin_on: tuple[int, ...], pin_off: tuple[int, ...], index: int | None = None,
                 state: str | None = None) -> None:
        super().__init__()
        self.pin_on = pin_on
        self.pin_off = pin_off
        self.index = index
        self.state = state


class DownloadRequested(Message):
    def __init__(self, model_id: str) -> None:
        super().__init__()
        self.model_id = model_id


class SessionRequest(Message):
    """A request about a saved session (`info`: an engine.sessions.SessionInfo)."""

    def __init__(self, info: Any) -> None:
        super().__init__()
        self.info = info


class OpenRequested(SessionRequest):
    """Show a saved session read-only on the train screen."""


class ResumeRequested(SessionRequest):
    """Continue the session's training (finished ones get 100 more steps)."""


class DeleteRequested(SessionRequest):
    """Delete it (the user already confirmed)."""


class ForkRequested(SessionRequest):
    def __init__(self, info: Any, source: str, target: str, from_weights: bool) -> None:
        super().__init__(info)
        self.source = source
        self.target = target
        self.from_weights = from_weights


class GenerateRequested(SessionRequest):
    def __init__(self, info: Any, n: int, folder: Path) -> None:
        super().__init__(info)
        self.n = n
        self.folder = folder


class ExportRequested(SessionRequest):
    def __init__(self, info: Any, folder: Path) -> None:
        super().__init__(info)
        self.folder = folder


class RenameRequested(SessionRequest):
    def __init__(self, info: Any, name: str) -> None:
        super().__init__(info)
        self.name = name
