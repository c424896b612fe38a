"""Checks on a file the user named, before it is opened: only a regular file is opened, so a FIFO, a
device or a socket (whose `open` or `read` can block forever, deaf to Ctrl-C) is refused with a message,
and a symlink loop is called one rather than "does not exist"."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def problem(path: str | os.PathLike[str], folder_ok: bool = False) -> str | None:
    """What keeps `path` from being read as a file ("does not exist", "is a directory", "is a FIFO (named
    pipe), not a regular file", ...), or None when it is a regular file (a folder too with `folder_ok`).
    Symlinks are followed; the text follows the path in a sentence."""
    try:
        mode = os.stat(path).st_mode  # follows symlinks: a link to a FIFO is a FIFO
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop (a link that leads back to itself): point it at a real file"
        if exc.errno == errno.ENOENT:
            if os.path.islink(path):
                return f"is a broken symlink (to {os.readlink(path)}, which does not exist)"
            return "does not exist"
        if exc.errno == errno.ENOTDIR:
            return "does not exist (a part of the path is a file, not a folder)"
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode) or (folder_ok and stat.S_ISDIR(mode)):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"is {kind}, not a regular file"


def check(path: str | os.PathLike[str], error: type[Exception], what: str = "") -> Path:
    """`path` as a Path when it is a regular file; else `error("<path> <problem><what>")`."""
    found = problem(path)
    if found is not None:
        raise error(f"{path} {found}{what}")
    return Path(path)



def folder_problem(folder: str | os.PathLike[str], exc: OSError | None = None) -> str:
    """Why files cannot be written in `folder`, naming the folder at fault (it, or the nearest of its
    parents that exists): "/x/nada-tui is a file, not a folder", "/x is on a read-only file system", ...
    `exc`: the error the attempt raised, for what no check here finds."""
    path = Path(folder)
    reason = (exc.strerror if exc is not None else None) or str(exc)
    existing = next((p for p in (path, *path.parents) if os.path.lexists(p)), None)
    if existing is None:
        return f"{path} cannot be made ({reason})"
    try:
        mode = os.stat(existing).st_mode
    except OSError:  # a symlink loop or a broken link
        return f"{existing} {problem(existing)}"
    if not stat.S_ISDIR(mode):
        return f"{existing} is a file, not a folder"
    if (exc is not None and exc.errno == errno.EROFS) or _read_only_mount(existing):
        return f"{existing} is on a read-only file system"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by you (permission denied)"
    if exc is not None and exc.errno == errno.ENOSPC:
        return f"the disk holding {existing} is full"
    return f"{existing} cannot be written ({reason})"


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
