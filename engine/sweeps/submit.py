"""From a sweep file to runs under way: which executor, how many runs at a time, whether the sweep is new
or resumed (and which of its runs go again), the jobs, and the submission, recorded only once it has
succeeded (a refused submission leaves nothing that blocks running the file again). `nada-tui sweep`
parses its arguments into `SubmitOptions` and prints what these functions return. Torch-free at import.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.sweeps import execute, plan
from engine.sweeps.checks import check_sweep
from engine.sweeps.execute import DEFAULT_SLURM_MINUTES, LocalOutcome, SubmitError
from engine.sweeps.fileformat import RunSpec, Sweep, SweepError, load_sweep
from engine.sweeps.job import UNSAVED, Job, passed_env
from engine.sweeps.record import MANIFEST, SweepRecord, new_record, read_record, sweep_dir
from engine.sweeps.status import run_statuses

EXECUTORS = ("auto", "slurm", "local")
SLURM_OVERRIDES = ("partition", "time", "gpus_per_job", "cpus_per_job", "array_parallelism")


@dataclass
class SubmitOptions:
    """What the command line chose, beside the file."""

    executor: str = "auto"  # auto: slurm where sbatch exists, else local
    resume: bool = False
    parallel: int | None = None  # local: runs at a time (default one per visible GPU, or 1 on CPU)
    device: str | None = None  # for every run
    checkpoint_every: int = 50
    slurm: dict[str, Any] = field(default_factory=dict)  # overrides of the file's [slurm] table


def load_checked(path: str) -> Sweep:
    """The sweep file, parsed (with the run cap) and checked against the registry and CLIP's tokenizer."""
    return check_sweep(load_sweep(path))


def choose_executor(requested: str) -> str:
    if requested == "slurm" and not execute.slurm_available():
        raise SweepError("--executor slurm: no `sbatch` on this machine (is Slurm installed and on PATH?)")
    if requested == "auto":
        return "slurm" if execute.slurm_available() else "local"
    return requested


def local_slots(parallel: int | None, device: str | None) -> list[int | None]:
    """One slot per run at a time: a GPU id (round robin over the visible GPUs), or None for the CPU."""
    gpus = execute.visible_gpus() if (device or "auto").lower() != "cpu" else []
    if gpus:
        n = parallel or len(gpus)
        return [gpus[i % len(gpus)] for i in range(n)]
    return [None] * (parallel or 1)


def where_local(slots: Sequence[int | None]) -> str:
    gpus = sorted({s for s in slots if s is not None})
    return f"GPUs {','.join(str(s) for s in gpus)}" if gpus else "CPU"


