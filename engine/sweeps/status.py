"""How a sweep's runs are doing: each run's session (its saved step, or the live step while it trains),
else where its job is (Slurm's queue, or the local `nada-tui sweep` process). Torch-free."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.sweeps.record import LOGS_DIR, SweepRecord, run_session_id


@dataclass
class RunStatus:
    index: int
    name: str
    values: dict[str, Any]
    status: str  # a session status, or "queued" / "starting" / "not started"
    session_id: str | None = None
    step: int = 0
    iterations: int = 0
    loss: float | None = None
    job: str | None = None
    executor: str | None = None
    log: str | None = None  # the job's output file, when there is one
    message: str | None = None  # why a run failed or never started, when known
    scores: dict[str, Any] | None = None  # its session's scores.json (engine.sessions.scores)


def slurm_states(job_ids: Iterable[str]) -> dict[str, str] | None:
    """Slurm job id ("123" or "123_4") -> state (PENDING, RUNNING, ...) for jobs squeue still knows;
    None when squeue cannot be asked."""
    import shutil
    import subprocess

    ids = sorted({j.split("_")[0] for j in job_ids})
    if not ids or shutil.which("squeue") is None:
        return None if not ids and shutil.which("squeue") is None else {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(ids)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return None
    states = {}
    for line in out.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job:
            states[job] = state
    return states


def _local_alive(sub: Mapping[str, Any]) -> bool:
    """Whether the `nada-tui sweep` process that runs a local submission is still alive (same host)."""
    if sub.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(sub.get("pid", 0)), 0)
    except (OSError, ValueError):
        return False
    return int(sub.get("pid", 0)) > 0


def run_statuses(record: SweepRecord) -> list[RunStatus]:
    """One row per run: its session's status, saved step and loss (live from metrics.jsonl while it
    trains), or where its job is."""
    from engine.sessions.info import read_info
    from engine.sessions.loss import recent_loss
    from engine.sessions.watch import live_progress

    jobs = {r.index: record.latest_job(r.index) for r in record.runs}
    slurm_ids = [j for e_j in jobs.values() if e_j and e_j[0] == "slurm" for j in [e_j[1]]]
    queue = slurm_states(slurm_ids) if slurm_ids else {}
    out = []
    for run in record.runs:
        executor, job = jobs[run.index] or (None, None)
        row = RunStatus(
            run.index,
            run.name,
            dict(run.values),
            "not started",
            job=job,
            executor=executor,
            iterations=run.config.iterations,
        )
        sid = run_session_id(record, run.index)
        in_queue = None
        if executor == "slurm" and queue is not None and job is not None:
            in_queue = queue.get(job)
        elif executor == "local":
            sub = next((s for s in reversed(record.submissions) if str(run.index) in s.get("jobs", {})), {})
            in_queue = "PENDING" if _local_alive(sub) else None
        if job is not None and (record.dir / LOGS_DIR / f"{job}_0_log.out").exists():
            row.log = str(record.dir / LOGS_DIR / f"{job}_0_log.out")
        if sid is not None:
            info = read_info(Path(record.sessions_root) / sid)
            row.session_id = sid
            row.status = info.status
            row.message = info.damaged or info.data.get("message") or None
            row.step, row.iterations = info.step, info.iterations or row.iterations
            row.loss = None if info.damaged else recent_loss(info.path, info.step)
            row.scores = dict(info.scores) if info.scores else None
            # Only a run that is training now is ahead of its session: once it has ended, the session's
            # saved step is the truth (metrics.jsonl also holds steps whose save failed).
            live = live_progress(info) if info.status == "running" else None
            if live is not None and live.step >= row.step:
                row.step = live.step
                row.loss = live.loss if live.loss is not None else row.loss
            resubmitted = executor == "slurm" and in_queue in ("PENDING", "CONFIGURING")
            if info.status in ("interrupted", "stopped", "failed") and resubmitted:
                row.status = "queued"  # its job has not started yet (a local sweep never runs a run twice)
        elif in_queue in ("PENDING", "CONFIGURING", "REQUEUED"):
            row.status = "queued"
        elif in_queue is not None:
            row.status = "starting"
        elif row.log is not None:
            row.message = "its job ended before the run's session was made (cancelled while loading, or an error)"
        out.append(row)
    return out


def count_statuses(statuses: Sequence[str]) -> str:
    """'2 finished, 1 not saved'."""
    tally: dict[str, int] = {}
    for s in statuses:
        tally[s] = tally.get(s, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))
