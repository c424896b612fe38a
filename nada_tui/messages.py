"""Every Textual message of the app, as typed dataclasses (Textual sets a dataclass message up in
Message.__post_init__), in three groups.

From worker threads to the app (posted with `post_message`, thread-safe, never blocking): engine events
wrapped with the token of the run they belong to, model loading progress and outcome.
From screens and widgets to the app (they bubble up): requests. A screen never changes the run itself;
it says what the user asked for, and the app decides.
From the app to a screen: the answer to a request that the run refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from PIL.Image import Image

    from engine.config import TrainConfig
    from engine.download import DownloadProgress
    from engine.events import Event, PhotoEvent
    from engine.live_run import Run
    from engine.sessions import SessionInfo


# ----- worker threads -> app ---------------------------------------------------------------------
@dataclass(eq=False)
class RunEvents(Message):
    """Engine events (handlers `match` on their class) of run `token`, in order. Batched by the run's
    event stream (nada_tui.run_stream): once a second while training on the CPU, four times a second on a
    GPU; a pause, a resume and the end of the run are sent at once."""

    token: str
    events: tuple[Event, ...]


@dataclass(eq=False)
class PreviewPixels(Message):
    """A preview as PIL images (a row of one tile per seed from each generator); the preview widget
    scales and encodes them for the terminal on its own thread."""

    token: str
    step: int
    frozen: Image
    adapted: Image
    seeds: tuple[int, ...]


@dataclass(eq=False)
class LoadProgress(Message):
    """Model download progress while run `token` loads (token None: a download without a run)."""

    token: str | None
    progress: DownloadProgress


@dataclass(eq=False)
class RunLoaded(Message):
    """Models loaded, session created: `run` is ready to train."""

    token: str
    run: Run


@dataclass(eq=False)
class RunLoadFailed(Message):
    token: str
    message: str
    title: str


@dataclass(eq=False)
class PhotoEvents(Message):
    """Engine photo events (InversionProgress, PhotoDone, PhotoFailed) of the photo job `token`, to the
    photos screen that asked for it; `ended`: the job is over (`error`: why it stopped early, if so)."""

    token: int
    events: tuple[PhotoEvent, ...]
    ended: bool = False
    error: str | None = None


@dataclass(eq=False)
class PhotoRendered(Message):
    """The adapted render of a saved photo latent at `strength` (0 frozen, 1 adapted), for the photos screen."""

    latent: Path
    strength: float
    image: Image | None
    error: str | None = None


@dataclass(eq=False)
class SessionsChanged(Message):
    """A session was created, renamed, deleted, finished or released: lists should refresh."""


# ----- screens and widgets -> app ----------------------------------------------------------------
@dataclass(eq=False)
class StartRequested(Message):
    """Train `config` on `model_id`. `image_files`: the target images engine.inputs.check_inputs found
    (it checked the prompts too); None when nobody checked yet (then the run's loader does)."""

    config: TrainConfig
    model_id: str
    image_files: tuple[Path, ...] | None = None


@dataclass(eq=False)
class RetrainRequested(StartRequested):
    """Stop the current run (it saves), then train these settings as a fork of its session."""


@dataclass(eq=False)
class PauseToggleRequested(Message):
    pass


@dataclass(eq=False)
class StopRequested(Message):
    pass


@dataclass(eq=False)
class SaveRequested(Message):
    pass


@dataclass(eq=False)
class LiveSettingChanged(Message):
    """Settings marked live in the settings table (engine.config) were edited, in the setup form or the
    layer map: {name: parsed value}. The app applies them to the run from its next step; with nothing
    training the next Start reads them from the form. `quiet`: typing (applied, no toast); Enter confirms."""

    values: dict[str, object]
    quiet: bool = False


@dataclass(eq=False)
class DownloadRequested(Message):
    model_id: str


@dataclass(eq=False)
class SessionRequest(Message):
    """A request about a saved session."""

    info: SessionInfo


@dataclass(eq=False)
class OpenRequested(SessionRequest):
    """Show a saved session read-only on the train screen."""


@dataclass(eq=False)
class ResumeRequested(SessionRequest):
    """Continue the session's training (finished ones get 100 more steps)."""


@dataclass(eq=False)
class DeleteRequested(SessionRequest):
    """Delete it (the user already confirmed)."""


@dataclass(eq=False)
class ForkRequested(SessionRequest):
    source: str
    target: str
    from_weights: bool


@dataclass(eq=False)
class GenerateRequested(SessionRequest):
    n: int
    folder: Path


@dataclass(eq=False)
class ExportRequested(SessionRequest):
    folder: Path


@dataclass(eq=False)
class VideosRequested(SessionRequest):
    """The session's videos (walk, strength sweep, time-lapse) into `folder`; the app answers the screen
    that asked with ExportProgress messages."""

    folder: Path
    seconds: float
    video_format: str


@dataclass(eq=False)
class RenameRequested(SessionRequest):
    name: str


@dataclass(eq=False)
class PhotosRequested(SessionRequest):
    """Invert `photos` into the session's latent space (job `token`); the events go back to the screen
    that asked, as PhotoEvents. `align`: None lets the engine decide from the model."""

    photos: tuple[Path, ...]
    token: int
    steps: int
    align: bool | None
    pti_steps: int = 0


@dataclass(eq=False)
class PhotosStopRequested(Message):
    """Stop photo job `token` after the step in progress (photos finished so far are kept)."""

    token: int


@dataclass(eq=False)
class PhotoRenderRequested(SessionRequest):
    """Render the W+ latent saved in `latent` through the session at `strength`, as a PhotoRendered."""

    latent: Path
    strength: float


# ----- app -> screen -----------------------------------------------------------------------------
@dataclass(eq=False)
class LiveSettingRefused(Message):
    """The run refused a live change (out of range, nothing left to train): `reason` says why, `current`
    holds every live setting's value still in force, for the form and the layer map to show again."""

    name: str
    reason: str
    current: dict[str, object]