def slurm_options(sweep: Sweep, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The file's [slurm] table with the command line's overrides on top."""
    return {**sweep.slurm, **{k: v for k, v in overrides.items() if v is not None}}


def slurm_words(options: Mapping[str, Any], sweep: Sweep, runs: int, max_array: int | None) -> str:
    """How the runs go to Slurm, in words: 'a Slurm job array of 3, 60 min per run, 0 GPU(s) per run'."""
    gpus = options.get("gpus_per_job")
    if gpus is None:
        gpus = 0 if all(r.demo for r in sweep.runs) else 1
    if max_array and runs > max_array:
        arrays = -(-runs // max_array)
        parts = [f"{arrays} Slurm job arrays of at most {max_array} (the cluster's MaxArraySize), {runs} runs"]
    else:
        parts = [f"a Slurm job array of {runs}"]
    if options.get("partition"):
        parts.append(f"partition {options['partition']}")
    parts.append(f"{options.get('time') or DEFAULT_SLURM_MINUTES} min per run")
    parts.append(f"{gpus} GPU(s) per run")
    if options.get("array_parallelism"):
        parts.append(f"at most {options['array_parallelism']} at once")
    return ", ".join(parts)


@dataclass
class Prepared:
    """A sweep about to be submitted: its record (not yet saved when new), the runs to start and the
    sessions to continue, and notes about the runs left alone."""

    sweep: Sweep
    record: SweepRecord
    new: bool
    to_start: list[RunSpec]
    resumed: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def prepare(sweep: Sweep, resume: bool, file_shown: str) -> Prepared:
    """A new sweep, or with `resume` the unfinished runs of the recorded one. SweepError when the sweep
    exists and `resume` is not given, or when the file changed since it was recorded."""
    existing = None
    try:
        existing = read_record(sweep.id)
    except SweepError:
        if (sweep_dir(sweep) / MANIFEST).exists():
            raise  # there, but unreadable: say so rather than start over it
    if existing is None:
        return Prepared(sweep, new_record(sweep), True, list(sweep.runs))
    again = shlex.quote(file_shown)
    if not resume:
        raise SweepError(
            f"sweep '{sweep.name}' already exists ({len(existing.runs)} runs, {existing.created}). Continue it "
            f"with `nada-tui sweep {again} --resume`, see it with `nada-tui sweep status "
            f"{shlex.quote(sweep.name)}`, delete it with `nada-tui sweep delete {shlex.quote(sweep.name)}`, "
            'or give the file another name = "...".'
        )
    why = plan.changed_since(existing, sweep)
    if why:
        raise SweepError(
            f"{file_shown}: the file changed since sweep '{sweep.name}' was submitted: {why}. "
            'Give the changed sweep a new name = "...".'
        )
    to_start, resumed, notes = plan.resume_plan(existing.runs, run_statuses(existing))
    return Prepared(sweep, existing, False, to_start, resumed, notes)


def jobs(prepared: Prepared, options: SubmitOptions, threads: int | None = None) -> list[Job]:
    record, env = prepared.record, passed_env()
    return [
        Job(
            sweep_name=prepared.sweep.name,
            record_dir=str(record.dir),
            run=run,
            sessions_root=record.sessions_root,
            env=env,
            resume=prepared.resumed.get(run.index),
            threads=threads,
            device=options.device,
            checkpoint_every=options.checkpoint_every,
            sweep_file=record.file,
        )
        for run in prepared.to_start
    ]


def submit_to_slurm(prepared: Prepared, options: SubmitOptions, max_array: int | None) -> dict[int, str]:
    """Submit the runs to start as Slurm job arrays that fit `max_array` (the cluster's MaxArraySize, see
    `execute.max_array_size`); run index -> job id. The record is written once sbatch accepted all of
    them; when it refuses, nothing is left submitted, and a new sweep leaves no record (SubmitError)."""
    sweep, record = prepared.sweep, prepared.record
    params = execute.slurm_parameters(
        slurm_options(sweep, options.slurm), record, all(r.demo for r in sweep.runs)
    )
    try:
        ids = execute.submit_slurm(record, jobs(prepared, options), params, max_array)
    except SubmitError:
        if prepared.new and not (record.dir / MANIFEST).exists():
            shutil.rmtree(record.dir, ignore_errors=True)  # submitit's logs of the refused submission
        raise
    record.add_submission("slurm", ids, prepared.resumed)
    return ids


def run_here(
    prepared: Prepared,
    options: SubmitOptions,
    slots: Sequence[int | None],
    say: Callable[[str], None],
) -> list[LocalOutcome]:
    """Run the runs to start on this machine, len(slots) at a time, until all have ended. Ctrl-C,
    SIGTERM and SIGHUP (a dropped SSH connection) stop them, each saving its latest step, and raise
    KeyboardInterrupt here."""
    record = prepared.record
    threads = max(1, (os.cpu_count() or 1) // len(slots))
    record.add_submission("local", {}, prepared.resumed)

    def submitted(ids: dict[int, str]) -> None:
        record.submissions[-1]["jobs"].update({str(i): j for i, j in ids.items()})
        record.save()

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return execute.run_local(
            record,
            jobs(prepared, options, threads),
            slots,
            say,
            time_min=options.slurm.get("time"),
            on_submitted=submitted,
        )
    finally:
        for sig, old in previous.items():
            with contextlib.suppress(ValueError):
                signal.signal(sig, old)


def local_exit_code(outcomes: Sequence[LocalOutcome]) -> int:
    """As `nada-tui train` exits: 0 when every run finished and was saved, 130 when some were stopped
    before their end (they continue with --resume), else 1 (failed, died, or the last save failed)."""
    if any(o.status in ("interrupted", "not started") for o in outcomes):
        return 130
    return 0 if all(o.status == "finished" for o in outcomes) else 1


def needs_disk(outcomes: Sequence[LocalOutcome]) -> bool:
    """Whether some run's last save failed (its session holds an earlier step)."""
    return any(o.status == UNSAVED for o in outcomes)
