"""Command palette providers: a search over saved sessions next to the app's own commands."""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider


class SessionsProvider(Provider):
    """"session <name>" finds saved sessions by name, prompts or model; picking one selects it on the
    sessions screen."""

    async def startup(self) -> None:
        from engine import sessions

        try:
            self.sessions = sessions.list_sessions()
        except OSError:
            self.sessions = []

    def _select(self, session_id: str) -> None:
        self.app.switch_mode("sessions")
        screen: Any = self.app.screen
        screen.select_session(session_id)

    def _text(self, info: Any) -> str:
        return f"Session: {info.name} ({info.model_id}, {info.source} -> {info.target_text})"

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for info in self.sessions:
            text = self._text(info)
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._select, info.id),
                          help=f"{info.status or '?'} · step {info.step}/{info.iterations} · {info.created}")

    async def discover(self) -> Hits:
        for info in self.sessions[:10]:
            yield DiscoveryHit(self._text(info), partial(self._select, info.id), help=info.status)
