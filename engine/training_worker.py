"""The training worker: runs a Trainer on a background thread, turns its steps into events, and saves.

Pause, resume, stop and save-now take effect between steps; out-of-memory and non-finite losses end the
run with a TrainingFailed event. Saving never blocks a step: a checkpoint's state is copied off the device
on the training thread, then written on the run's writer thread (engine.save_thread); it is reported
(CheckpointSaved, `saved_step`) once the write finished, a failed write as a LogMessage error, and training
goes on. Stop, finish and failure wait for every pending write before their final event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from engine.events import (
    CheckpointSaved,
    Event,
    LogMessage,
    SelectionDone,
    StateChanged,
    TrainingFailed,
    TrainingFinished,
)
from engine.save_thread import SaveThread
from engine.trainer import NonFiniteLoss, OutOfMemory, Trainer, TrainingError

OOM_ADVICE = (
    "The GPU ran out of memory at step {step}. Lower the batch (now {batch}) or auto_layer_batch "
    "(now {auto_batch}), use fewer CLIP models, or pick a smaller generator; then retrain."
)

# `checkpoint(trainer, reason)` runs on the training thread between steps: it takes what the save needs
# off the trainer (`trainer.state_dict()`: CPU copies) and returns the write, which runs on the writer
# thread and returns the file written (None: nothing to report); or it returns None (nothing to write).
# The write raises OSError when saving fails (a full disk); the exception may carry `saved_step`, the step
# the session's checkpoint holds after the failure (else the last successful save's step is assumed).
CheckpointWrite = Callable[[], Path | None]
CheckpointFn = Callable[[Trainer, str], CheckpointWrite | None]


class TrainingWorker:
    """Runs a Trainer on a background thread; pause/resume/stop take effect between steps.

    Events go to `on_event` from the worker thread (also the results of writes done on the writer
    thread); it must only queue or post them (a Textual app uses `post_message`), never block on the UI.
    `checkpoint(trainer, reason)` is called every `checkpoint_every` steps and on pause, stop, finish and
    `save_now()`; `write_later` hands other writes (sample pictures) to the same writer thread.
    """

    def __init__(
        self,
        trainer: Trainer,
        on_event: Callable[[Event], None],
        checkpoint: CheckpointFn | None = None,
        checkpoint_every: int = 0,
        warnings: Sequence[str] = (),
    ) -> None:
        self.trainer = trainer
        self.on_event = on_event
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.warnings = (*trainer.warnings, *warnings)  # sent once as LogMessage warnings when the run starts
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._save_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._saver = SaveThread()
        self.state = "idle"
        # The step the session's checkpoint holds: the trainer starts from a saved state (a new session
        # is created with step 0, a resume loads its checkpoint). None when nothing is saved.
        self.saved_step: int | None = trainer.step_count if checkpoint is not None else None

    # ----- control (any thread) ---------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a TrainingWorker runs once; make a new one to train again")
        self._thread = threading.Thread(target=self.run, name="nada-train", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    def save_now(self) -> None:
        self._save_now.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def write_later(self, write: Callable[[], object], on_error: Callable[[Exception], None]) -> None:
        """Run `write()` on the run's writer thread (in order with the checkpoints); a failure comes back
        to `on_error` on the training thread, between steps. Call it from the training thread (an
        event handler)."""

        def done(_result: object, error: Exception | None) -> None:
            if error is not None:
                on_error(error)

        self._saver.submit(write, done)

    # ----- the loop (worker thread, or the caller's for headless runs) ------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        self.on_event(StateChanged(state, self.trainer.step_count))

    def _save(self, reason: str) -> None:
        if self.checkpoint is None:
            return
        self._saver.wait_for_checkpoint()  # at most one in flight: the previous one is reported first
        step = self.trainer.step_count
        try:
            write = self.checkpoint(self.trainer, reason)
        except OSError as exc:
            self._saved(step, reason, None, exc)
            return
        if write is not None:
            self._saver.submit(write, lambda path, exc: self._saved(step, reason, path, exc), checkpoint=True)

    def _saved(self, step: int, reason: str, path: Path | None, exc: Exception | None) -> None:
        """A checkpoint write ended (training thread): report it."""
        if exc is None:
            if path is not None:
                self.saved_step = step
                self.on_event(CheckpointSaved(step, path, reason))
            return
        # A full disk, permissions: keep training, say so.
        self.saved_step = getattr(exc, "saved_step", self.saved_step)
        if isinstance(exc, OSError):
            why = (exc.strerror or str(exc)).rstrip(".")
        else:
            why = f"{type(exc).__name__}: {exc}".rstrip(".")
        if self.saved_step == step:
            held = f"The checkpoint of step {step} was written (resume continues from it); the list may lag."
        else:
            held = f"The previous checkpoint is intact (step {self.saved_step})."
        final = reason in ("stop", "finish")
        then = (" Free some disk space, then resume the session to continue from there." if final
                else " Training goes on; the next checkpoint tries again.")
        self.on_event(LogMessage("error", f"Checkpoint at step {step} failed: {why}. {held}{then}"))

    def run(self) -> None:
        try:
            self._run()
        finally:  # also when an exception escapes (tests simulate a kill so): writes handed over still end
            self._saver.close()

    def _run(self) -> None:
        tr = self.trainer
        last: dict[str, float] = {}
        self._set_state("running")
        for text in self.warnings:
            self.on_event(LogMessage("warning", text))
        try:
            while not tr.done and not self._stop.is_set():
                self._saver.deliver()
                if not self._running.is_set():
                    self._set_state("paused")
                    self._save("pause")
                    while not self._running.wait(0.1):
                        self._saver.deliver()
                    if self._stop.is_set():
                        break
                    self._set_state("running")
                metrics = tr.step()
                last = metrics.losses
                if tr.selected_this_step and tr.scores is not None:
                    self.on_event(SelectionDone(metrics.step, tuple(tr.scores.tolist()), tr.trained))
                self.on_event(metrics)
                every = tr.config.preview_every
                if every and metrics.step % every == 0 and not tr.done:
                    self.on_event(tr.preview())
                if self._save_now.is_set():
                    self._save_now.clear()
                    self._save("manual")
                elif self.checkpoint_every and metrics.step % self.checkpoint_every == 0 and not tr.done:
                    self._save("interval")
        except torch.cuda.OutOfMemoryError:
            cfg = tr.config
            if tr.device.type == "cuda":
                torch.cuda.empty_cache()
            advice = OOM_ADVICE.format(step=tr.step_count + 1, batch=cfg.batch, auto_batch=cfg.auto_layer_batch)
            self._fail(OutOfMemory(advice))
            return
        except TrainingError as exc:
            self._fail(exc)
            return
        except Exception as exc:  # anything else still reaches the user as an event, not a dead thread
            self._fail(TrainingError(f"Training stopped at step {tr.step_count}: {type(exc).__name__}: {exc}"))
            return
        stopped = not tr.done
        self._set_state("stopping")
        self.on_event(tr.preview())
        self._save("stop" if stopped else "finish")
        self._saver.wait()  # reported saved (or failed) before the run is reported finished
        self.on_event(TrainingFinished(tr.step_count, last, stopped=stopped, saved_step=self.saved_step))
        self.state = "finished"

    def _fail(self, error: TrainingError) -> None:
        self.state = "failed"
        if isinstance(error, NonFiniteLoss):
            self._save("stop")  # the weights are still those of the last good step
        self._saver.wait()
        kind = "nan" if isinstance(error, NonFiniteLoss) else "oom" if isinstance(error, OutOfMemory) else "error"
        self.on_event(TrainingFailed(self.trainer.step_count, kind, str(error)))
