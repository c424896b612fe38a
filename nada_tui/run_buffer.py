"""What the screens draw: the current run's buffer and the app-wide view state.

`RunBuffer.apply(event)` folds one engine event into the buffer and says what, if anything, to tell the
user. It is pure (no Textual, no threads, no clock besides log timestamps), so tests feed it events
directly. The app is its only writer, on the UI thread; screens read it on their redraw timers and skip
a frame when `version` has not moved.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.config import TrainConfig
from engine.download import DownloadProgress
from engine.events import (
    CheckpointSaved,
    Event,
    LogMessage,
    SelectionDone,
    StateChanged,
    StepMetrics,
    TrainingFailed,
    TrainingFinished,
)
from engine.sessions.metrics import MetricsLine

if TYPE_CHECKING:
    from engine.sessions import SessionInfo

ACTIVE_STATES = ("loading", "running", "paused", "stopping")
FAILURE_TITLES = {"nan": "Loss became NaN", "oom": "Out of memory"}
LOG_LINES = 500


@dataclass(frozen=True)
class Notice:
    """Something to show the user as a toast."""

    text: str
    title: str = ""
    severity: str = "information"  # "information", "warning", "error"
    timeout: float = 5.0


@dataclass(frozen=True)
class Preview:
    step: int
    frozen: Any  # PIL images: one row of the seeds each, drawn by widgets/previews.py
    adapted: Any
    seeds: tuple[int, ...]


@dataclass
class RunBuffer:
    """One run (or one saved session opened read-only) as the screens see it."""

    token: str  # names the run before its session exists; messages carry it
    config: TrainConfig | None
    model_id: str
    session_id: str | None = None
    state: str = "loading"  # loading, running, paused, stopping, finished, stopped, failed, "not saved" (the
    # final save failed), or a saved status
    read_only: bool = False
    version: int = 0
    records: list[MetricsLine] = field(default_factory=list)  # the steps' losses, as saved ones read back
    last: StepMetrics | None = None
    chosen: tuple[int, ...] | None = None  # the layers the last logged selection trains
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (time, level, text)
    preview: Preview | None = None
    load_progress: DownloadProgress | None = None
    failure: str | None = None
    resumes: SessionInfo | None = None  # the saved session this run resumes: a refused resume shows it again

    @property
    def active(self) -> bool:
        """Loading or training: the run holds (or is about to hold) its session."""
        return not self.read_only and self.state in ACTIVE_STATES

    def touch(self) -> None:
        self.version += 1

    def add_log(self, level: str, text: str) -> None:
        self.log.append((time.strftime("%H:%M:%S"), level, text))
        del self.log[:-LOG_LINES]
        self.touch()

    def apply(self, event: Event) -> Notice | None:
        """Fold one engine event into the buffer; returns what to tell the user, if anything."""
        notice = None
        match event:
            case StepMetrics():
                self.records.append(MetricsLine(event.step, dict(event.losses)))
                self.last = event
            case SelectionDone(step=step, chosen=chosen) if tuple(chosen) != self.chosen:
                # Only a change is news: the layer map shows every selection, and a line every
                # `auto_layer_interval` steps buried checkpoints and warnings (and cost a log scroll).
                self.chosen = tuple(chosen)
                self.add_log("info", f"step {step}: selection trains w" + ",".join(str(i) for i in chosen))
            case StateChanged(state=state, step=step):
                self.state = state
                self.add_log("info", f"{state} at step {step}")
            case CheckpointSaved(step=step, reason=reason):
                self.add_log("info", f"checkpoint ({reason}) at step {step}")
                if reason == "manual":
                    notice = Notice(f"Checkpoint saved at step {step}.", timeout=3)
            case LogMessage(level=level, text=text):
                self.add_log(level, text)
                if level == "error":
                    notice = Notice(text, severity="error", timeout=10)
            case TrainingFinished(step=step, losses=losses) if not event.saved:
                # The final save failed (a full disk): say what the session really holds.
                self.state = "not saved"
                kept = event.saved_step
                total = losses.get("total")
                loss = f" (loss {total:.4f})" if total is not None else ""
                text = (f"Trained to step {step}{loss}, but saving failed: the session holds step {kept}. "
                        f"Free some disk space, then resume it (r on the sessions screen) from step {kept}.")
                self.add_log("error", text)
                notice = Notice(text, "Not saved", "error", 15)
            case TrainingFinished(step=step, losses=losses, stopped=stopped):
                self.state = "stopped" if stopped else "finished"
                total = losses.get("total")
                loss = f", final loss {total:.4f}" if total is not None else ""
                self.add_log("info", f"{self.state} at step {step}{loss}; session saved")
                notice = Notice(f"Training {self.state} at step {step}{loss}. Session saved.")
            case TrainingFailed(kind=kind, message=message):
                self.state = "failed"
                self.failure = message
                self.add_log("error", message)
                notice = Notice(message, FAILURE_TITLES.get(kind, "Training failed"), "error", 15)
        self.touch()
        return notice

    def load_failed(self, message: str) -> None:
        self.state = "failed"
        self.failure = message
        self.load_progress = None
        self.add_log("error", message)

    def set_preview(self, preview: Preview) -> None:
        self.preview = preview
        self.touch()

    @classmethod
    def saved(cls, info: SessionInfo, records: Sequence[MetricsLine], refusal: str | None = None) -> RunBuffer:
        """A saved session and its metrics, read-only; `refusal`: why it was not resumed, if it was asked."""
        config = info.config
        buf = cls(f"open-{info.id}", config, info.model_id, info.id, state=info.status, read_only=True,
                  failure=refusal)
        buf.records = [r for r in records if r.losses]
        if records:
            r = records[-1]
            gw = config.global_weight if r.global_weight is None else r.global_weight
            buf.last = StepMetrics(
                step=r.step, total_steps=info.iterations, losses=dict(r.losses), lr=r.lr or 0.0,
                it_per_s=r.it_per_s or 0.0, elapsed_s=r.elapsed_s or 0.0, trained_indices=r.trained, k=r.k or 0,
                scores=None, next_selection=None, global_weight=gw,
            )
        if refusal is not None:
            buf.add_log("error", f"not resumed: {refusal}")
        else:
            buf.add_log("info", f"opened {info.id} read-only: Resume (r on the sessions screen) continues it")
        return buf


@dataclass
class ViewState:
    """App-wide state every screen reads: the demo flag, user settings, the current run's buffer, and a
    counter that moves whenever the saved sessions change. Written by the app alone."""

    demo: bool
    settings: Any  # nada_tui.user_config.Settings
    buffer: RunBuffer | None = None
    sessions_version: int = 0

    @property
    def training(self) -> bool:
        return self.buffer is not None and self.buffer.active

    def is_live(self, session_id: str) -> bool:
        """True when `session_id` is the session being trained by this app now."""
        return self.training and self.buffer is not None and self.buffer.session_id == session_id
