"""`nada-tui sweep FILE`: many training runs from one TOML file, on a Slurm cluster (a job array) or on
this machine (one run per GPU, or `--parallel N` on CPU); `nada-tui sweep status NAME`: how they are doing.

The file format is described in `engine/sweeps.py` and the README's "Sweeps" section.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
from typing import Any

from nada_tui.cli import CliError
from nada_tui.cli._common import add_run_options

STATUS_WORD = "status"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run many trainings from a TOML sweep file (Slurm job array, or this machine's GPUs)",
        description="Expand a sweep file ([defaults], [grid], [[runs]], [slurm]) into runs and train each "
        "one as an ordinary session: as a Slurm job array where `sbatch` exists, else here, one run per "
        "visible GPU (or --parallel N at a time on CPU). `nada-tui sweep status NAME` shows a table of "
        "its runs. A run that is cancelled or killed is left `interrupted`; --resume continues the "
        "sweep's unfinished runs.",
        epilog="Slurm: cancel with `scancel JOBID` (printed at submission). Here: Ctrl-C stops the runs, "
        "each saving its latest step.",
    )
    p.add_argument("file", metavar="FILE", help="the sweep file (.toml), or `status` to see a sweep's runs")
    p.add_argument("name", nargs="?", metavar="NAME", help="with `status`: the sweep's name (default: list sweeps)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the expanded runs and where they would go; submit nothing"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue this sweep: interrupted runs resume, runs that never started or failed start "
        "again, finished and running ones are left alone",
    )
    p.add_argument(
        "--executor",
        choices=["auto", "slurm", "local"],
        default="auto",
        help="slurm (needs sbatch), local (this machine), or auto: slurm when sbatch exists",
    )
    p.add_argument("--wait", action="store_true", help="Slurm: wait until every run has ended, then print the table")
    p.add_argument("--json", action="store_true", help="with `status`: one JSON object per run")
    g = p.add_argument_group("this machine (local executor)")
    g.add_argument(
        "--parallel",
        type=int,
        default=None,
        metavar="N",
        help="runs at a time (default: one per visible GPU, or 1 on CPU)",
    )
    s = p.add_argument_group("Slurm (override the file's [slurm] table)")
    s.add_argument("--partition", default=None, metavar="P", help="the partition")
    s.add_argument(
        "--time",
        type=int,
        default=None,
        metavar="MIN",
        help="time limit of each run in minutes (default 60); here too, as a limit per run",
    )
    s.add_argument(
        "--gpus-per-job",
        type=int,
        default=None,
        metavar="G",
        help="GPUs per run (default 1; 0 for sweeps of the demo models)",
    )
    s.add_argument("--cpus-per-job", type=int, default=None, metavar="C", help="CPU cores per run")
    s.add_argument(
        "--array-parallelism",
        type=int,
        default=None,
        metavar="N",
        help="runs of the job array that may run at once (default: all)",
    )
    add_run_options(p, "checkpoint_every", "device")  # for every run
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.file == STATUS_WORD:
        return cmd_status(args)
    if args.name is not None:
        raise CliError(f"unexpected argument {args.name!r} (did you mean `nada-tui sweep status {args.name}`?)", 2)
    for flag in ("parallel", "time", "gpus_per_job", "cpus_per_job", "array_parallelism"):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag == "gpus_per_job" else 1):
            raise CliError(f"--{flag.replace('_', '-')} must be {'0' if flag == 'gpus_per_job' else '1'} or more", 2)
    return cmd_submit(args)


# ----- submitting -----------------------------------------------------------------------------------
def _load(path: str) -> Any:
    from engine import sweeps

    try:
        return sweeps.check_sweep(sweeps.load_sweep(path))
    except sweeps.SweepError as exc:
        raise CliError(str(exc), 2) from None


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_short(v) for v in value)
    return str(value)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _options(args: argparse.Namespace, sweep: Any) -> dict[str, Any]:
    options = dict(sweep.slurm)
    for key in ("partition", "time", "gpus_per_job", "cpus_per_job", "array_parallelism"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    return options


def _executor(args: argparse.Namespace) -> str:
    from engine.sweep_exec import slurm_available

    if args.executor == "slurm" and not slurm_available():
        raise CliError("--executor slurm: no `sbatch` on this machine (is Slurm installed and on PATH?)", 2)
    if args.executor == "auto":
        return "slurm" if slurm_available() else "local"
    return args.executor


def _slots(args: argparse.Namespace) -> list[int | None]:
    from engine.sweep_exec import visible_gpus

    device = (args.run_device or "auto").lower()
    gpus = visible_gpus() if device != "cpu" else []
    if gpus:
        n = args.parallel or len(gpus)
        return [gpus[i % len(gpus)] for i in range(n)]
    return [None] * (args.parallel or 1)


def _print_plan(sweep: Any, executor: str, options: dict[str, Any], args: argparse.Namespace) -> None:
    from engine.config import SETTINGS

    keys = list(sweep.keys)
    rows = [["#", "MODEL", *[k.upper() for k in keys], "NAME"]]
    for r in sweep.runs:
        model = r.model_id if len(r.model_id) < 28 else "..." + r.model_id[-25:]
        rows.append([str(r.index + 1), model, *[_short(r.values.get(k, "")) for k in keys], r.name])
    print(f"sweep '{sweep.name}': {len(sweep.runs)} run(s)" + (f", varying {', '.join(keys)}" if keys else ""))
    print(_table(rows))
    first = sweep.runs[0].config
    same = [
        s
        for s in SETTINGS.values()
        if s.name not in keys and all(getattr(r.config, s.name) == getattr(first, s.name) for r in sweep.runs)
    ]
    print("shared: " + ", ".join(f"{s.sweep_key}={s.format(getattr(first, s.name))}" for s in same))
    if executor == "slurm":
        print("would submit: " + _slurm_words(options, sweep))
    else:
        slots = _slots(args)
        where = "CPU" if slots[0] is None else f"GPUs {','.join(str(s) for s in sorted(set(slots)))}"
        print(f"would run here: {len(slots)} at a time on {where}")


def _slurm_words(options: dict[str, Any], sweep: Any) -> str:
    from engine.sweep_exec import DEFAULT_SLURM_MINUTES

    gpus = options.get("gpus_per_job")
    if gpus is None:
        gpus = 0 if all(r.demo for r in sweep.runs) else 1
    parts = [f"a Slurm job array of {len(sweep.runs)}"]
    if options.get("partition"):
        parts.append(f"partition {options['partition']}")
    parts.append(f"{options.get('time') or DEFAULT_SLURM_MINUTES} min per run")
    parts.append(f"{gpus} GPU(s) per run")
    if options.get("array_parallelism"):
        parts.append(f"at most {options['array_parallelism']} at once")
    return ", ".join(parts)


def _same_runs(record: Any, sweep: Any) -> str | None:
    """Why the file no longer matches the sweep as submitted, or None."""
    if len(record.runs) != len(sweep.runs):
        return f"it now expands to {len(sweep.runs)} runs, the sweep has {len(record.runs)}"
    for old, new in zip(record.runs, sweep.runs, strict=True):
        if (old.model_id, old.config, old.name) != (new.model_id, new.config, new.name):
            return f"run {new.index + 1} differs ('{old.name}' was submitted)"
    return None


def cmd_submit(args: argparse.Namespace) -> int:
    from engine import sweep_exec, sweeps
    from engine.sweep_exec import Job

    sweep = _load(args.file)
    executor = _executor(args)
    options = _options(args, sweep)
    if args.dry_run:
        _print_plan(sweep, executor, options, args)
        return 0

    existing = None
    try:
        existing = sweeps.read_record(sweep.id)
    except sweeps.SweepError:
        if (sweeps.sweep_dir(sweep) / sweeps.MANIFEST).exists():
            raise
    if existing is not None and not args.resume:
        raise CliError(
            f"sweep '{sweep.name}' already exists ({len(existing.runs)} runs, {existing.created}). Continue it with "
            f"`nada-tui sweep {shlex.quote(args.file)} --resume`, see it with `nada-tui sweep status "
            f'{shlex.quote(sweep.name)}`, or give the file another name = "...".',
            2,
        )
    to_start: list[Any] = list(sweep.runs)
    resumed: dict[int, str] = {}
    record = existing
    if existing is not None:
        why = _same_runs(existing, sweep)
        if why:
            raise CliError(
                f"{args.file}: the file changed since sweep '{sweep.name}' was submitted: {why}. "
                'Give the changed sweep a new name = "...".',
                2,
            )
        to_start, resumed, skipped = _resume_plan(existing)
        for line in skipped:
            print(line)
        if not to_start:
            print(f"sweep '{sweep.name}': nothing to resume.")
            return 0
    else:
        record = sweeps.new_record(sweep)
        record.save()
    assert record is not None
    env = sweep_exec.passed_env()
    logs = record.dir / sweeps.LOGS_DIR

    def job(run: Any, threads: int | None = None) -> Job:
        return Job(
            sweep_name=sweep.name,
            record_dir=str(record.dir),
            run=run,
            sessions_root=record.sessions_root,
            env=env,
            resume=resumed.get(run.index),
            threads=threads,
            device=args.run_device,
            checkpoint_every=args.checkpoint_every,
            sweep_file=record.file,
        )

    verb = "resuming" if existing is not None else "submitting"
    if executor == "slurm":
        params = sweep_exec.slurm_parameters(options, record, all(r.demo for r in sweep.runs))
        try:
            ids = sweep_exec.submit_slurm(record, [job(r) for r in to_start], params)
        except Exception as exc:  # submitit raises its own errors with sbatch's message inside
            raise CliError(f"sbatch refused the sweep: {str(exc).strip()}", 1) from None
        record.add_submission("slurm", ids, resumed)
        array = sorted({j.split("_")[0] for j in ids.values()})
        print(
            f"sweep '{sweep.name}': {verb} {len(ids)} run(s) as Slurm job {', '.join(array)} "
            f"({_slurm_words(options, sweep).replace(f'a Slurm job array of {len(sweep.runs)}, ', '')})"
        )
        print(f"  logs:   {logs}/")
        print(f"  status: nada-tui sweep status {shlex.quote(sweep.name)}")
        print(f"  cancel: scancel {' '.join(array)}   (cancelled runs can continue: --resume)")
        if not args.wait:
            return 0
        sweep_exec.wait_slurm(list(ids.values()))
        rows = sweeps.run_statuses(sweeps.read_record(sweep.id))
        print(_status_table(sweeps.read_record(sweep.id), rows))
        return 0 if all(r.status == "finished" for r in rows) else 1

    slots = _slots(args)
    cpus = os.cpu_count() or 1
    threads = max(1, cpus // len(slots))
    where = "CPU" if slots[0] is None else "GPU"
    print(
        f"sweep '{sweep.name}': {verb} {len(to_start)} run(s) here, {len(slots)} at a time on {where} "
        f"(logs: {logs}/; Ctrl-C stops them, each saving its latest step)"
    )
    record.add_submission("local", {}, resumed)

    def submitted(ids: dict[int, str]) -> None:
        record.submissions[-1]["jobs"].update({str(i): j for i, j in ids.items()})
        record.save()

    def say(text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed terminal must not stop the bookkeeping
            print(text, flush=True)

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM and SIGHUP (a dropped SSH connection) stop the sweep the way Ctrl-C does: runs save and stop.
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        outcomes = sweep_exec.run_local(
            record, [job(r, threads) for r in to_start], slots, say, time_min=args.time, on_submitted=submitted
        )
    except KeyboardInterrupt:
        with contextlib.suppress(OSError, ValueError):
            print(f"Continue later with: nada-tui sweep {shlex.quote(args.file)} --resume", file=sys.stderr)
        return 130
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    print(
        ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f". Table: nada-tui sweep status "
        f"{shlex.quote(sweep.name)}"
    )
    if any(o.status in ("interrupted", "not started") for o in outcomes):
        print(f"Continue with: nada-tui sweep {shlex.quote(args.file)} --resume")
        return 130
    return 0 if all(o.status == "finished" for o in outcomes) else 1


def _resume_plan(record: Any) -> tuple[list[Any], dict[int, str], list[str]]:
    """(runs to submit, run index -> session to continue, lines about the runs left alone)."""
    from engine import sweeps

    to_start, resumed, notes = [], {}, []
    for run, row in zip(record.runs, sweeps.run_statuses(record), strict=True):
        label = f"run {run.index + 1}"
        if row.status == "finished":
            notes.append(f"{label}: finished (session {row.session_id})")
        elif row.status in ("running", "queued", "starting", "paused"):
            notes.append(f"{label}: {row.status}" + (f" (session {row.session_id})" if row.session_id else ""))
        elif row.status in ("interrupted", "stopped") and row.session_id:
            resumed[run.index] = row.session_id
            to_start.append(run)
        else:  # never started, failed, damaged: start afresh
            to_start.append(run)
    return to_start, resumed, notes


# ----- status ---------------------------------------------------------------------------------------
def _status_table(record: Any, rows: list[Any]) -> str:
    keys = list(record.keys)
    table = [["#", "STATUS", "STEP", "LOSS", "SESSION", *[k.upper() for k in keys]]]
    for r in rows:
        table.append(
            [
                str(r.index + 1),
                r.status,
                f"{r.step}/{r.iterations}",
                "-" if r.loss is None else f"{r.loss:.4f}",
                r.session_id or "-",
                *[_short(r.values.get(k, "")) for k in keys],
            ]
        )
    return _table(table)


def cmd_status(args: argparse.Namespace) -> int:
    from engine import sweeps

    if args.name is None:
        names = sweeps.list_sweeps()
        if not names:
            print(f"No sweeps yet in {sweeps.sweeps_dir()}. Start one: nada-tui sweep FILE")
            return 0
        rows = [["SWEEP", "RUNS", "FINISHED", "CREATED"]]
        for ident in names:
            try:
                rec = sweeps.read_record(ident)
            except sweeps.SweepError as exc:
                print(f"damaged: {exc}", file=sys.stderr)
                continue
            done = sum(r.status == "finished" for r in sweeps.run_statuses(rec))
            rows.append([rec.name, str(len(rec.runs)), str(done), rec.created])
        print(_table(rows))
        return 0
    name = args.name
    if name.endswith(".toml") and os.path.isfile(name):
        try:
            name = sweeps.load_sweep(name).name
        except sweeps.SweepError as exc:
            raise CliError(str(exc), 2) from None
    try:
        record = sweeps.read_record(name)
    except sweeps.SweepError as exc:
        raise CliError(str(exc), 2) from None
    rows = sweeps.run_statuses(record)
    if args.json:
        for r in rows:
            print(
                json.dumps(
                    {
                        "index": r.index,
                        "name": r.name,
                        "status": r.status,
                        "session": r.session_id,
                        "step": r.step,
                        "iterations": r.iterations,
                        "loss": r.loss,
                        "values": r.values,
                        "job": r.job,
                        "log": r.log,
                        "message": r.message,
                    }
                )
            )
        return 0
    print(f"sweep '{record.name}' ({record.created}; sessions in {record.sessions_root})")
    print(_status_table(record, rows))
    for r in rows:
        if r.message and r.status not in ("finished", "running"):
            print(f"run {r.index + 1}: {r.message}" + (f"; log: {r.log}" if r.log else ""))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if any(r.status in ("interrupted", "stopped", "failed", "not started") for r in rows) and record.file:
        print(f"Continue the unfinished runs: nada-tui sweep {shlex.quote(record.file)} --resume")
    return 0
