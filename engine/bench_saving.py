"""What checkpoints cost training: `python -m engine.bench --checkpoint-every N`.

For each config, two runs of the same steps through the path `nada-tui train` takes (a session in a
temporary folder, `engine.live_run.Run`, `train_session`): one without checkpoints, one with a checkpoint
every N steps (written on the run's writer thread, engine.save_thread). Previews are off in both, so the
difference is the checkpoints' alone. ms/step is the wall time from the first step's metrics to the last
one's, over the steps between (the first step, with its warm-up and selection, is left out; the final
save is not a step: its wait is shown as "finish"). "write" is one checkpoint write on the writer thread
(encode + fsync'd atomic write + session.json), which is what each checkpoint cost the training thread
before saving moved off it: "if synchronous" adds that per checkpoint to the run without checkpoints.
Each row also gives the training thread's own CPU time per step (`time.thread_time`), which a busy,
shared machine does not inflate and which leaves out the writer thread's work.

On a CPU the writer thread shares the cores with training, so its work still shows up in ms/step;
on a GPU the training thread waits for the device and the write runs meanwhile.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import Any

from engine import sessions
from engine.events import Event, StepMetrics, TrainingFinished


@dataclass(frozen=True)
class SavingRun:
    checkpoint_every: int
    steps: int
    ms_per_step: float
    thread_cpu_ms_per_step: float  # the training thread's CPU time (the writer thread's work excluded)
    finish_ms: float  # from the last step's metrics to TrainingFinished (final preview off; final save)
    checkpoints: int  # written during the run (the final one not counted)
    write_ms: float | None  # one checkpoint write on the writer thread
    checkpoint_bytes: int


def timed_run(make_trainer: Any, checkpoint_every: int, root: str) -> SavingRun:
    """Train `make_trainer()` (a fresh Trainer) once as a saved session under `root`."""
    from engine.live_run import Run, train_session

    trainer = make_trainer()
    base = {"id": "bench", "weights_sha256": sessions.weights_sha256(trainer.frozen)}
    run = Run(sessions.create(trainer.state_dict(), base, name="bench", root=root), trainer, checkpoint_every)
    stamps: list[float] = []
    cpu: list[float] = []
    saved: list[int] = []
    end = [0.0]

    def on_event(e: Event) -> None:
        if isinstance(e, StepMetrics):  # events come on the training thread
            stamps.append(time.perf_counter())
            cpu.append(time.thread_time())
        elif isinstance(e, TrainingFinished):
            end[0] = time.perf_counter()
        elif type(e).__name__ == "CheckpointSaved" and e.reason == "interval":  # type: ignore[attr-defined]
            saved.append(e.step)  # type: ignore[attr-defined]

    with run:
        train_session(run, on_event=on_event, handle_signals=False)
        write_s = run.writer.last_checkpoint_time_s
        nbytes = int((run.writer.data.get("checkpoint") or {}).get("bytes") or 0)
    steps = len(stamps)
    return SavingRun(
        checkpoint_every=checkpoint_every,
        steps=steps,
        ms_per_step=(stamps[-1] - stamps[0]) * 1000 / max(1, steps - 1),
        thread_cpu_ms_per_step=(cpu[-1] - cpu[0]) * 1000 / max(1, steps - 1),
        finish_ms=(end[0] - stamps[-1]) * 1000,
        checkpoints=len(saved),
        write_ms=None if write_s is None else write_s * 1000,
        checkpoint_bytes=nbytes,
    )


def compare(make_trainer: Any, every: int) -> tuple[SavingRun, SavingRun]:
    """(without checkpoints, with one every `every` steps), in that order, in this process."""
    with tempfile.TemporaryDirectory(prefix="nada-bench-saving-") as root:
        return timed_run(make_trainer, 0, root), timed_run(make_trainer, every, root)


def report(label: str, none: SavingRun, every: SavingRun) -> list[str]:
    """Table lines for one config."""
    lines = []
    for r in (none, every):
        what = "no checkpoints" if r.checkpoint_every == 0 else f"checkpoint every {r.checkpoint_every}"
        lines.append(
            f"{label:<34} {what:<22} {r.ms_per_step:>8.1f} ms/step ({r.thread_cpu_ms_per_step:.1f} ms CPU on the "
            f"training thread) over {r.steps} steps, "
            f"{r.checkpoints} checkpoints, finish {r.finish_ms:.0f} ms"
        )
    if every.write_ms is not None and every.checkpoint_every:
        sync = none.ms_per_step + every.write_ms / every.checkpoint_every
        lines.append(
            f"{label:<34} {'':<22} checkpoint {every.checkpoint_bytes / 2**20:.1f} MiB, write {every.write_ms:.0f} ms "
            f"on the writer thread; if synchronous: {sync:.1f} ms/step; measured "
            f"{every.ms_per_step / none.ms_per_step:.3f}x the run without checkpoints"
        )
    return lines
