"""Running a sweep's runs through submitit: a Slurm job array where `sbatch` exists, else submitit's local
executor with one run per visible GPU (or `parallel` runs at a time on CPU).

Each run is one job that calls `run_job(Job)`: an ordinary headless training run (`engine.runs`), tagged
with the sweep's name and the run's values in session.json. A signal from the scheduler (scancel,
preemption, the time limit's warning USR2, Ctrl-C on a local sweep) saves the latest step and leaves the
session `interrupted`; `nada-tui sweep FILE --resume` continues it from there.

Jobs are separate processes (on other machines, for Slurm): everything they need travels in the pickled
`Job`, including the sessions directory and the XDG variables of the submitting process.
Torch-free at import; submitit is imported when something is submitted.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.sweeps import LOGS_DIR, RunSpec, SweepRecord, write_run_start

# Passed to every job, so that it writes where the submitting process reads (sbatch exports the
# environment by default, but clusters may be set up with --export=NONE).
ENV_PASSED = ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "NADA_TUI_OFFLINE_TESTS")
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR2")
DEFAULT_SLURM_MINUTES = 60
LOCAL_TIMEOUT_MINUTES = 7 * 24 * 60  # submitit's local default is 2 minutes: no limit we would want


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
        if result is None or (stopped and result.status not in ("finished", "failed")):
            step = result.step if result is not None else 0
            again = shlex.quote(job.sweep_file) if job.sweep_file else "FILE"
            _say(f"interrupted at step {step}/{total}; continue with: nada-tui sweep {again} --resume")
            return {"index": spec.index, "session": run.session_id, "status": "interrupted", "step": step}
        summary = {
            "index": spec.index,
            "session": run.session_id,
            "status": result.status,
            "step": result.step,
            "loss": result.losses.get("total"),
        }
        if result.status == "failed":
            raise RuntimeError(f"{where} failed (session {run.session_id}): {result.message}")
        _say(f"{result.status} at step {result.step}/{total}")
        return summary
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ----- Slurm ----------------------------------------------------------------------------------------
def slurm_available() -> bool:
    import shutil

    return shutil.which("sbatch") is not None


def slurm_parameters(options: Mapping[str, Any], record: SweepRecord, all_demo: bool) -> dict[str, Any]:
    """submitit SlurmExecutor parameters from [slurm] options / flags (normalised keys)."""
    gpus = options.get("gpus_per_job")
    if gpus is None:
        gpus = 0 if all_demo else 1  # the demo models train on CPU; real ones want a GPU
    params: dict[str, Any] = {
        "job_name": f"nada-{record.id}"[:64],
        "time": int(options.get("time") or DEFAULT_SLURM_MINUTES),
        "stderr_to_stdout": True,
    }
    if gpus:
        params["gpus_per_node"] = int(gpus)
    for key, name in (
        ("partition", "partition"),
        ("account", "account"),
        ("qos", "qos"),
        ("constraint", "constraint"),
        ("cpus_per_job", "cpus_per_task"),
    ):
        if options.get(key):
            params[name] = options[key]
    if options.get("mem_gb"):
        params["mem"] = f"{int(float(options['mem_gb']) * 1024)}MB"
    if options.get("array_parallelism"):
        params["array_parallelism"] = int(options["array_parallelism"])
    return params


def submit_slurm(record: SweepRecord, jobs: Sequence[Job], params: Mapping[str, Any]) -> dict[int, str]:
    """Submit the jobs as one Slurm job array; run index -> Slurm job id ("1234_0")."""
    import submitit

    executor = submitit.SlurmExecutor(folder=record.dir / LOGS_DIR, max_num_timeout=0)
    executor.update_parameters(**params)
    submitted = []
    with executor.batch():
        for job in jobs:
            submitted.append(executor.submit(run_job, job))
    return {job.run.index: str(s.job_id) for job, s in zip(jobs, submitted, strict=True)}


def wait_slurm(job_ids: Sequence[str], poll_s: float = 2.0, timeout_s: float | None = None) -> bool:
    """Wait until squeue no longer lists any of the jobs (submitit asks sacct, which needs accounting).
    False on timeout."""
    from engine.sweeps import slurm_states

    end = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        states = slurm_states(job_ids)
        if states is not None and not any(j in states for j in job_ids):
            return True
        if end is not None and time.monotonic() > end:
            return False
        time.sleep(poll_s)


def cancel_slurm(job_ids: Sequence[str]) -> None:
    import subprocess

    ids = sorted({j.split("_")[0] for j in job_ids})
    if ids:
        subprocess.run(["scancel", *ids], check=False, timeout=60)


# ----- this machine ---------------------------------------------------------------------------------
def visible_gpus() -> list[int]:
    """CUDA devices this process may use, as the ids CUDA_VISIBLE_DEVICES gives a child (imports torch)."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable CUDA is "no GPU", whatever the reason
        return []
    listed = [p.strip() for p in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if p.strip()]
    if listed and all(p.isdigit() for p in listed):
        return [int(p) for p in listed[:count]]
    return list(range(count))


