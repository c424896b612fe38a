"""SVG snapshots of the main screens at 80x24 and 160x48, from fixed injected data (no live training).

Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update` and review
the SVGs."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from PIL import Image

from engine.events import StepMetrics
from nada_tui import backend
from nada_tui.app import NadaApp
from nada_tui.screens.train import TrainScreen
from nada_tui.widgets.previews import build_pixels


def fixed_buffer() -> backend.RunBuffer:
    from engine.config import TrainConfig

    cfg = TrainConfig(backend.DEMO_SOURCE, backend.DEMO_TARGET, iterations=300,
                      clip_models=((backend.DEMO_CLIP_ID, 1.0),))
    buf = backend.RunBuffer("run-snap", "20260101-120000-a-blue-image", cfg, backend.DEMO_GENERATOR_ID,
                            state="running")
    for step in range(1, 121):
        d = 0.9 * math.exp(-step / 40) + 0.05 + 0.03 * math.sin(step)
        g = 0.7 * math.exp(-step / 60) + 0.1 + 0.02 * math.cos(step * 1.3)
        buf.records.append({"step": step, "losses": {"total": d, "directional": d, "global": g}})
    scores = (0.02, 0.31, 0.18, 0.05, 0.22, 0.04, 0.12, 0.09, 0.15, 0.01)
    buf.last = StepMetrics(120, 300, buf.records[-1]["losses"], 0.0016, 6.2, 19.4, (1, 2, 4, 6, 8), 5, scores,
                           130, 0.2, None)
    buf.log = [("12:00:01", "info", "session 20260101-120000-a-blue-image: training to step 300"),
               ("12:00:02", "info", "step 0: selection trains w1,2,4,6,8"),
               ("12:00:20", "warning", "a warning for the log tail")]
    row_f = Image.new("RGB", (64, 16))
    row_a = Image.new("RGB", (64, 16))
    for i in range(4):
        row_f.paste((200, 40 + 30 * i, 40), (16 * i, 0, 16 * i + 16, 16))
        row_a.paste((40, 40 + 30 * i, 200), (16 * i, 0, 16 * i + 16, 16))
    buf.preview = (100, build_pixels(row_f, 4, 8), build_pixels(row_a, 4, 8), (0, 1, 2, 3))
    buf.version = 1
    return buf


async def inject(pilot, tab: str | None = None) -> None:
    app: NadaApp = pilot.app
    screen = app.screen
    assert isinstance(screen, TrainScreen)
    for _ in range(200):
        if screen.engine_ready:
            break
        await asyncio.sleep(0.05)
    app.buffer = fixed_buffer()
    if tab:
        screen.action_tab(tab)
    await pilot.pause()
    screen.redraw(force=True)
    await pilot.pause()


def rows() -> list[backend.SessionInfo]:
    cfg = {"source": "a red image", "target": "a blue image", "iterations": 300}
    return [
        backend.SessionInfo("20260101-120000-a-blue-image", Path("/nonexistent/a"), "red -> blue", "demo-tiny",
                            "a red image", "a blue image", 300, 300, 0.0311, "2026-01-01 12:00:00", "", 812_000,
                            "finished", None, cfg),
        backend.SessionInfo("20260101-130000-a-green-image", Path("/nonexistent/b"), "red -> green (fork)",
                            "demo-tiny", "a red image", "a green image", 120, 300, 0.2104, "2026-01-01 13:00:00",
                            "", 640_000, "stopped", None, cfg),
        backend.SessionInfo("20260101-140000-broken", Path("/nonexistent/c"), "20260101-140000-broken", "?",
                            "", "", 0, 0, None, "2026-01-01 14:00:00", "", 1_024, "damaged",
                            "session.json is not valid JSON", {}),
    ]


@pytest.fixture
def fixed_sessions(monkeypatch):
    records = [{"step": s, "losses": {"total": 1 / (1 + s / 30), "directional": 1 / (1 + s / 30),
                                      "global": 0.5 / (1 + s / 60)}} for s in range(1, 301)]
    monkeypatch.setattr(backend, "list_sessions", rows)
    monkeypatch.setattr(backend, "read_metrics", lambda info: records)
    monkeypatch.setattr(backend, "session_grid", lambda info: None)


async def to_sessions(pilot) -> None:
    await inject(pilot)
    pilot.app.buffer = None
    pilot.app.switch_mode("sessions")
    await pilot.pause()
    await asyncio.sleep(0.3)
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_train_screen(snap_compare, size) -> None:
    assert snap_compare(NadaApp(demo=True, device="cpu"), terminal_size=size, run_before=inject)


def test_train_monitor_tab_80x24(snap_compare) -> None:
    async def before(pilot) -> None:
        await inject(pilot, "monitor")

    assert snap_compare(NadaApp(demo=True, device="cpu"), terminal_size=(80, 24), run_before=before)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_sessions_screen(snap_compare, fixed_sessions, size) -> None:
    assert snap_compare(NadaApp(demo=True, device="cpu"), terminal_size=size, run_before=to_sessions)
