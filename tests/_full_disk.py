"""A disk that fills up (checkpoint writes that fail with ENOSPC after some succeeded; a write that stops
half way) and a read-only folder. Light (no torch),
because `tests._sessions.fill_disk_in_children` loads it at the start of every child process."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from engine.sessions.layout import CHECKPOINT_FILE


def failing_write_bytes(real: Any, good_checkpoints: int) -> Any:
    """`real` (engine.atomic.write_bytes), except that checkpoint writes fail with ENOSPC after
    `good_checkpoints` of them succeeded."""
    count = 0

    def write_bytes(path, data, mode=0o644):
        nonlocal count
        if Path(path).name == CHECKPOINT_FILE:
            count += 1
            if count > good_checkpoints:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, mode)

    return write_bytes


def half_then_full(real_write_all: Any) -> Any:
    """`real` (engine.atomic._write_all) that writes half of the data, then fails with ENOSPC: a disk that
    fills up in the middle of a file."""

    def write_all(fd, data):
        view = memoryview(data)
        real_write_all(fd, view[: len(view) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    return write_all


def read_only_under(real_write_bytes: Any, folder: Path) -> Any:
    """`real` (engine.atomic.write_bytes), except that writes under `folder` fail as on a read-only file
    system (chmod cannot make a folder read-only for root, who runs some test machines)."""

    def write_bytes(path, data, mode=0o644):
        if Path(path).resolve().is_relative_to(folder.resolve()):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_write_bytes(path, data, mode)

    return write_bytes
