"""Helpers for tests that drive the app by keys (tests/test_tui*.py): an app that keeps the toasts it
shows, the top bar as text, the screen as text, waiting for what a user would see, and typing into a
field."""

from __future__ import annotations

import asyncio
import html
import re
import time

from textual.widgets import DataTable, Label

from engine import sessions
from nada_tui.app import NadaApp
from nada_tui.screens.sessions import SessionsScreen


class RecordingApp(NadaApp):
    """The demo app, with every toast it shows kept for the test to read."""

    def __init__(self, **kw) -> None:
        super().__init__(demo=True, device="cpu", **kw)
        self.shown: list[tuple[str, str, str]] = []  # (severity, title, message)

    def notify(self, message, *, title="", severity="information", **kw) -> None:  # type: ignore[override]
        self.shown.append((severity, title, str(message)))
        super().notify(message, title=title, severity=severity, **kw)


def status(app: NadaApp) -> str:
    """The train screen's top bar as the user reads it."""
    return app.train_screen.query_one("#status").text.plain  # type: ignore[attr-defined]


def step_shown(app: NadaApp) -> int:
    found = re.search(r" (\d+)/\d+", status(app))
    return int(found.group(1)) if found else 0


async def wait_until(cond, what: str, timeout: float = 30.0, describe=None) -> None:
    """Poll `cond` until it holds; on a timeout, say what was awaited and, with `describe`, what the user
    saw instead."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            seen = f"; {describe()}" if describe is not None else ""
            raise AssertionError(f"timed out waiting for {what}{seen}")
        await asyncio.sleep(0.05)


async def wait_for(app: RecordingApp, cond, what: str, timeout: float = 60.0) -> None:
    """Poll `cond` (a key press waits up to a second for an idle CPU, which training never leaves)."""
    await wait_until(cond, what, timeout, lambda: f"status: {status(app)!r}; toasts: {app.shown[-3:]}")


async def ready(pilot) -> RecordingApp:
    """The app once the model registry and the tokenizer have loaded (the CLIP hint lists the models)."""
    app = pilot.app
    hint = app.train_screen.query_one("#clip-hint", Label)
    await wait_for(app, lambda: "demo-colour-oracle" in str(hint.content), "the model registry")
    return app


async def type_into(pilot, selector: str, text: str, submit: bool = False) -> None:
    await pilot.click(selector)
    await pilot.press("end", "ctrl+u", *text, *(["enter"] if submit else []))


def saved() -> dict[str, sessions.SessionInfo]:
    """The sessions on disk, by id."""
    return {i.id: i for i in sessions.list_sessions()}


def screen_text(app) -> list[str]:
    """The screen as a user sees it: one string per terminal line (from an SVG screenshot)."""
    svg = app.export_screenshot()
    cell = re.search(r'textLength="([\d.]+)"[^>]*>([^<]+)</text>', svg)
    width = float(cell[1]) / len(html.unescape(cell[2])) if cell else 12.2
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in re.finditer(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>', svg):
        text = html.unescape(m[3]).replace("\xa0", " ").replace("\n", "")
        rows.setdefault(float(m[2]), []).append((float(m[1]), text))
    lines = []
    for y in sorted(rows):
        line = ""
        for x, text in sorted(rows[y]):
            line = line.ljust(round(x / width)) + text
        lines.append(line)
    return lines


async def to_sessions(pilot, rows: int, at_least: bool = False, timeout: float = 60.0) -> SessionsScreen:
    """F3, then wait until the sessions table lists `rows` sessions (or at least that many)."""
    await pilot.press("f3")
    screen = pilot.app.screen
    assert isinstance(screen, SessionsScreen)
    table = screen.query_one(DataTable)
    enough = (lambda: table.row_count >= rows) if at_least else (lambda: table.row_count == rows)
    await wait_until(enough, f"{rows} session rows", timeout)
    await pilot.pause()
    return screen
