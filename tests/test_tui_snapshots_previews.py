"""SVG snapshots of the previews at 80x24 and 200x60: the zoom (one seed, before | after) and the sessions
screen's time-lapse, reached with keys. Headless, so the previews are half blocks (what tmux, mosh and
plain terminals show); tests/test_xterm_sixel.py checks real pixels in a real terminal.

Update after an intended change with
`pytest tests/test_tui_snapshots_previews.py --snapshot-update` and review the SVGs."""

from __future__ import annotations

import asyncio
import json
import re
import shutil

import pytest
from PIL import Image, ImageDraw

from engine.config import DEMO_GENERATOR_ID, demo_config
from engine.events import StepMetrics
from engine.sessions import MetricsLine
from nada_tui.app import NadaApp
from nada_tui.run_buffer import Preview, RunBuffer

SID = "20260101-120000-a-blue-image"


def tile(colour: tuple[int, int, int], seed: int, side: int = 24) -> Image.Image:
    """A small picture with a shape per seed, so a zoom shows structure, not a flat square."""
    im = Image.new("RGB", (side, side), (30 + 20 * seed, 30, 40))
    d = ImageDraw.Draw(im)
    d.ellipse((3 + seed, 3, side - 4, side - 4 - seed), fill=colour)
    d.rectangle((8, 10, 12 + 2 * seed, 13), fill=(240, 240, 240))
    return im


def rows(blue: float) -> tuple[Image.Image, Image.Image]:
    """Frozen and adapted rows of 4 seeds; `blue` (0..1) how far the adapted ones went from red to blue."""
    frozen, adapted = Image.new("RGB", (96, 24)), Image.new("RGB", (96, 24))
    for s in range(4):
        frozen.paste(tile((210, 60 + 25 * s, 50), s), (24 * s, 0))
        adapted.paste(tile((int(210 * (1 - blue) + 40 * blue), 60 + 25 * s, int(50 + 170 * blue)), s), (24 * s, 0))
    return frozen, adapted


def previewed_buffer() -> RunBuffer:
    buf = RunBuffer("run-snap", demo_config(), DEMO_GENERATOR_ID, SID, state="running")
    losses = {"total": 0.2, "directional": 0.2, "global": 0.1}
    buf.records = [MetricsLine(s, losses) for s in range(1, 121)]
    buf.last = StepMetrics(120, 300, losses, 0.0016, 6.2, 19.4, (1, 2), 2, None, 130, 0.2, None)
    buf.preview = Preview(100, *rows(1.0), (0, 1, 2, 3))
    buf.version = 1
    return buf


def scale_captions(app: NadaApp) -> list[str]:
    """The captions a user reads: "seed N  4x" (the scale once the image is drawn)."""
    return [
        str(c.content) for c in app.screen.query(".pair-caption, .timelapse-caption") if c.parent.display and c.display
    ]


async def settle(app: NadaApp, done, what: str) -> None:
    for _ in range(400):
        if done():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"timed out waiting for {what}: {scale_captions(app)}")
    await asyncio.sleep(0.4)  # the images prepared on their threads get drawn


async def zoomed(pilot) -> None:
    app: NadaApp = pilot.app
    hint = app.train_screen.query_one("#clip-hint")
    await settle(app, lambda: "demo-colour-oracle" in str(hint.content), "the model registry")
    app.view.buffer = previewed_buffer()
    await settle(app, lambda: len(scale_captions(app)) == 4, "the previews")
    await pilot.press("escape", "z", "right")  # the zoom, on the second seed
    await settle(app, lambda: [c for c in scale_captions(app) if re.search(r"seed 1 .*\dx$", c)], "the zoom")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_zoom(snap_compare, size) -> None:
    assert snap_compare(NadaApp(demo=True, device="cpu"), terminal_size=size, run_before=zoomed)


@pytest.fixture
def timelapse_session(small_demo):
    """A stopped session (as the store writes it) whose samples/ holds three previews, red -> blue."""
    from engine import runs, sessions

    run = runs.start_session(demo_config(iterations=300), DEMO_GENERATOR_ID, device="cpu")
    run.close()
    dst = run.path.with_name(SID)
    shutil.copytree(run.path, dst, ignore=shutil.ignore_patterns("lock", "*.png"))
    shutil.rmtree(run.path)
    data = json.loads((dst / sessions.SESSION_FILE).read_text())
    data.update(
        id=SID, name="red -> blue", status="stopped", step=150, final_loss=0.1234, created="2026-01-01T12:00:00+00:00"
    )
    (dst / sessions.SESSION_FILE).write_text(json.dumps(data))
    for i, step in enumerate((50, 100, 150)):
        frozen, adapted = rows(i / 2)
        grid = Image.new("RGB", (96, 48))
        grid.paste(frozen, (0, 0))
        grid.paste(adapted, (0, 24))
        grid.save(dst / sessions.SAMPLES_DIR / f"step_{step:06d}.png")


async def timelapse_back_one(pilot) -> None:
    app: NadaApp = pilot.app
    await pilot.press("f3")
    await settle(app, lambda: any("step 150" in c for c in scale_captions(app)), "the newest preview")
    await pilot.press("left")  # one step back in the time-lapse
    await settle(app, lambda: any("step 100  2/3" in c for c in scale_captions(app)), "the earlier preview")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_timelapse(snap_compare, timelapse_session, size) -> None:
    assert snap_compare(NadaApp(demo=True, device="cpu"), terminal_size=size, run_before=timelapse_back_one)
