"""Running a sweep's jobs through submitit: Slurm job arrays where `sbatch` exists (split to fit the
cluster's MaxArraySize), else submitit's local executor with one run per visible GPU (or `parallel` runs
at a time on CPU). Torch-free at import; submitit is imported when something is submitted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.sweeps import plan
from engine.sweeps.fileformat import RunSpec
from engine.sweeps.job import UNSAVED, Job, run_job
from engine.sweeps.record import LOGS_DIR, SweepRecord
from engine.sweeps.status import slurm_states

DEFAULT_SLURM_MINUTES = 60
LOCAL_TIMEOUT_MINUTES = 7 * 24 * 60  # submitit's local default is 2 minutes: no limit we would want


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


def parse_max_array_size(config_text: str) -> int | None:
    """MaxArraySize from `scontrol show config` output ("MaxArraySize = 1001"), or None."""
    for line in config_text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return int(value.strip())
    return None


def max_array_size() -> int | None:
    """The cluster's MaxArraySize (a job array's indices must stay below it), or None when scontrol
    cannot say."""
    import subprocess

    try:
        out = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_max_array_size(out.stdout) if out.returncode == 0 else None


class SubmitError(RuntimeError):
    """sbatch refused a submission; whatever part of it was submitted has been cancelled."""


def submit_slurm(
    record: SweepRecord, jobs: Sequence[Job], params: Mapping[str, Any], max_array: int | None
) -> dict[int, str]:
    """Submit the jobs as Slurm job arrays of at most `max_array` runs each (the cluster's MaxArraySize;
    None: one array); run index -> Slurm job id ("1234_0"). All or nothing: when sbatch refuses a part,
    the parts already submitted are cancelled and SubmitError says why."""
    import submitit

    executor = submitit.SlurmExecutor(folder=record.dir / LOGS_DIR, max_num_timeout=0)
    executor.update_parameters(**params)
    ids: dict[int, str] = {}
    for part in plan.chunks(jobs, max_array or len(jobs)):
        submitted = []
        try:
            with executor.batch():
                for job in part:
                    submitted.append(executor.submit(run_job, job))
        except Exception as exc:  # submitit raises its own errors with sbatch's message inside
            cancel_slurm(list(ids.values()))
            text = str(exc).strip()
            if "array" in text.lower():
                limit = f"MaxArraySize is {max_array}" if max_array else "scontrol did not say its MaxArraySize"
                text += f" (Slurm's job arrays are limited by MaxArraySize; {limit})"
            raise SubmitError(f"sbatch refused the sweep: {text}") from None
        ids.update({job.run.index: str(s.job_id) for job, s in zip(part, submitted, strict=True)})
    return ids


def wait_slurm(job_ids: Sequence[str], poll_s: float = 2.0, timeout_s: float | None = None) -> bool:
    """Wait until squeue no longer lists any of the jobs (submitit asks sacct, which needs accounting).
    False on timeout."""
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
    saved_step: int | None = None  # the step the session holds, when a run's last save failed


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
                    message=res.get("checkpoint_error"),
                    seconds=elapsed,
                    saved_step=res.get("saved_step"),
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
    total = spec.config.iterations
    if o.status == UNSAVED:  # as `nada-tui train` says it: what was trained, and what the session holds
        head = (f"run {spec.index + 1}/{n} trained to step {o.step}/{total}, but saving it failed: "
                f"session {o.session} holds step {o.saved_step}/{total}")
    else:
        head = f"run {spec.index + 1}/{n} {o.status}"
        if o.session:
            head += f": session {o.session}, step {o.step}/{total}"
        if o.loss is not None:
            head += f", loss {o.loss:.4f}"
    if o.message:
        head += f": {o.message}"
    return head + f" ({o.seconds:.0f} s)"
