"""A sweep's record on disk: `<data dir>/sweeps/<id>/` holds `sweep.json` (the expanded runs as
submitted and every submission), one `runs/<index>.json` per started run (its session) and submitit's
`logs/`. Torch-free."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine import atomic, paths
from engine.sweeps.fileformat import RunSpec, Sweep, SweepError, sweep_id

MANIFEST = "sweep.json"
RUNS_DIR = "runs"
LOGS_DIR = "logs"
SCHEMA = 1


def sweeps_dir() -> Path:
    """Where sweep records and submitit's logs live (beside the sessions, in the user data dir)."""
    return paths.data_dir() / "sweeps"


def sweep_dir(sweep_or_id: Sweep | str) -> Path:
    ident = sweep_or_id.id if isinstance(sweep_or_id, Sweep) else sweep_id(sweep_or_id)
    return sweeps_dir() / ident


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class SweepRecord:
    """`sweep.json`: the expanded runs as submitted, and every submission (executor, job ids)."""

    name: str
    id: str
    file: str | None
    created: str
    sessions_root: str
    runs: list[RunSpec]
    submissions: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return sweeps_dir() / self.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "name": self.name,
            "id": self.id,
            "file": self.file,
            "created": self.created,
            "sessions_root": self.sessions_root,
            "keys": self.keys,
            "runs": [r.to_dict() for r in self.runs],
            "submissions": self.submissions,
        }

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic.write_json(self.dir / MANIFEST, self.to_dict())

    def add_submission(self, executor: str, job_ids: Mapping[int, str], resumed: Mapping[int, str]) -> None:
        self.submissions.append(
            {
                "time": _now(),
                "executor": executor,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "jobs": {str(i): j for i, j in job_ids.items()},
                "resumed": {str(i): s for i, s in resumed.items()},
            }
        )
        self.save()

    def latest_job(self, index: int) -> tuple[str, str] | None:
        """(executor, job id) of the last submission of run `index`."""
        for sub in reversed(self.submissions):
            job = sub.get("jobs", {}).get(str(index))
            if job is not None:
                return str(sub.get("executor")), str(job)
        return None


def new_record(sweep: Sweep, sessions_root: str | os.PathLike[str] | None = None) -> SweepRecord:
    from_root = Path(sessions_root) if sessions_root is not None else paths.sessions_dir()
    return SweepRecord(
        name=sweep.name,
        id=sweep.id,
        file=str(sweep.path) if sweep.path is not None else None,
        created=_now(),
        sessions_root=str(from_root.resolve()),
        runs=list(sweep.runs),
        keys=list(sweep.keys),
    )


def read_record(name_or_id: str) -> SweepRecord:
    """A sweep's record by name or id (SweepError when there is none)."""
    d = sweep_dir(name_or_id)
    try:
        data = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(list_sweeps()) or "none yet"
        raise SweepError(f"no sweep named '{name_or_id}' in {sweeps_dir()} (known: {known})") from None
    except (OSError, ValueError) as exc:
        raise SweepError(f"the record of sweep '{name_or_id}' is unreadable ({d / MANIFEST}): {exc}") from None
    return SweepRecord(
        name=str(data["name"]),
        id=str(data["id"]),
        file=data.get("file"),
        created=str(data.get("created", "")),
        sessions_root=str(data["sessions_root"]),
        runs=[RunSpec.from_dict(r) for r in data["runs"]],
        submissions=list(data.get("submissions") or []),
        keys=list(data.get("keys") or []),
    )


def list_sweeps() -> list[str]:
    try:
        return sorted(e.name for e in sweeps_dir().iterdir() if (e / MANIFEST).is_file())
    except FileNotFoundError:
        return []


def write_run_start(record_dir: str | os.PathLike[str], index: int, session_id: str, job_id: str | None) -> None:
    """Called by a run's job once its session exists: links run `index` to that session."""
    d = Path(record_dir) / RUNS_DIR
    d.mkdir(parents=True, exist_ok=True)
    atomic.write_json(
        d / f"{index}.json",
        {
            "index": index,
            "session": session_id,
            "job": job_id,
            "host": socket.gethostname(),
            "started": _now(),
        },
    )


def run_session_id(record: SweepRecord, index: int) -> str | None:
    try:
        data = json.loads((record.dir / RUNS_DIR / f"{index}.json").read_text(encoding="utf-8"))
        return str(data["session"])
    except (OSError, ValueError, KeyError):
        return None



def delete_record(name_or_id: str) -> Path:
    """Remove a sweep's record (sweep.json, the run links and the job logs); its sessions stay. The
    directory removed. SweepError when there is no such sweep."""
    d = sweep_dir(name_or_id)
    if not d.is_dir():
        known = ", ".join(list_sweeps()) or "none yet"
        raise SweepError(f"no sweep named '{name_or_id}' in {sweeps_dir()} (known: {known})")
    shutil.rmtree(d)
    return d
