"""The sessions table's data: each saved session as a `Row` (its info, size on disk, smoothed loss and,
while another process trains it, its newest step), read from the store off the UI thread.

`RowFeed` is the one reader: a full read first, then polls of the sessions folder
(`engine.sessions.watch`: stat() calls, re-reading only what changed) no more often than every POLL_S
seconds, one at a time. Its `read` runs on a thread; `due` and `done` on the UI thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.config import SETTINGS

if TYPE_CHECKING:
    from engine.sessions import SessionInfo
    from engine.sessions.watch import Live, SessionWatcher

POLL_S = 1.5  # how often the sessions folder is looked at for runs of other processes


@dataclass(frozen=True)
class Row:
    """A session as the table shows it: the store's SessionInfo, its size on disk, its smoothed loss at
    the saved step (`engine.sessions.loss.recent_loss`) and, while it trains (here or in another process),
    its newest step and smoothed loss from metrics.jsonl."""

    info: SessionInfo
    size_bytes: int
    live: Live | None = None
    saved_loss: float | None = None

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def sweep(self) -> str | None:
        sweep = self.info.sweep
        return str(sweep.get("name")) if sweep and sweep.get("name") else None

    @property
    def step(self) -> int:
        return max(self.info.step, self.live.step) if self.live is not None else self.info.step

    @property
    def loss(self) -> float | None:
        """The smoothed loss (mean total loss of the last logged steps), newest first."""
        if self.live is not None and self.live.loss is not None and self.live.step >= self.info.step:
            return self.live.loss
        return self.saved_loss


def _row(info: SessionInfo, live: Live | None) -> Row:
    from engine import sessions
    from engine.sessions.loss import recent_loss

    saved = None if info.damaged else recent_loss(info.path, info.step)
    return Row(info, sessions.disk_usage(info.path), live, saved)


def read_rows(watcher: SessionWatcher) -> list[Row]:
    """Every saved session (walks each directory: call from a thread); the watcher follows them from here."""
    watcher.reset()
    return [_row(i, live) for i, live in watcher.poll().changed]


def poll_rows(watcher: SessionWatcher) -> tuple[list[Row], list[str]]:
    """What changed since the last poll: (new or changed rows, ids that went away). From a thread."""
    changes = watcher.poll()
    return [_row(i, live) for i, live in changes.changed], changes.removed


def setting_flag(key: str) -> str:
    """A setting as sweep files and the CLI spell it (`global-weight`, `iters`)."""
    s = SETTINGS.get(key)
    return s.sweep_key if s is not None else key


def sweep_run_counts(names: set[str]) -> dict[str, int]:
    """How many runs each sweep's record lists (runs not started yet have no session). From a thread."""
    if not names:
        return {}
    from engine import sweeps

    out = {}
    for name in names:
        try:
            out[name] = len(sweeps.read_record(name).runs)
        except Exception:  # no record here (sessions copied from elsewhere) or unreadable: count sessions
            out[name] = 0
    return out


@dataclass(frozen=True)
class Update:
    """One read: the rows it found (all of them when `full`), the ids that went away, sweep run counts."""

    rows: list[Row]
    removed: list[str]
    full: bool
    sweep_runs: dict[str, int]
    error: str | None = None


@dataclass
class RowFeed:
    """The sessions folder, read in full once and then polled for changes (one read at a time)."""

    sweep_runs: dict[str, int] = field(default_factory=dict)  # sweep name -> runs in its record
    _watcher: SessionWatcher | None = None  # made on the reading thread
    _busy: bool = False
    _full_wanted: bool = True
    _last: float = 0.0

    def want_full(self) -> None:
        self._full_wanted = True

    def due(self) -> bool | None:
        """On the UI thread: None when no read is due (or one is in flight); else whether the read to
        start now is a full one. The caller starts `read` on a thread and hands its Update to `done`."""
        if self._busy or (not self._full_wanted and time.monotonic() - self._last < POLL_S):
            return None
        self._busy = True
        full, self._full_wanted = self._full_wanted, False
        return full

    def read(self, full: bool) -> Update:
        """On a thread: a full read or a poll."""
        removed: list[str] = []
        try:
            if self._watcher is None:
                from engine.sessions.watch import SessionWatcher

                self._watcher = SessionWatcher()
            if full:
                rows = read_rows(self._watcher)
            else:
                rows, removed = poll_rows(self._watcher)
            runs = sweep_run_counts({r.sweep for r in rows if r.sweep} - set(self.sweep_runs))
        except OSError as exc:
            return Update([], [], full, {}, f"Could not read the sessions folder: {exc}")
        finally:
            self._last = time.monotonic()
        return Update(rows, removed, full, runs)

    def done(self, update: Update) -> None:
        """On the UI thread, with what `read` returned: the next read may start."""
        self._busy = False
        self.sweep_runs.update(update.sweep_runs)
