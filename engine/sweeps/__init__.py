"""Sweeps: many training runs from one TOML file, on a Slurm cluster or on this machine. One job a module:

- `locator`: where each key of a TOML text is (`key_lines`), for errors that name the line.
- `fileformat`: the sweep file read into a `Sweep` of `RunSpec`s (`parse_sweep`, `load_sweep`, `SweepError`).
- `checks`: the checks that need the model registry and CLIP's tokenizer (`check_sweep`; imports torch).
- `plan`: the run count and its cap (before expanding), the grid's points, the resume rules.
- `record`: the sweep's record on disk (`<data dir>/sweeps/<id>/`), listing and deleting it.
- `status`: how each run is doing (its session's saved step, Slurm's queue, the local process).
- `job`: what each run's job does (`run_job`), in its own process.
- `execute`: submitit's Slurm executor (arrays split to the cluster's MaxArraySize) and local executor.
- `submit`: from a file to runs under way, for `nada-tui sweep` (which only parses and prints).

This package re-exports the names readers use (`from engine import sweeps; sweeps.read_record(...)`).
Importing it imports neither torch nor submitit, so `nada-tui sweep status` starts at once.
"""

from engine.sweeps.checks import check_sweep
from engine.sweeps.fileformat import RunSpec, Sweep, SweepError, load_sweep, parse_sweep, sweep_id
from engine.sweeps.locator import key_lines
from engine.sweeps.plan import MAX_RUNS
from engine.sweeps.record import (
    LOGS_DIR,
    MANIFEST,
    SweepRecord,
    delete_record,
    list_sweeps,
    new_record,
    read_record,
    run_session_id,
    sweep_dir,
    sweeps_dir,
    write_run_start,
)
from engine.sweeps.status import RunStatus, run_statuses

__all__ = [
    "LOGS_DIR",
    "MANIFEST",
    "MAX_RUNS",
    "RunSpec",
    "RunStatus",
    "Sweep",
    "SweepError",
    "SweepRecord",
    "check_sweep",
    "delete_record",
    "key_lines",
    "list_sweeps",
    "load_sweep",
    "new_record",
    "parse_sweep",
    "read_record",
    "run_session_id",
    "run_statuses",
    "sweep_dir",
    "sweep_id",
    "sweeps_dir",
    "write_run_start",
]
