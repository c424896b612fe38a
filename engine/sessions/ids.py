"""Session names and ids: display names, slugs, id checks, the directory of an id, timestamps.

An id is the directory name `YYYYmmdd-HHMMSS-<slug>`; nothing a user types can make it leave the root.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from engine import paths, user_files
from engine.sessions.errors import InvalidName, SessionNotFound, SessionsFolderError

MAX_NAME_CHARS = 120
SLUG_CHARS = 40


def root_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The sessions root, resolved now (tests and `--data-dir` style overrides pass `root`)."""
    return Path(root) if root is not None else paths.sessions_dir()


def clean_name(name: str) -> str:
    """A display name: printable, one line, at most 120 characters. Empty after cleaning is an error."""
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in str(name))
    text = " ".join(text.split())[:MAX_NAME_CHARS].strip()
    if not text:
        raise InvalidName("A session name needs at least one visible character.")
    return text


def slugify(name: str) -> str:
    """Lower-case ASCII letters, digits and dashes: never a path separator, never `..`."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:SLUG_CHARS].strip("-")
    return text or "session"


def new_id(name: str, attempt: int = 0) -> str:
    """The id for a session created now; `attempt` > 0 adds a suffix when the first choice is taken."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{slugify(name)}" + (f"-{attempt + 1}" if attempt else "")


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def check_id(session_id: str) -> None:
    """Refuse anything that is not a plain directory name (separators, `..`, hidden names)."""
    if (
        not session_id
        or session_id in (".", "..")
        or session_id.startswith(".")
        or any(c in session_id for c in ("/", "\\", "\x00"))
        or os.sep in session_id
        or (os.altsep and os.altsep in session_id)
    ):
        raise SessionNotFound(
            f"'{session_id}' is not a session id: ids look like 20250101-120000-name (see `nada-tui sessions list`)."
        )


def session_path(session_id: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The directory of `session_id`, checked to stay directly under the root."""
    check_id(session_id)
    base = root_dir(root)
    path = base / session_id
    if path.resolve().parent != base.resolve():
        raise SessionNotFound(f"'{session_id}' does not name a directory inside {base}.")
    return path


def folder_error(base: Path, exc: OSError, doing: str) -> SessionsFolderError:
    """The error for a sessions folder that cannot be used, saying which folder is at fault and why."""
    return SessionsFolderError(
        f"Cannot {doing} sessions in {base}: {user_files.folder_problem(base, exc)}. Fix that folder, or point "
        "XDG_DATA_HOME at another one (`nada-tui locate sessions` prints where sessions go)."
    )


def session_dirs(base: Path) -> Iterator[os.DirEntry[str]]:
    """The session directories under `base` (none when it does not exist yet)."""
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return
    except OSError as exc:  # a file in the folder's place, no permission, ...
        raise folder_error(base, exc, "read") from None
    for e in entries:
        # Hidden entries are in-progress creations/deletions and temp files.
        if not e.name.startswith(".") and e.is_dir(follow_symlinks=False):
            yield e
