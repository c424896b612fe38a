"""Inside a sweep's job: each run is one submitit job that calls `run_job(Job)`, an ordinary headless
training run (`engine.runs`) tagged with the sweep's name and the run's values in session.json. A
signal from the scheduler (scancel, preemption, the time limit's warning USR2, Ctrl-C on a local sweep)
saves the latest step and leaves the session `interrupted`; `nada-tui sweep FILE --resume` continues it from there.

Jobs are separate processes (on other machines, for Slurm): everything they need travels in the pickled
`Job`, including the sessions directory and the XDG variables of the submitting process.
A run whose last save failed reports the step its session holds, as `nada-tui train` does. Torch-free
at import.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.sweeps.fileformat import RunSpec
from engine.sweeps.record import write_run_start

# Passed to every job, so that it writes where the submitting process reads (sbatch exports the
# environment by default, but clusters may be set up with --export=NONE).
ENV_PASSED = ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "NADA_TUI_OFFLINE_TESTS")
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR2")
UNSAVED = "not saved"  # a run's status when it trained further than its session holds (the last save failed)


@dataclass(frozen=True)
class Job:
    """Everything one run needs, pickled into its job."""

    sweep_name: str
    record_dir: str
    run: RunSpec
    sessions_root: str
    env: dict[str, str] = field(default_factory=dict)
    resume: str | None = None  # a session id to continue instead of starting a new one
    threads: int | None = None  # torch CPU threads; None: what the scheduler gave, else torch's default
    device: str | None = None
    checkpoint_every: int = 50
    sweep_file: str | None = None  # for the "continue with" hint in the log


def passed_env() -> dict[str, str]:
    return {k: os.environ[k] for k in ENV_PASSED if k in os.environ}


def _job_id() -> str | None:
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


class _Interrupted(Exception):
    pass


# ----- inside a job ---------------------------------------------------------------------------------
def run_job(job: Job) -> dict[str, Any]:
    """Train one run of a sweep (the function each submitit job calls). Returns a summary; raises when
    the run fails, so that the scheduler marks the job failed too."""
    os.environ.update(job.env)
    import torch

    from engine import runs, sessions
    from engine.events import LogMessage, StepMetrics, TrainingFailed

    threads = job.threads or int(os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE") or 0)
    if threads > 0:
        # Slurm here may not pin CPUs: without this each run would start one thread per core of the node.
        torch.set_num_threads(threads)
    spec = job.run
    stopped: list[str] = []
    current: list[runs.Run] = []

    def on_signal(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if not stopped:
            stopped.append(name)
            _say(f"{name}: saving the latest step and stopping (the session stays resumable)")
        if current:
            current[0].stop()
        elif len(stopped) == 1:
            raise _Interrupted(name)

    previous = {}
    for name in STOP_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, on_signal)
    where = f"run {spec.index + 1} of sweep '{job.sweep_name}'"
    try:
        try:
            if job.resume:
                _say(f"{where}: resuming session {job.resume}")
                run = runs.resume_session(
                    job.resume, root=job.sessions_root, device=job.device, checkpoint_every=job.checkpoint_every
                )
            else:
                _say(f"{where}: {spec.name} ({spec.model_id})")
                run = runs.start_session(
                    spec.config,
                    spec.model_id,
                    name=spec.name,
                    device=job.device,
                    root=job.sessions_root,
                    checkpoint_every=job.checkpoint_every,
                    sweep={"name": job.sweep_name, "values": dict(spec.values)},
                )
        except _Interrupted:
            return {"index": spec.index, "session": job.resume, "status": "interrupted", "step": 0}
        except sessions.AlreadyFinished:
            return {"index": spec.index, "session": job.resume, "status": "finished", "step": spec.config.iterations}
        current.append(run)
        write_run_start(job.record_dir, spec.index, run.session_id, _job_id())
        _say(f"session {run.session_id} at {run.path}")
        original = run.checkpoint

        def checkpoint(trainer: Any, reason: str) -> Path:
            # A stop forced on a sweep run (scancel, preemption, time limit, Ctrl-C) is an interruption,
            # not a user's "stop": the save keeps the status "running", and once this process exits and
            # drops the session lock, the session reads as "interrupted" - what a killed run looks like.
            if reason == "stop" and stopped:
                reason = "interval"
            return original(trainer, reason)

        run.checkpoint = checkpoint  # type: ignore[method-assign]
        total = spec.config.iterations
        every = max(1, total // 10)

        def on_event(event: Any) -> None:
            if isinstance(event, StepMetrics):
                if event.step % every == 0 or event.step in (1, event.total_steps):
                    loss = event.losses.get("total", float("nan"))
                    _say(f"step {event.step}/{event.total_steps}  loss {loss:.4f}  {event.it_per_s:.1f} it/s")
            elif isinstance(event, LogMessage) and event.level != "info":
                _say(f"{event.level}: {event.text}")
            elif isinstance(event, TrainingFailed):
                _say(f"failed: {event.message}")

        try:
            if stopped:  # a signal came while the models loaded: keep the new session, train nothing
                result = None
            else:
                result = runs.train_session(run, on_event=on_event, handle_signals=False)
        finally:
            run.close()
        again = shlex.quote(job.sweep_file) if job.sweep_file else "FILE"
        if result is None or (stopped and result.status not in ("finished", "failed")):
            step = 0 if result is None else result.step if result.saved_step is None else result.saved_step
            _say(f"interrupted at step {step}/{total}; continue with: nada-tui sweep {again} --resume")
            return {"index": spec.index, "session": run.session_id, "status": "interrupted", "step": step}
        saved = result.step if result.saved_step is None else result.saved_step
        summary = {
            "index": spec.index,
            "session": run.session_id,
            "status": result.status,
            "step": result.step,
            "saved_step": saved,
            "checkpoint_error": result.checkpoint_error,
            "loss": result.losses.get("total"),
        }
        if result.status == "failed":
            raise RuntimeError(f"{where} failed (session {run.session_id}): {result.message}")
        if not result.saved:
            # The session holds an earlier step (the disk filled up, say): not finished, whatever the
            # trainer reached. The session reads `interrupted`, so --resume continues from `saved`.
            summary["status"] = UNSAVED
            _say(f"trained to step {result.step}/{total}, but saving it failed: the session holds step "
                 f"{saved}/{total}. Free some disk space, then continue with: nada-tui sweep {again} --resume")
            return summary
        _say(f"{result.status} at step {result.step}/{total}")
        return summary
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