@dataclass
class LocalOutcome:
    index: int
    status: str  # finished, stopped, failed, interrupted, died
    session: str | None = None
    step: int = 0
    loss: float | None = None
    message: str | None = None
    seconds: float = 0.0


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Job controllers started here inherit an ignored SIGINT, so a Ctrl-C in the terminal (sent to the
    whole process group) does not kill them before their run has saved; the runs install their own
    handler and save, and this process decides what to stop."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to protect
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def run_local(
    record: SweepRecord,
    jobs: Sequence[Job],
    slots: Sequence[int | None],
    say: Callable[[str], None],
    time_min: int | None = None,
    on_submitted: Callable[[dict[int, str]], None] | None = None,
    poll_s: float = 0.5,
) -> list[LocalOutcome]:
    """Run the jobs through submitit's local executor, len(slots) at a time; a slot is a GPU id (each run
    sees only its GPU) or None (CPU). Blocks until all ended. Ctrl-C: no new runs start, the running ones
    save and stop (a second Ctrl-C leaves at once; they still save)."""
    import submitit

    executor = submitit.LocalExecutor(folder=record.dir / LOGS_DIR)
    pending = list(jobs)
    free = list(slots)
    running: dict[int, tuple[Any, Job, int | None, float]] = {}
    outcomes: list[LocalOutcome] = []
    stopping = False
    last_signal = 0.0

    def collect(index: int) -> None:
        sub, job, slot, t0 = running.pop(index)
        free.append(slot)
        elapsed = time.monotonic() - t0
        spec = job.run
        if sub.paths.result_pickle.exists():
            try:
                res = sub.result()
                outcome = LocalOutcome(
                    spec.index,
                    str(res.get("status")),
                    res.get("session"),
                    int(res.get("step", 0)),
                    res.get("loss"),
                    seconds=elapsed,
                )
            except Exception as exc:  # noqa: BLE001 - the run's own error, reported, not raised
                message = str(exc).strip().splitlines()
                outcome = LocalOutcome(
                    spec.index, "failed", message=message[-1] if message else repr(exc), seconds=elapsed
                )
        else:
            outcome = LocalOutcome(spec.index, "died", message=f"no result; see {sub.paths.stdout}", seconds=elapsed)
        outcomes.append(outcome)
        say(_describe(outcome, spec, len(jobs)))

    while pending or running:
        try:
            while pending and free and not stopping:
                job = pending.pop(0)
                slot = free.pop(0)
                executor.update_parameters(
                    timeout_min=time_min or LOCAL_TIMEOUT_MINUTES,
                    stderr_to_stdout=True,
                    gpus_per_node=0 if slot is None else 1,
                    visible_gpus=() if slot is None else (slot,),
                )
                with _children_ignore_sigint():
                    sub = executor.submit(run_job, job)
                running[job.run.index] = (sub, job, slot, time.monotonic())
                if on_submitted is not None:
                    on_submitted({job.run.index: str(sub.job_id)})
                where = "CPU" if slot is None else f"GPU {slot}"
                say(f"run {job.run.index + 1}/{len(jobs)} started on {where}: {job.run.name}")
            for index in [i for i, (sub, *_rest) in running.items() if sub.done()]:
                collect(index)
            if stopping and running and time.monotonic() - last_signal > 5:
                # Repeat: a run still starting up may not have its handler yet (submitit ignores
                # SIGTERM until our function runs); the runs ignore repeats once stopping.
                _signal_local(running.values())
                last_signal = time.monotonic()
            time.sleep(poll_s)
        except KeyboardInterrupt:
            if stopping:
                say("leaving now; the runs still save their latest step and stop")
                raise
            stopping = True
            for job in pending:
                outcomes.append(LocalOutcome(job.run.index, "not started"))
            pending.clear()
            if running:
                say(
                    f"stopping {len(running)} running run(s): each saves its latest step "
                    "(Ctrl-C again to leave at once)"
                )
            _signal_local(running.values())
            last_signal = time.monotonic()
    return sorted(outcomes, key=lambda o: o.index)


def _signal_local(entries: Any) -> None:
    """SIGTERM to each job's controller, which forwards it to the run."""
    for sub, *_rest in entries:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(sub.job_id), signal.SIGTERM)


def _describe(o: LocalOutcome, spec: RunSpec, n: int) -> str:
    head = f"run {spec.index + 1}/{n} {o.status}"
    if o.session:
        head += f": session {o.session}, step {o.step}/{spec.config.iterations}"
    if o.loss is not None:
        head += f", loss {o.loss:.4f}"
    if o.message:
        head += f": {o.message}"
    return head + f" ({o.seconds:.0f} s)"
