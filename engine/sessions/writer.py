"""`SessionWriter`: the one writer of a session while it trains (checkpoints, metrics lines, sample grids,
status). It holds the session's lock until closed; it may be driven from a worker thread.

Checkpoints and sample pictures are written in two halves, so a run's writer thread can do the slow one:
`prepare_checkpoint` (training thread: takes the state and what the session records with it) returns the
write; `save_preview` writes a sample PNG. Metrics lines are appended at once (small, no fsync).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from engine import atomic
from engine.events import Event, PreviewReady, StepMetrics, TrainingFailed, TrainingFinished
from engine.sessions import layout
from engine.sessions.errors import NonFiniteWeights
from engine.sessions.ids import now_iso
from engine.sessions.info import SessionInfo, read_info
from engine.sessions.lock import SessionLock
from engine.sessions.metrics import MetricsLine, json_losses, metrics_text
from engine.sessions.state import Stateful, encode_state

# The status a checkpoint leaves in session.json, by the reason it was taken.
REASON_STATUS = {
    "interval": "running",
    "manual": "running",
    "pause": "paused",
    "stop": "stopped",
    "signal": "stopped",
    "finish": "finished",
}


def _row_image(preview: PreviewReady, tile_max: int | None) -> Image.Image:
    frozen, adapted = preview.frozen, preview.adapted
    if tile_max is not None:
        n = max(1, len(preview.seeds))
        tile = frozen.height
        if tile > tile_max:
            size = (tile_max * n, tile_max)
            frozen = frozen.resize(size, Image.Resampling.LANCZOS)
            adapted = adapted.resize(size, Image.Resampling.LANCZOS)
    out = Image.new("RGB", (max(frozen.width, adapted.width), frozen.height + adapted.height))
    out.paste(frozen, (0, 0))
    out.paste(adapted, (0, frozen.height))
    return out


def _save_png(path: Path, image: Image.Image) -> None:
    atomic.write_with(path, lambda buf: image.save(buf, format="PNG"))


class SessionWriter:
    """The one writer of a session (holds its lock). Feed every worker event to `record`; checkpoints go
    through `prepare_checkpoint` (or `checkpoint`, both halves at once), previews' PNGs through
    `save_preview`. Thread-safe; close() releases the lock.

    `last_losses`: the losses of the last logged step, for a writer that continues a session."""

    def __init__(
        self, path: Path, data: dict[str, Any], lock: SessionLock, last_losses: Mapping[str, float] | None = None
    ) -> None:
        self.path = path
        self.data = data
        self._lock = lock
        self._mutex = threading.RLock()  # session.json and the checkpoint file
        self._metrics_lock = threading.Lock()  # metrics.jsonl: never waits for a checkpoint write
        self._metrics = open(path / layout.METRICS_FILE, "ab")  # noqa: SIM115 (kept open for the whole run)
        self._metrics_torn = False
        self._last_preview: PreviewReady | None = None
        self._last_losses: dict[str, float] = dict(last_losses or {})
        self.last_checkpoint_error: str | None = None
        self.saved_step = self.checkpoint_step  # the step checkpoint.safetensors holds (session.json may lag)
        self.last_checkpoint_time_s: float | None = None
        self.stop_reason: str | None = None  # e.g. "SIGTERM": recorded with the stop checkpoint
        self.warnings: list[str] = []  # found when the session was opened (a gap in its metrics); the run reports them
        # Layer pins of the last metrics line: a line records "pins" when they differ. A new session starts
        # from none (pins given at the start are on line 1); a resumed one from unknown (its first line
        # records them, since pins set just before the stop were never trained with).
        self._pins: tuple[tuple[int, ...], tuple[int, ...]] | None = None if self.checkpoint_step else ((), ())

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def checkpoint_step(self) -> int:
        return int(self.data.get("step", 0))

    def info(self) -> SessionInfo:
        return read_info(self.path, check_lock=False)

    # -- session.json
    def _write_json(self, **changes: Any) -> None:
        data = {**self.data, **changes, "updated": now_iso()}
        atomic.write_json(self.path / layout.SESSION_FILE, data)
        self.data = data  # only after the write succeeded, so memory matches the disk

    def set_status(self, status: str, message: str | None = None) -> None:
        if status not in layout.STATUSES:
            raise ValueError(f"status must be one of {layout.STATUSES}")
        with self._mutex:
            self._write_json(status=status, message=message)

    # -- checkpoints
    def checkpoint(self, trainer: Stateful, reason: str) -> Path:
        """`prepare_checkpoint(trainer.state_dict(), reason)` and its write, on this thread."""
        return self.prepare_checkpoint(trainer.state_dict(), reason)()

    def prepare_checkpoint(self, state: Mapping[str, Any], reason: str) -> Callable[[], Path]:
        """The write of a checkpoint of `state` (`Trainer.state_dict()`, CPU tensors), with the losses,
        final grid and stop reason of this moment; call it on any thread. The write saves the state, then
        session.json. OSError (a full disk) propagates with the previous checkpoint intact, its text the
        cause and its `saved_step` the step the checkpoint file holds; TrainingWorker reports it as a
        LogMessage. `last_checkpoint_error` says it in full."""
        final = reason in ("stop", "signal", "finish")
        losses = json_losses(self._last_losses)
        grid = self._last_preview if final else None
        stop_reason = self.stop_reason
        return lambda: self._write_checkpoint(state, reason, losses, grid, stop_reason)

    def _write_checkpoint(
        self,
        state: Mapping[str, Any],
        reason: str,
        losses: dict[str, float | None],
        grid: PreviewReady | None,
        stop_reason: str | None,
    ) -> Path:
        with self._mutex:
            t0 = time.perf_counter()
            step = int(state["step"])
            written = False
            try:
                try:
                    blob = encode_state(state)
                except NonFiniteWeights as exc:  # reported like a failed write: the previous checkpoint stays
                    raise OSError(errno.EINVAL, str(exc)) from exc
                atomic.write_bytes(self.path / layout.CHECKPOINT_FILE, blob)
                written, self.saved_step = True, step
                if grid is not None:
                    _save_png(self.path / layout.GRID_FILE, _row_image(grid, None))
                status = REASON_STATUS.get(reason, "running")
                self._write_json(
                    status=status,
                    step=step,
                    config=state["config"],
                    final_loss=losses.get("total"),
                    losses=losses,
                    checkpoint={
                        "file": layout.CHECKPOINT_FILE,
                        "step": step,
                        "reason": reason,
                        "bytes": len(blob),
                        "saved": now_iso(),
                    },
                    stop_reason=stop_reason if status == "stopped" else None,
                    message=None,
                )
            except OSError as exc:
                full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                cause = f"{'The disk is full' if full else 'Saving failed'} ({exc.strerror or exc})"
                if written:  # the weights are saved; session.json (what the list shows) still lags
                    self.last_checkpoint_error = (
                        f"{cause} at step {step}: the checkpoint of step {step} is saved and resume continues "
                        f"from it, but {layout.SESSION_FILE} still says step {self.checkpoint_step}."
                    )
                else:
                    self.last_checkpoint_error = (
                        f"{cause} at step {step}; the previous checkpoint (step {self.saved_step}) is intact."
                    )
                error = OSError(exc.errno, cause)
                error.saved_step = self.saved_step  # type: ignore[attr-defined]
                raise error from exc
            self.last_checkpoint_error = None
            self.last_checkpoint_time_s = time.perf_counter() - t0
            return self.path / layout.CHECKPOINT_FILE

    # -- worker events
    def record(self, event: Event) -> None:
        """Store what an event says (metrics line, failure; a preview is remembered for the final grid:
        `save_preview` writes its PNG). Raises OSError on a full disk; `engine.live_run.Run` turns that
        into a LogMessage."""
        if isinstance(event, StepMetrics):
            with self._metrics_lock:
                self._last_losses = dict(event.losses)
                self._append_metrics(event)
        elif isinstance(event, PreviewReady):
            self._last_preview = event
        elif isinstance(event, TrainingFailed):
            with self._mutex:
                self._write_json(status="failed", message=event.message)
        elif isinstance(event, TrainingFinished):
            with self._metrics_lock:
                self._flush_metrics()

    def save_preview(self, preview: PreviewReady) -> Path:
        """Write `samples/step_NNNNNN.png` (the run's writer thread calls it); OSError on a full disk."""
        (self.path / layout.SAMPLES_DIR).mkdir(exist_ok=True)
        png = self.path / layout.SAMPLES_DIR / f"step_{preview.step:06d}.png"
        _save_png(png, _row_image(preview, layout.SAMPLE_TILE_MAX))
        return png

    def _append_metrics(self, m: StepMetrics) -> None:
        pins = (tuple(m.pin_on), tuple(m.pin_off))
        line = metrics_text([MetricsLine(
            step=m.step,
            losses=dict(m.losses),
            lr=m.lr,
            it_per_s=round(m.it_per_s, 4),
            elapsed_s=round(m.elapsed_s, 4),
            k=m.k,
            trained=tuple(m.trained_indices),
            global_weight=m.global_weight,
            time=round(time.time(), 3),
            pins=pins if pins != self._pins else None,  # the step whose line holds pins is the first with them
        )])
        if self._metrics_torn:  # a failed write may have left half a line: start a fresh one
            line = "\n" + line
        try:
            self._metrics.write(line.encode())
            self._metrics.flush()
        except OSError:
            self._metrics_torn = True
            raise
        self._metrics_torn = False
        self._pins = pins

    def _flush_metrics(self) -> None:
        with contextlib.suppress(OSError):
            self._metrics.flush()
            os.fsync(self._metrics.fileno())

    def close(self) -> None:
        with self._mutex, self._metrics_lock:
            if self._metrics.closed:
                return
            self._flush_metrics()
            with contextlib.suppress(OSError):
                self._metrics.close()
            self._lock.release()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
