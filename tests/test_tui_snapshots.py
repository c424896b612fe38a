"""SVG snapshots of the main screens at 80x24 and 160x48 (the train screen while a run trains at 80x24,
120x40, 160x48 and 200x60: the setup form folded, the previews filling their panel), from fixed injected
data (no live training).

The run's buffer is injected through the app's view state (what a training run would have filled);
everything else is reached with keys. Update after an intended change with
`pytest tests/test_tui_snapshots.py --snapshot-update` and review the SVGs."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from _pilot import status
from PIL import Image

from engine.config import DEMO_GENERATOR_ID, demo_config
from engine.events import StepMetrics
from engine.sessions import MetricsLine, SessionInfo
from nada_tui import session_rows
from nada_tui.app import NadaApp
from nada_tui.run_buffer import Preview, RunBuffer


def fixed_buffer() -> RunBuffer:
    buf = RunBuffer("run-snap", demo_config(), DEMO_GENERATOR_ID, "20260101-120000-a-blue-image", state="running")
    for step in range(1, 121):
        d = 0.9 * math.exp(-step / 40) + 0.05 + 0.03 * math.sin(step)
        g = 0.7 * math.exp(-step / 60) + 0.1 + 0.02 * math.cos(step * 1.3)
        buf.records.append(MetricsLine(step, {"total": d, "directional": d, "global": g}))
    scores = (0.02, 0.31, 0.18, 0.05, 0.22, 0.04, 0.12, 0.09, 0.15, 0.01)
    labels = ("conv1 4x4", "convs.0 8x8 up", "convs.1 8x8", "convs.2 16x16 up", "convs.3 16x16", "convs.4 32x32 up",
              "convs.5 32x32", "convs.6 64x64 up", "convs.7 64x64", "to_rgbs.3 64x64")  # the 64 px demo's
    buf.last = StepMetrics(120, 300, dict(buf.records[-1].losses), 0.0016, 6.2, 19.4, (1, 2, 4, 6, 8), 5, scores,
                           130, 0.2, None, layer_labels=labels)
    buf.log = [("12:00:01", "info", "session 20260101-120000-a-blue-image: training to step 300"),
               ("12:00:02", "info", "step 0: selection trains w1,2,4,6,8"),
               ("12:00:20", "warning", "a warning for the log tail")]
    row_f = Image.new("RGB", (64, 16))
    row_a = Image.new("RGB", (64, 16))
    for i in range(4):
        row_f.paste((200, 40 + 30 * i, 40), (16 * i, 0, 16 * i + 16, 16))
        row_a.paste((40, 40 + 30 * i, 200), (16 * i, 0, 16 * i + 16, 16))
    buf.preview = Preview(100, row_f, row_a, (0, 1, 2, 3))
    buf.version = 1
    return buf


async def inject(pilot, *keys: str) -> None:
    """Wait for the model registry, show the fixed run, press `keys`, and let a redraw happen."""
    app: NadaApp = pilot.app
    hint = app.train_screen.query_one("#clip-hint")
    for _ in range(200):
        if "demo-colour-oracle" in str(hint.content):
            break
        await asyncio.sleep(0.05)
    app.view.buffer = fixed_buffer()
    await pilot.press(*keys)
    # Wait for the fixed run to be drawn (a busy machine can delay the redraw tick), then one tick more
    # so every panel has caught up with it.
    for _ in range(200):
        if "120/300" in status(app):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.35)
    await pilot.pause()


def infos() -> list[session_rows.Row]:
    cfg = demo_config().to_dict()
    data = {"config": cfg}

    def info(sid: str, name: str, target: str, step: int, loss: float | None, created: str, status: str,
             damaged: str | None = None) -> SessionInfo:
        return SessionInfo(sid, Path(f"/nonexistent/{sid}"), name, status, step, 300 if step else 0,
                           "?" if damaged else DEMO_GENERATOR_ID, "" if damaged else "a red image", target, created,
                           "", loss, (), damaged, data=data if not damaged else {})

    return [
        session_rows.Row(info("20260101-120000-a-blue-image", "red -> blue", "a blue image", 300, 0.0311,
                              "2026-01-01T12:00:00", "finished"), 812_000, saved_loss=0.0342),
        session_rows.Row(info("20260101-130000-a-green-image", "red -> green (fork)", "a green image", 120, 0.2104,
                              "2026-01-01T13:00:00", "stopped"), 640_000, saved_loss=0.2236),
        session_rows.Row(info("20260101-140000-broken", "20260101-140000-broken", "", 0, None,
                              "2026-01-01T14:00:00", "damaged", "session.json is not valid JSON"), 1_024),
    ]


@pytest.fixture
def fixed_sessions(monkeypatch):
    from engine import sessions

    records = [sessions.MetricsLine(s, {"total": 1 / (1 + s / 30), "directional": 1 / (1 + s / 30),
                                        "global": 0.5 / (1 + s / 60)}) for s in range(1, 301)]
    monkeypatch.setattr(session_rows, "read_rows", lambda watcher: infos())
    monkeypatch.setattr(sessions, "read_metrics", lambda path, max_step=None: records)


async def to_sessions(pilot) -> None:
    await pilot.press("f3")
    await asyncio.sleep(0.4)
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (160, 48), (200, 60)])
def test_train_screen(snap_compare, size) -> None:
    assert snap_compare(NadaApp(demo=True, device="cpu"), terminal_size=size, run_before=inject)


def test_train_monitor_tab_80x24(snap_compare) -> None:
    async def before(pilot) -> None:
        await inject(pilot, "alt+2")

    assert snap_compare(NadaApp(demo=True, device="cpu"), terminal_size=(80, 24), run_before=before)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_sessions_screen(snap_compare, fixed_sessions, size) -> None:
    assert snap_compare(NadaApp(demo=True, device="cpu"), terminal_size=size, run_before=to_sessions)


# ----- the compare view (issue 12) ----------------------------------------------------------------
SWEEP_TARGETS = (("a blue image", (40, 60, 210)), ("a green image", (40, 190, 70)), ("a yellow image", (230, 210, 40)))


def fixed_grid(tint: tuple[int, int, int], side: int = 64) -> Image.Image:
    """A preview grid of 4 seeds: frozen row (warm shapes) over adapted row (the same shapes in `tint`)."""
    from PIL import ImageDraw

    grid = Image.new("RGB", (4 * side, 2 * side))
    draw = ImageDraw.Draw(grid)
    for seed in range(4):
        x = seed * side
        for row, colour in ((0, (200, 70 + 30 * seed, 50)), (1, tint)):
            y = row * side
            draw.rectangle((x, y, x + side - 1, y + side - 1), fill=(30 + 20 * seed, 30, 40))
            draw.ellipse((x + 8 + 4 * seed, y + 8, x + side - 8, y + side - 8 - 4 * seed), fill=colour)
            draw.rectangle((x + 20, y + 24, x + 28 + 6 * seed, y + 32), fill=(240, 240, 240))
    return grid


@pytest.fixture
def fixed_sweep(small_demo):
    """Three finished runs of the sweep "colours" with fixed preview grids, as copies of one session
    the engine makes (so session.json is what the store writes)."""
    import json
    import shutil

    from engine import runs, sessions

    run = runs.start_session(demo_config(iterations=300), DEMO_GENERATOR_ID, device="cpu")
    run.close()
    for i, (target, tint) in enumerate(SWEEP_TARGETS):
        sid = f"20260101-12000{i}-colours-{i + 1}"
        dst = run.path.with_name(sid)
        shutil.copytree(run.path, dst, ignore=shutil.ignore_patterns("lock", "*.png"))
        data = json.loads((dst / sessions.SESSION_FILE).read_text())
        data.update(id=sid, name=f"colours #{i + 1}: target={target}", status="finished", step=300,
                    final_loss=0.1 + i / 10, created=f"2026-01-01T12:00:0{i}+00:00",
                    sweep={"name": "colours", "values": {"target": target}})
        data["config"]["target"] = target
        (dst / sessions.SESSION_FILE).write_text(json.dumps(data))
        fixed_grid(tint).save(dst / sessions.GRID_FILE)
    shutil.rmtree(run.path)


async def to_compare(pilot) -> None:
    """The sessions screen (its first row: the sweep's header), then c; wait for the tiles."""
    from textual.widgets import DataTable

    app: NadaApp = pilot.app
    await pilot.press("f3")
    for _ in range(200):
        if app.screen.query(DataTable) and app.screen.query_one(DataTable).row_count >= 4:
            break
        await asyncio.sleep(0.05)
    await pilot.press("c")
    for _ in range(200):
        if app.screen.query(".compare-tile"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_compare_view(snap_compare, fixed_sweep, size) -> None:
    assert snap_compare(NadaApp(demo=True, device="cpu"), terminal_size=size, run_before=to_compare)
