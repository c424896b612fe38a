"""The plan of a sweep: how many runs a file makes (counted before anything is expanded, against a cap),
the grid's points, the settings all runs share, and the resume rules (which runs of a recorded sweep run
again, continue, or are left alone). Torch-free; imports nothing else of the package at run time."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from engine.config import Setting
    from engine.sweeps.fileformat import RunSpec, Sweep
    from engine.sweeps.record import SweepRecord
    from engine.sweeps.status import RunStatus

# More runs than this is almost surely a mistake (a list with a typo'd range, one axis too many), and
# expanding it costs memory and time before anything useful happens (a million runs: minutes, gigabytes).
MAX_RUNS = 10_000

T = TypeVar("T")


def run_count(entries: int, axis_lengths: Sequence[int]) -> int:
    """The number of runs: [[runs]] entries times the product of the grid's list lengths."""
    return entries * math.prod(axis_lengths)


def too_many(count: int) -> str:
    return (
        f"this sweep makes {count:,} runs, over the cap of {MAX_RUNS:,}: "
        "shorten the [grid] lists or split the sweep into several files"
    )


def grid_points(grid: Mapping[str, Sequence[T]]) -> list[dict[str, T]]:
    """Every combination of the grid's values, the last key varying fastest; one empty point for no grid."""
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())] or [{}]


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive pieces of at most `size` (a Slurm job array's limit)."""
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + max(1, size)]


def shared_settings(sweep: Sweep) -> list[Setting]:
    """The settings every run of the sweep has with the same value (and that the file does not vary)."""
    from engine.config import SETTINGS

    first = sweep.runs[0].config
    return [
        s
        for s in SETTINGS.values()
        if s.name not in sweep.keys and all(getattr(r.config, s.name) == getattr(first, s.name) for r in sweep.runs)
    ]


def changed_since(record: SweepRecord, sweep: Sweep) -> str | None:
    """Why the file no longer matches the sweep as recorded, or None."""
    if len(record.runs) != len(sweep.runs):
        return f"it now expands to {len(sweep.runs)} runs, the sweep has {len(record.runs)}"
    for old, new in zip(record.runs, sweep.runs, strict=True):
        if (old.model_id, old.config, old.name) != (new.model_id, new.config, new.name):
            return f"run {new.index + 1} differs ('{old.name}' was submitted)"
    return None


def resume_plan(
    runs: Sequence[RunSpec], rows: Sequence[RunStatus]
) -> tuple[list[RunSpec], dict[int, str], list[str]]:
    """(runs to submit, run index -> session to continue, lines about the runs left alone). Interrupted
    and stopped runs continue their session; finished, running and queued ones are left alone; the rest
    (never started, failed, damaged) start afresh."""
    to_start: list[RunSpec] = []
    resumed: dict[int, str] = {}
    notes: list[str] = []
    for run, row in zip(runs, rows, strict=True):
        label = f"run {run.index + 1}"
        if row.status == "finished":
            notes.append(f"{label}: finished (session {row.session_id})")
        elif row.status in ("running", "queued", "starting", "paused"):
            notes.append(f"{label}: {row.status}" + (f" (session {row.session_id})" if row.session_id else ""))
        elif row.status in ("interrupted", "stopped") and row.session_id:
            resumed[run.index] = row.session_id
            to_start.append(run)
        else:
            to_start.append(run)
    return to_start, resumed, notes

