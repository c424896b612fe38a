"""`nada-tui sweep FILE`: many training runs from one TOML file, on a Slurm cluster (job arrays) or on
this machine (one run per GPU, or `--parallel N` on CPU); `nada-tui sweep status NAME`: how they are doing;
`nada-tui sweep delete NAME`: forget a sweep's record. This module parses and prints; the work is done in
`engine.sweeps` (the file format is described in `engine/sweeps/fileformat.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from typing import Any

from engine.sessions.scores import SCORE_KEYS
from nada_tui.cli import CliError
from nada_tui.cli._common import add_run_options

STATUS_WORD = "status"
DELETE_WORD = "delete"
UNDER_WAY = ("running", "queued", "starting")  # a sweep with such runs is not deleted


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run many trainings from a TOML sweep file (Slurm job array, or this machine's GPUs)",
        description="Expand a sweep file ([defaults], [grid], [[runs]], [slurm]) into runs and train each "
        "one as an ordinary session: as Slurm job arrays where `sbatch` exists (split to the cluster's "
        "MaxArraySize), else here, one run per visible GPU (or --parallel N at a time on CPU); a file that "
        "makes too many runs is refused before it is expanded. `nada-tui sweep status NAME` shows a table "
        "of its runs; `nada-tui sweep delete NAME` forgets its record (the sessions stay). A run that is "
        "cancelled or killed is left `interrupted`; --resume continues the sweep's unfinished runs.",
        epilog="Slurm: cancel with `scancel JOBID` (printed at submission). Here: Ctrl-C stops the runs, "
        "each saving its latest step.",
    )
    p.add_argument(
        "file", metavar="FILE", help="the sweep file (.toml), or `status` to see a sweep's runs, or `delete`"
    )
    p.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="with `status`: the sweep's name (default: list sweeps); with `delete`: the sweep to forget",
    )
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
    p.add_argument("--sort", default=None, metavar="SCORE", choices=SCORE_KEYS,
                   help="with `status`: runs by a score, best first (" + ", ".join(SCORE_KEYS) + "); runs "
                   "without it last")
    p.add_argument(
        "-y", "--yes", action="store_true", help="with `delete`: do not ask (needed when stdin is not a terminal)"
    )
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
    if args.file == DELETE_WORD:
        return cmd_delete(args)
    if args.name is not None:
        raise CliError(f"unexpected argument {args.name!r} (did you mean `nada-tui sweep status {args.name}`?)", 2)
    for flag in ("parallel", "time", "gpus_per_job", "cpus_per_job", "array_parallelism"):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag == "gpus_per_job" else 1):
            raise CliError(f"--{flag.replace('_', '-')} must be {'0' if flag == 'gpus_per_job' else '1'} or more", 2)
    return cmd_submit(args)


# ----- printing -------------------------------------------------------------------------------------
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


def _say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # a closed terminal must not stop the bookkeeping
        print(text, flush=True)


def _print_plan(sweep: Any, executor: str, options: Any, max_array: int | None) -> None:
    from engine.sweeps import plan, submit

    keys = list(sweep.keys)
    rows = [["#", "MODEL", *[k.upper() for k in keys], "NAME"]]
    for r in sweep.runs:
        model = r.model_id if len(r.model_id) < 28 else "..." + r.model_id[-25:]
        rows.append([str(r.index + 1), model, *[_short(r.values.get(k, "")) for k in keys], r.name])
    print(f"sweep '{sweep.name}': {len(sweep.runs)} run(s)" + (f", varying {', '.join(keys)}" if keys else ""))
    print(_table(rows))
    first = sweep.runs[0].config
    same = plan.shared_settings(sweep)
    print("shared: " + ", ".join(f"{s.sweep_key}={s.format(getattr(first, s.name))}" for s in same))
    if executor == "slurm":
        words = submit.slurm_words(submit.slurm_options(sweep, options.slurm), sweep, len(sweep.runs), max_array)
        print("would submit: " + words)
    else:
        slots = submit.local_slots(options.parallel, options.device)
        print(f"would run here: {len(slots)} at a time on {submit.where_local(slots)}")


# ----- submitting -----------------------------------------------------------------------------------
def _submit_options(args: argparse.Namespace) -> Any:
    from engine.sweeps.submit import SLURM_OVERRIDES, SubmitOptions

    return SubmitOptions(
        executor=args.executor,
        resume=args.resume,
        parallel=args.parallel,
        device=args.run_device,
        checkpoint_every=args.checkpoint_every,
        slurm={k: getattr(args, k) for k in SLURM_OVERRIDES if getattr(args, k) is not None},
    )


def cmd_submit(args: argparse.Namespace) -> int:
    from engine import sweeps
    from engine.sweeps import execute, submit
    from engine.sweeps.status import count_statuses

    options = _submit_options(args)
    try:
        sweep = submit.load_checked(args.file)
        executor = submit.choose_executor(options.executor)
    except sweeps.SweepError as exc:
        raise CliError(str(exc), 2) from None
    max_array = execute.max_array_size() if executor == "slurm" else None
    if args.dry_run:
        _print_plan(sweep, executor, options, max_array)
        return 0
    try:
        prepared = submit.prepare(sweep, options.resume, args.file)
    except sweeps.SweepError as exc:
        raise CliError(str(exc), 2) from None
    for line in prepared.notes:
        print(line)
    if not prepared.to_start:
        print(f"sweep '{sweep.name}': nothing to resume.")
        return 0
    logs = prepared.record.dir / sweeps.LOGS_DIR
    verb = "submitting" if prepared.new else "resuming"
    name = shlex.quote(sweep.name)
    if executor == "slurm":
        try:
            ids = submit.submit_to_slurm(prepared, options, max_array)
        except execute.SubmitError as exc:
            raise CliError(str(exc), 1) from None
        arrays = sorted({j.split("_")[0] for j in ids.values()}, key=int)
        words = submit.slurm_words(submit.slurm_options(sweep, options.slurm), sweep, len(ids), max_array)
        print(f"sweep '{sweep.name}': {verb} {len(ids)} run(s) as Slurm job {', '.join(arrays)} ({words})")
        print(f"  logs:   {logs}/")
        print(f"  status: nada-tui sweep status {name}")
        print(f"  cancel: scancel {' '.join(arrays)}   (cancelled runs can continue: --resume)")
        if not args.wait:
            return 0
        execute.wait_slurm(list(ids.values()))
        record = sweeps.read_record(sweep.id)
        rows = sweeps.run_statuses(record)
        print(_status_table(record, rows))
        return 0 if all(r.status == "finished" for r in rows) else 1

    slots = submit.local_slots(options.parallel, options.device)
    where = "CPU" if slots[0] is None else "GPU"
    print(
        f"sweep '{sweep.name}': {verb} {len(prepared.to_start)} run(s) here, {len(slots)} at a time on {where} "
        f"(logs: {logs}/; Ctrl-C stops them, each saving its latest step)"
    )
    again = f"nada-tui sweep {shlex.quote(args.file)} --resume"
    try:
        outcomes = submit.run_here(prepared, options, slots, _say)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError, ValueError):
            print(f"Continue later with: {again}", file=sys.stderr)
        return 130
    print(f"{count_statuses([o.status for o in outcomes])}. Table: nada-tui sweep status {name}")
    code = submit.local_exit_code(outcomes)
    if submit.needs_disk(outcomes):
        print(f"Free some disk space, then continue the runs that were not saved with: {again}")
    elif code == 130:
        print(f"Continue with: {again}")
    return code


# ----- status and delete ----------------------------------------------------------------------------
def _status_table(record: Any, rows: list[Any]) -> str:
    keys = list(record.keys)
    from engine.sessions.scores import SHORT_NAMES, format_score, score

    shown = [k for k in SCORE_KEYS if any(score(r.scores, k) is not None for r in rows)]
    table = [["#", "STATUS", "STEP", "MEAN LOSS (20)", *[SHORT_NAMES[k] for k in shown], "SESSION",
              *[k.upper() for k in keys]]]
    for r in rows:
        table.append(
            [
                str(r.index + 1),
                r.status,
                f"{r.step}/{r.iterations}",
                "-" if r.loss is None else f"{r.loss:.4f}",
                *[format_score(score(r.scores, k), k) for k in shown],
                r.session_id or "-",
                *[_short(r.values.get(k, "")) for k in keys],
            ]
        )
    return _table(table)


def _record_of(name: str) -> Any:
    """A sweep's record by name, id, or its sweep file."""
    from engine import sweeps

    try:
        if name.endswith(".toml") and os.path.isfile(name):
            name = sweeps.load_sweep(name).name
        return sweeps.read_record(name)
    except sweeps.SweepError as exc:
        raise CliError(str(exc), 2) from None


