"""Following sessions that other processes write (sweep runs, a second app, `nada-tui train`): which
sessions appeared, changed or went away since the last look, from `stat()` alone.

    watcher = SessionWatcher()
    changes = watcher.poll()          # first call: every session; then only what changed
    for info, live in changes.changed: ...

A session counts as changed when its `session.json`, `metrics.jsonl` or `scores.json` changed (size or
mtime), or when its lock was taken or released (a run that dies leaves `running` in session.json and frees
the lock: it is `interrupted` from then on). A poll costs one directory listing and three or four `stat`s a
session; only changed sessions are read. Read-only: never takes a lock.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.sessions import layout
from engine.sessions.ids import root_dir, session_dirs
from engine.sessions.info import SessionInfo, read_info
from engine.sessions.lock import is_locked
from engine.sessions.loss import smoothed_total, tail_records
from engine.sessions.metrics import MetricsLine

TAIL_BYTES = 8192


@dataclass(frozen=True)
class Live:
    """The newest step of a session and its smoothed loss (`loss.smoothed_total`: the mean total loss of
    its last logged steps), from the end of metrics.jsonl (session.json only moves at checkpoints)."""

    step: int
    loss: float | None


@dataclass
class Changes:
    changed: list[tuple[SessionInfo, Live | None]] = field(default_factory=list)  # new or changed
    removed: list[str] = field(default_factory=list)  # ids that went away
    first: bool = False  # the first poll: `changed` holds every session

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed)


def last_metrics(path: Path) -> MetricsLine | None:
    """The last complete line of a metrics.jsonl (read from the end: runs can be long), or None."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    for raw in reversed(tail.splitlines()):
        try:
            line = MetricsLine.from_json(json.loads(raw))
        except ValueError:
            continue
        if line is not None:
            return line
    return None


def live_progress(info: SessionInfo) -> Live | None:
    """The session's newest step and smoothed loss when metrics.jsonl is ahead of (or level with)
    session.json."""
    records = tail_records(info.path / layout.METRICS_FILE)
    if not records:
        return None
    step = records[-1].step
    if step < info.step:
        return None
    return Live(step, smoothed_total(records))


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class SessionWatcher:
    """Remembers what each session looked like at the last poll. Not thread-safe: one poller."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root = root
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._active: set[str] = set()  # sessions last read as running/paused: their lock is checked
        self._polled = False

    def reset(self) -> None:
        """Forget everything: the next poll reports every session again."""
        self._seen.clear()
        self._active.clear()
        self._polled = False

    def _stamp(self, path: Path) -> tuple[Any, ...]:
        locked = is_locked(path) if path.name in self._active else None
        # scores.json: written after a run's last checkpoint, or by `nada-tui eval` from anywhere
        files = (layout.SESSION_FILE, layout.METRICS_FILE, layout.SCORES_FILE)
        return (*(_stat(path / f) for f in files), locked)

    def poll(self) -> Changes:
        base = root_dir(self._root)
        out = Changes(first=not self._polled)
        self._polled = True
        present = {e.name: Path(e.path) for e in session_dirs(base)}
        for sid in sorted(set(self._seen) - set(present)):
            del self._seen[sid]
            self._active.discard(sid)
            out.removed.append(sid)
        for sid, path in sorted(present.items(), reverse=True):
            stamp = self._stamp(path)
            if self._seen.get(sid) == stamp:
                continue
            info = read_info(path)
            was_active = sid in self._active
            if info.status in ("running", "paused"):
                self._active.add(sid)
            else:
                self._active.discard(sid)
            if (sid in self._active) != was_active:
                stamp = self._stamp(path)  # now with (or without) the lock state
            self._seen[sid] = stamp
            out.changed.append((info, None if info.damaged else live_progress(info)))
        return out
