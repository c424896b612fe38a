"""The one handle on a live run (`Run`): a Trainer, the session it writes, and the thread that trains it.

The app and the CLI hold a Run and nothing else of it: they never name its trainer or its worker.

    run = runs.start_session(config, "demo-tiny", images=...)   # or resume_session / fork_session
    run.start(on_event)             # the app: a training thread; pause() resume() stop() save_now()
    run.update(global_weight=0.3)   # a live setting (the table's `live` ones), from the next step
    run.close()                     # waits for the thread to end (it saves), releases the session
    result = train_session(run, on_event=show)   # headless: trains on this thread, signals save + stop

Events go to `on_event` from the training thread, after the session has recorded them; a handler must
only queue or post them.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import sessions
from engine.config import TrainConfig
from engine.events import Event, LogMessage, PreviewReady, StepMetrics, TrainingFailed, TrainingFinished
from engine.trainer import Trainer
from engine.training_worker import CheckpointWrite, TrainingWorker

DEFAULT_CHECKPOINT_EVERY = 50
HANDLED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
EventHandler = Callable[[Event], None]


@dataclass
class RunResult:
    session_id: str
    path: Path
    status: str  # "finished", "stopped", "failed"
    step: int
    total_steps: int
    losses: dict[str, float] = field(default_factory=dict)
    message: str | None = None  # the failure, for "failed"
    signal: str | None = None  # "SIGTERM" etc. when a signal stopped the run
    checkpoint_error: str | None = None  # set when the last save failed (the previous one is intact)
    saved_step: int | None = None  # the step the session holds: below `step` when the last save failed

    @property
    def saved(self) -> bool:
        """False when the last steps are not on disk (the final save failed)."""
        return self.saved_step is None or self.saved_step == self.step


class Run:
    """A Trainer bound to the session it writes, trained once. Owns the session lock until `close()`."""

    def __init__(
        self, writer: sessions.SessionWriter, trainer: Trainer, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    ) -> None:
        self.writer = writer
        self.trainer = trainer  # the engine's own tests read it; the app and the CLI use the handle
        self.checkpoint_every = checkpoint_every
        self.signal_name: str | None = None
        self._worker: TrainingWorker | None = None
        self._stop_asked = False  # a stop before the thread exists (quit while starting) still stops it
        self._on_event: EventHandler | None = None  # for the scores' warning (see _score)
        self._write_error_reported = False

    # ----- what it is -----------------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self.writer.id

    @property
    def path(self) -> Path:
        return self.writer.path

    def info(self) -> sessions.SessionInfo:
        """The session's record as saved."""
        return self.writer.info()

    @property
    def step(self) -> int:
        """Steps done so far."""
        return self.trainer.step_count

    @property
    def config(self) -> TrainConfig:
        """The settings of the step in progress."""
        return self.trainer.config

    @property
    def next_config(self) -> TrainConfig:
        """The settings of the next step: `config` with the live changes accepted since."""
        return self.trainer.next_config

    @property
    def saved_step(self) -> int | None:
        """The step the session's checkpoint holds (None before training began)."""
        return self._worker.saved_step if self._worker is not None else None

    @property
    def alive(self) -> bool:
        """The training thread is running (or saving)."""
        return self._worker is not None and self._worker.alive

    # ----- control (any thread) --------------------------------------------------------------------
    def start(self, on_event: EventHandler | None = None) -> None:
        """Train on a thread of its own; events go to `on_event` (from that thread)."""
        self._make_worker(on_event).start()

    def train(self, on_event: EventHandler | None = None) -> None:
        """Train on this thread until done or stopped (headless runs, benchmarks)."""
        self._make_worker(on_event).run()

    def pause(self) -> None:
        """Pause after the current step (the session is saved)."""
        if self._worker is not None:
            self._worker.pause()

    def resume(self) -> None:
        if self._worker is not None:
            self._worker.resume()

    def stop(self, signal_name: str | None = None) -> None:
        """Stop after the current step, then save. Safe from signal handlers and other threads."""
        if signal_name and self.signal_name is None:
            self.writer.stop_reason = signal_name
            self.signal_name = signal_name
        self._stop_asked = True
        if self._worker is not None:
            self._worker.stop()

    def save_now(self) -> None:
        """Write a checkpoint after the current step."""
        if self._worker is not None:
            self._worker.save_now()

    def update(self, **live: Any) -> None:
        """Change settings marked live in the settings table, from the next step. Raises ConfigError (a
        ValueError) naming the setting when the value is refused; nothing changes then."""
        self.trainer.update(**live)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the training thread to end; True when it has."""
        return self._worker.join(timeout) if self._worker is not None else True

    def close(self) -> None:
        """Wait for the training thread to end (a stopped run saves first), then release the session.
        Call it off the UI thread: a step and a save can take seconds."""
        self.join()
        self.writer.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- the worker -----------------------------------------------------------------------------
    def checkpoint(self, trainer: Trainer, reason: str) -> CheckpointWrite:
        """TrainingWorker's checkpoint callback: the state now, its write for the writer thread (which
        raises OSError on a full disk, the old checkpoint intact)."""
        if reason == "stop" and self.signal_name:
            reason = "signal"
        write = self.writer.prepare_checkpoint(trainer.state_dict(), reason)
        if reason == "finish":  # not on stop: quitting the app must not wait for renders
            self._score(trainer)
        return write

    def _score(self, trainer: Trainer) -> None:
        """The cheap scores (engine.scores, RUN_END_SAMPLES samples) into the session's scores.json, once
        its last checkpoint is saved, when the run finishes; a stopped run skips them (quitting must be quick).
        A failure is said and harms nothing (`nada-tui eval` measures them again)."""
        from engine import scores

        try:
            record = scores.measure(trainer.frozen, trainer.generator, trainer.loss, trainer.config,
                                    scores.RUN_END_SAMPLES, chunk=4)
            scores.write_scores(self.path, scores.stamp(record, trainer.step_count, "run end"))
        except Exception as exc:  # an OOM or a full disk here must not turn a finished run into a failed one
            if self._on_event is not None:
                self._on_event(LogMessage("warning", f"Scores were not measured: {type(exc).__name__}: {exc}. "
                                          f"Measure them with `nada-tui eval {self.session_id}`."))

    def _make_worker(self, on_event: EventHandler | None) -> TrainingWorker:
        if self._worker is not None:
            raise RuntimeError("a Run trains once; start, resume or fork a session to train again")
        self._on_event = on_event

        def write_failed(exc: Exception) -> None:
            # Metrics and samples are best effort; say so once, keep training.
            if not self._write_error_reported and on_event is not None:
                self._write_error_reported = True
                on_event(
                    LogMessage(
                        "error",
                        f"Could not write to session {self.session_id}: {exc}. "
                        "Training goes on; checkpoints are retried.",
                    )
                )

        def handle(event: Event) -> None:
            try:
                self.writer.record(event)
            except OSError as exc:
                write_failed(exc)
            else:
                if isinstance(event, StepMetrics):
                    self._write_error_reported = False
            if isinstance(event, PreviewReady):  # the PNG is encoded and written on the writer thread
                worker.write_later(lambda: self.writer.save_preview(event), write_failed)
            if on_event is not None:
                try:
                    on_event(event)
                except OSError:
                    pass  # a closed terminal (SIGHUP) must not stop training or saving

        self._worker = worker = TrainingWorker(
            self.trainer,
            handle,
            checkpoint=self.checkpoint,
            checkpoint_every=self.checkpoint_every,
            warnings=self.writer.warnings,  # found when the session was opened (a gap in its metrics)
        )
        if self._stop_asked:
            self._worker.stop()
        return self._worker


# ----- headless training --------------------------------------------------------------------------
def train_session(
    run: Run,
    on_event: EventHandler | None = None,
    handle_signals: bool = True,
) -> RunResult:
    """Train on this thread until done or stopped. With `handle_signals` (main thread only), the first
    Ctrl-C / SIGTERM / SIGHUP stops after the current step, saves and returns; a second Ctrl-C exits
    at once (the previous checkpoint is intact), other repeats are ignored. The session stays locked
    until `run.close()`."""
    final: list[Event] = []

    def collect(event: Event) -> None:
        if isinstance(event, TrainingFinished | TrainingFailed):
            final.append(event)
        if on_event is not None:
            on_event(event)

    previous: dict[int, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():

        def handler(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if run.signal_name is not None:
                if signum == signal.SIGINT:  # a second Ctrl-C: quit now; the last checkpoint is intact
                    os._exit(128 + signum)
                return  # already stopping (a SIGHUP after a SIGTERM, say): let the save finish
            run.stop(name)

        for name in HANDLED_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                previous[sig] = signal.signal(sig, handler)
    try:
        run.train(collect)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    tr = run.trainer
    end = final[-1] if final else None
    if isinstance(end, TrainingFailed):
        status, losses, message = "failed", {}, end.message
    else:
        stopped = end.stopped if isinstance(end, TrainingFinished) else not tr.done
        status = "stopped" if stopped else "finished"
        losses = dict(end.losses) if isinstance(end, TrainingFinished) else {}
        message = None
    return RunResult(
        session_id=run.session_id,
        path=run.path,
        status=status,
        step=tr.step_count,
        total_steps=tr.config.iterations,
        losses=losses,
        message=message,
        signal=run.signal_name,
        checkpoint_error=run.writer.last_checkpoint_error,
        saved_step=run.saved_step,
    )
