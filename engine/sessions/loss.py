"""The loss that lists show (the sessions table, `sessions list`, `sessions show`): the mean total loss
of the last `SMOOTH_STEPS` logged steps, read from the end of `metrics.jsonl`. One step's loss swings
with the latents it drew (0.004 at one step, 0.06 a few steps later in the same run), so sorting or
comparing sessions by it means nothing; a mean over 20 steps can be compared.

    smoothed_total(records)          # from metric records already in memory (a run training here)
    recent_loss(path, upto_step)     # from a session directory: reads the file's tail only
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

from engine.sessions import layout
from engine.sessions.metrics import MetricsLine

SMOOTH_STEPS = 20
DESCRIPTION = f"mean total loss of the last {SMOOTH_STEPS} logged steps"
_CHUNK = 16384


def smoothed_total(records: Iterable[MetricsLine]) -> float | None:
    """The mean of the last SMOOTH_STEPS finite total losses of `records` (in step order), or None."""
    totals = [rec.total for rec in records if rec.total is not None and math.isfinite(rec.total)]
    last = totals[-SMOOTH_STEPS:]
    return sum(last) / len(last) if last else None


def tail_records(path: Path, upto_step: int | None = None) -> list[MetricsLine]:
    """The last SMOOTH_STEPS records of a metrics.jsonl (at or before `upto_step`), in step order; a later
    line for the same step (after a resume) wins; torn or garbled lines are skipped. Reads from the end,
    a chunk at a time, so a long run costs no more than a short one."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = f.tell()
            start = end
            while True:
                start = max(0, start - _CHUNK)
                f.seek(start)
                data = f.read(end - start)
                records = _parse(data.splitlines()[1:] if start > 0 else data.splitlines(), upto_step)
                if start == 0 or len(records) >= SMOOTH_STEPS:
                    return records[-SMOOTH_STEPS:]
    except OSError:
        return []


def _parse(lines: list[bytes], upto_step: int | None) -> list[MetricsLine]:
    by_step: dict[int, MetricsLine] = {}
    for line in lines:
        try:
            rec = MetricsLine.from_json(json.loads(line))
        except ValueError:
            continue
        if rec is not None and (upto_step is None or rec.step <= upto_step):
            by_step[rec.step] = rec
    return [by_step[s] for s in sorted(by_step)]


def recent_loss(session_path: Path, upto_step: int | None = None) -> float | None:
    """The session's smoothed loss (`smoothed_total` of its last logged steps up to `upto_step`), or None
    before its first logged step."""
    return smoothed_total(tail_records(session_path / layout.METRICS_FILE, upto_step))
