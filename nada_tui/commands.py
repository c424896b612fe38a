"""Command palette providers: a search over saved sessions (open, resume) next to the app's actions."""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from nada_tui import backend


class SessionsProvider(Provider):
    """"session <name>" finds saved sessions by name, prompts or model; picking one opens it."""

    async def startup(self) -> None:
        try:
            self.sessions = backend.list_sessions()
        except OSError:
            self.sessions = []

    def _open(self, info: backend.SessionInfo) -> None:
        app: Any = self.app
        app.switch_mode("sessions")
        screen = app.screen
        if hasattr(screen, "select_session"):
            screen.select_session(info.id)

    def _text(self, info: backend.SessionInfo) -> str:
        return f"Session: {info.name} ({info.model}, {info.source} -> {info.target})"

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for info in self.sessions:
            text = self._text(info)
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._open, info),
                          help=f"{info.status or '?'} · step {info.step}/{info.iterations} · {info.created}")

    async def discover(self) -> Hits:
        for info in self.sessions[-10:]:
            yield DiscoveryHit(self._text(info), partial(self._open, info), help=info.status)
