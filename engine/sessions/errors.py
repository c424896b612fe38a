"""The session store's typed errors: callers tell them apart by class, never by message text."""

from __future__ import annotations


class SessionError(Exception):
    """A session operation that cannot be done; the message says why and what to do."""


class SessionNotFound(SessionError):
    pass


class AmbiguousSession(SessionError):
    def __init__(self, ref: str, candidates: list[str]) -> None:
        shown = ", ".join(candidates[:10]) + (" ..." if len(candidates) > 10 else "")
        super().__init__(f"'{ref}' matches {len(candidates)} sessions: {shown}. Type more of the id.")
        self.candidates = candidates


class SessionLocked(SessionError):
    def __init__(self, session_id: str, pid: int | None) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(
            f"Session {session_id} is being written by {who}. Stop that run first, or train a copy of it as a "
            f"new session: nada-tui sessions fork {session_id} --target TEXT (f on the app's sessions screen)."
        )
        self.pid = pid


class DamagedSession(SessionError):
    pass


class InvalidName(SessionError):
    pass


class AlreadyFinished(SessionError):
    """Resuming a session that has run all its iterations; give more."""


class SessionsFolderError(SessionError, OSError):
    """The sessions folder cannot be read or written (a file in its place, a read-only mount, ...); the
    message names the folder at fault. An OSError too, as the failure underneath it was one."""


class NonFiniteWeights(SessionError):
    """Weights holding NaN or infinity: never written as a checkpoint."""
