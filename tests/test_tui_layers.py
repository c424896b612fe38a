"""Pinning layers in the app, by keys and by mouse, during a run (the 32 px tiny generator as the demo),
and the layer map naming what the cursor's W+ index drives, for StyleGAN2 and for a demo-sg3 run.

As in test_tui.py the test presses keys and clicks, and reads what a user sees: the layer map's cells,
the setup form, the log, the toasts, the screen and the session on disk.
"""

from __future__ import annotations

import pytest
from _pilot import RecordingApp, ready, screen_text, status, step_shown, type_into, wait_for
from textual.widgets import Input, Label

from engine import sessions
from nada_tui.widgets.layer_map import HEADER_LINES, LayerMap

pytestmark = pytest.mark.usefixtures("small_demo")


def cell_line(layers: LayerMap, i: int) -> str:
    """The text of W+ cell `i` in the tall map (header, pins and cursor lines first)."""
    return layers.render().plain.splitlines()[HEADER_LINES + i]


def on_screen(app: RecordingApp, text: str) -> bool:
    return any(text in line for line in screen_text(app))


async def test_pin_layers_by_keys_and_mouse_during_a_run() -> None:
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        screen = app.train_screen
        hint = screen.query_one("#clip-hint", Label)
        await wait_for(app, lambda: "demo-colour-oracle" in str(hint.content), "the model registry")
        await type_into(pilot, "#iterations", "5000")
        await type_into(pilot, "#auto_layer_k", "2")
        await type_into(pilot, "#auto_layer_falloff", "0")
        await pilot.press("escape", "f5")
        layers = screen.query_one(LayerMap)
        await wait_for(app, lambda: "running" in status(app) and layers.n_latent == 8, "training")

        # m focuses the map; the cursor starts on w0: right, right, space pins w2 on
        await pilot.press("m", "right", "right", "space")
        assert cell_line(layers, 2).startswith("w2+")
        assert on_screen(app, "w2 → convs.1 8x8")  # the map names what the cursor's index drives
        await wait_for(app, lambda: any("Pin on 2, pin off none from the next step" in m for _, _, m in app.shown),
                       "the pin toast")
        pinned_at = step_shown(app)
        await wait_for(app, lambda: step_shown(app) > pinned_at + 2, "steps with the pin")
        assert 2 in layers.trained and len(layers.trained) == 2
        assert screen.query_one("#pin_on", Input).value == "2"  # the form follows, for the next start

        # down to w3, space twice: pinned on, then pinned off
        await pilot.press("down", "space", "space")
        assert on_screen(app, "w3 → convs.2 16x16 up")
        assert cell_line(layers, 3).startswith("w3×")
        await wait_for(app, lambda: screen.query_one("#pin_off", Input).value == "3", "the form's pin off")
        mark = step_shown(app)
        await wait_for(app, lambda: step_shown(app) > mark + 2, "steps with w3 pinned off")
        assert 3 not in layers.trained and 2 in layers.trained

        # a click on w2 (content line 2 + 2) cycles it on -> off
        top = layers.content_region.y - layers.region.y
        left = layers.content_region.x - layers.region.x
        await pilot.click(LayerMap, offset=(left + 1, top + HEADER_LINES + 2))
        assert cell_line(layers, 2).startswith("w2×")
        await wait_for(app, lambda: screen.query_one("#pin_off", Input).value == "2,3", "the clicked pin")

        # the last index feeds only the final to_rgb: it cannot be pinned
        for _ in range(8):
            await pilot.press("down")
        await pilot.press("space")
        assert any("never trains" in m for _, _, m in app.shown)
        assert cell_line(layers, 7).startswith("w7 ")
        assert on_screen(app, "w7 → to_rgbs.2 32x32")

        mark = step_shown(app)
        await wait_for(app, lambda: step_shown(app) > mark + 2, "steps with w2 and w3 off")
        await pilot.press("escape", "f8")
        await wait_for(app, lambda: " stopped " in status(app), "stopped")
        [info] = sessions.list_sessions()
        await wait_for(app, lambda: sessions.load(info.id).status == "stopped", "the session saved")
        saved = sessions.load(info.id)
        assert (saved.config.pin_on, saved.config.pin_off) == ((), (2, 3))
        pins = [r.pins for r in sessions.read_metrics(saved.path) if r.pins is not None]
        assert pins[0] == ((2,), ()) and pins[-1] == ((), (2, 3))
        assert any("pin on -> 2 from the next step" in text for _, _, text in app.view.buffer.log)  # type: ignore[union-attr]


async def test_a_stylegan3_run_names_its_layers_as_the_cursor_moves() -> None:
    """Pick demo-sg3 in the model list, start, and walk the layer map: the input, then L0, L1, ..."""
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        screen = app.train_screen
        await pilot.click("#model")
        await pilot.press("down", "enter")  # the demo models come first: demo, then demo-sg3
        await wait_for(app, lambda: on_screen(app, "demo-sg3 (32 px)"), "demo-sg3 picked")
        await type_into(pilot, "#iterations", "5000")
        await pilot.press("escape", "f5")
        layers = screen.query_one(LayerMap)
        await wait_for(app, lambda: "running" in status(app) and layers.n_latent == 6, "SG3 training")
        await pilot.press("m")
        assert on_screen(app, "w0 → input")
        await pilot.press("right", "right", "right")
        assert on_screen(app, "w3 → L2_36_16")
        assert cell_line(layers, 3).startswith("w3 ")  # the cells keep their compact names
        await pilot.press("down", "down")
        assert on_screen(app, "w5 → L4_32_3")  # ToRGB: the last index
        await pilot.press("escape", "f8")
        await wait_for(app, lambda: " stopped " in status(app), "stopped")