def cmd_status(args: argparse.Namespace) -> int:
    from engine import sweeps
    from engine.sweeps.status import count_statuses

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
    record = _record_of(args.name)
    rows = sweeps.run_statuses(record)
    if args.sort:
        from engine.sessions.scores import sort_key

        rows.sort(key=sort_key(args.sort))
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
                        "scores": r.scores,
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
    if any(r.scores for r in rows):
        print("DIR clip_direction, TGT clip_target, DIV diversity (DIV0: the frozen generator's); "
              "`nada-tui eval SESSION` measures them again with more samples")
    for r in rows:
        if r.message and r.status not in ("finished", "running"):
            print(f"run {r.index + 1}: {r.message}" + (f"; log: {r.log}" if r.log else ""))
    print(count_statuses([r.status for r in rows]))
    if any(r.status in ("interrupted", "stopped", "failed", "not started") for r in rows) and record.file:
        print(f"Continue the unfinished runs: nada-tui sweep {shlex.quote(record.file)} --resume")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from engine import sweeps

    if args.name is None:
        raise CliError("which sweep? `nada-tui sweep delete NAME` (see `nada-tui sweep status`)", 2)
    try:
        record = _record_of(args.name)
    except CliError:
        if not sweeps.sweep_dir(args.name).is_dir():
            raise
        record = None  # there, but its sweep.json is unreadable: deleting it is the way out
    name = args.name if record is None else record.name
    about = "its record is unreadable" if record is None else f"{len(record.runs)} runs, {record.created}"
    active = [] if record is None else [r for r in sweeps.run_statuses(record) if r.status in UNDER_WAY]
    if active:
        runs = ", ".join(str(r.index + 1) for r in active)
        raise CliError(
            f"sweep '{name}' still has runs under way (run {runs}): stop them first "
            "(scancel, or Ctrl-C in the terminal that runs the sweep)",
            2,
        )
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("deleting needs confirmation: add --yes", 2)
        answer = input(
            f"Delete the record of sweep '{name}' ({about})? "
            "Its sessions stay. [y/N] "
        ).strip().lower()
        if answer not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    path = sweeps.delete_record(args.name if record is None else record.id)
    print(f"deleted sweep '{name}' ({path}); its sessions stay (nada-tui sessions list)")
    return 0
