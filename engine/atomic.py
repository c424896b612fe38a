"""Atomic file writes: a temp file beside the target, fsync, rename over it, fsync the directory.

A kill or a full disk at any moment leaves either the old file or the new one, never a mix. Temp files
are named `.<name>.tmp-<pid>-<random>` so listings can skip them and `clean_temp_files` can sweep them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

TEMP_MARK = ".tmp-"


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until everything is written (a separate function so tests can simulate a full disk)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new directory entry durable. Some file systems refuse: that is not an error."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def write_bytes(path: str | os.PathLike[str], data: bytes | memoryview, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically; on any error the old file is untouched and the temp removed."""
    path = Path(path)
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_with(path: str | os.PathLike[str], fill: Callable[[BinaryIO], Any]) -> None:
    """Atomic write of whatever `fill(buffer)` writes into an in-memory buffer (PIL, torch.save, ...)."""
    buf = io.BytesIO()
    fill(buf)
    write_bytes(path, buf.getbuffer())


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def clean_temp_files(directory: str | os.PathLike[str]) -> int:
    """Remove temp files left by writers that were killed mid-write; returns how many."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.name.startswith(".") and TEMP_MARK in entry.name and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
