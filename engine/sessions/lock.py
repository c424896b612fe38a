"""The one-writer rule: an exclusive `flock` on `<session>/lock`, and who holds it.

The kernel drops the lock when its process dies, so a killed run never leaves a session locked.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from engine.sessions.errors import SessionLocked
from engine.sessions.layout import LOCK_FILE


class SessionLock:
    """An exclusive `flock` on `<session>/lock`; released when closed or when the process dies."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd: int | None = None

    def acquire(self) -> SessionLock:
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SessionLocked(self.directory.name, lock_owner(self.directory)) from None
            raise
        with contextlib.suppress(OSError):  # the pid is only for messages: a full disk must not block
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> SessionLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_owner(directory: Path) -> int | None:
    """The pid the last lock holder wrote (for messages only: it may be stale)."""
    try:
        text = (directory / LOCK_FILE).read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def is_locked(directory: Path) -> bool:
    """True while some process (this one included) holds the session's write lock."""
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
