"""The command palette: the app's own commands, and a search over saved sessions next to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from textual.app import SystemCommand
from textual.command import DiscoveryHit, Hit, Hits, Provider

TRAIN_COMMANDS = (  # (title, help, the train screen's action)
    ("Start training", "Start a new session from the setup form", "start"),
    ("Pause / resume training", "Between steps", "toggle_pause"),
    ("Stop training", "Stops and saves the session", "stop"),
    ("Retrain with edits", "Stop, then start a fork with the form's settings", "retrain"),
    ("Save checkpoint now", "Write the session's weights now", "save_now"),
    ("Toggle log scale", "Loss chart y axis", "log_scale"),
)


def app_commands(switch_mode: Callable[[str], object], on_train_screen: Callable[[str], None],
                 show_help: Callable[[], None]) -> Iterator[SystemCommand]:
    """The app's palette entries: the screens, the train screen's actions, help."""
    yield SystemCommand("Train screen", "Setup, live chart, layers, previews", lambda: switch_mode("train"))
    yield SystemCommand("Sessions screen", "Browse saved sessions", lambda: switch_mode("sessions"))
    for title, help_text, action in TRAIN_COMMANDS:
        yield SystemCommand(title, help_text, partial(on_train_screen, action))
    yield SystemCommand("Help", "Keys and binding ids", show_help)


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
