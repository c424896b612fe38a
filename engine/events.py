"""Events the training worker emits. Small immutable records: the UI (or a CLI progress bar) reads
them, nothing in them calls back into the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image


@dataclass(frozen=True)
class DeviceMemory:
    device: str  # "cpu", "cuda:0"
    used_bytes: int  # peak allocated by torch since the run started (CUDA), process RSS (CPU)
    total_bytes: int | None  # device capacity where known


@dataclass(frozen=True)
class StepMetrics:
    step: int  # steps completed (1 after the first)
    total_steps: int
    losses: dict[str, float]  # "total", "directional", "global", "directional/<clip>", "global/<clip>"
    lr: float
    it_per_s: float  # smoothed over recent steps
    elapsed_s: float
    trained_indices: tuple[int, ...]  # W+ indices whose StyledConvs trained in this step
    k: int
    scores: tuple[float, ...] | None  # last selection score per W+ index
    next_selection: int | None  # the step (1-based, like `step`) in which selection runs next
    global_weight: float
    memory: DeviceMemory | None = None
    layers: str = "auto"  # the layers setting: auto (adaptive), all, coarse, medium, fine or indices
    pin_on: tuple[int, ...] = ()  # pins in effect in this step
    pin_off: tuple[int, ...] = ()
    n_latent: int | None = None  # W+ indices of the generator (the layer map's cells)
    # What each W+ index drives, from the generator's layer_labels() ("conv1 4x4", "L2_52_1024", ...)
    layer_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class SelectionDone:
    step: int  # the step (1-based, like StepMetrics.step) whose start ran the selection
    scores: tuple[float, ...]
    chosen: tuple[int, ...]


@dataclass(frozen=True)
class PreviewReady:
    step: int
    seeds: tuple[int, ...]
    frozen: Image.Image  # one row of the seeds from the original generator
    adapted: Image.Image  # the same seeds, same noise, from the adapted generator


@dataclass(frozen=True)
class StateChanged:
    state: str  # "running", "paused", "stopping"
    step: int


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: Path
    reason: str  # "interval", "pause", "stop", "finish", "signal", "manual"


@dataclass(frozen=True)
class LogMessage:
    level: str  # "info", "warning", "error"
    text: str


@dataclass(frozen=True)
class TrainingFinished:
    step: int
    losses: dict[str, float] = field(default_factory=dict)
    stopped: bool = False  # True when stopped by the user before the last iteration
    # The step the session's checkpoint holds after the final save (None: the run saves nowhere).
    # It is below `step` when that save failed (a full disk): then the last steps are not saved.
    saved_step: int | None = None

    @property
    def saved(self) -> bool:
        """False when the final save failed: the session holds `saved_step`, not `step`."""
        return self.saved_step is None or self.saved_step == self.step


@dataclass(frozen=True)
class TrainingFailed:
    step: int
    kind: str  # "nan", "oom", "error"
    message: str  # what happened and what to do about it


@dataclass(frozen=True)
class InversionProgress:
    """One optimisation step of a photo's inversion (engine.photos)."""

    photo: Path  # the file as given
    index: int  # 0-based position among the photos of the call
    count: int  # how many photos the call inverts
    step: int  # steps done (1 after the first)
    steps: int
    loss: float  # this photo's total loss at this step
    image: Image.Image | None = None  # the current reconstruction, every few steps (None between)


@dataclass(frozen=True)
class PhotoDone:
    photo: Path
    result: object  # an engine.photos.PhotoResult (typed there: this module stays free of it)


@dataclass(frozen=True)
class PhotoFailed:
    photo: Path
    message: str  # what is wrong with the file and what to do


Event = (
    StepMetrics
    | SelectionDone
    | PreviewReady
    | StateChanged
    | CheckpointSaved
    | LogMessage
    | TrainingFinished
    | TrainingFailed
)

PhotoEvent = InversionProgress | PhotoDone | PhotoFailed
