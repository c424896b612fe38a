"""A disk that fills up: checkpoint writes that fail with ENOSPC after some succeeded. Light (no torch),
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
