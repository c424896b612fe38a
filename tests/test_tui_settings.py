"""The setup form and config.toml's keymap, driven by keys (issue 18, defects 7 and 8): a blank field means
the recipe's default and shows it; a printable key bound to quit does not quit while the user types."""

from __future__ import annotations

import pytest
from _pilot import RecordingApp, ready, saved, screen_text, status, type_into, wait_for
from textual.widgets import Input

from engine.config import DEMO_CLIP_ID, DEMO_DEFAULTS
from nada_tui.user_config import Settings

pytestmark = pytest.mark.usefixtures("small_demo")


async def test_blank_fields_in_the_demo_form_mean_the_demo_recipe() -> None:
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        await type_into(pilot, "#iterations", "")
        await type_into(pilot, "#clip_models", "")
        await pilot.pause()
        shown = screen_text(app)
        # the blank fields show what they mean: the demo's 100 steps and its colour oracle
        assert [line for line in shown if "iters" in line and str(DEMO_DEFAULTS["iterations"]) in line], shown
        assert [line for line in shown if f"{DEMO_CLIP_ID}=1" in line], shown
        await pilot.press("escape", "f5")
        # the demo's 100 steps take about 1.5 s on a fast machine: the run may be over when looked at
        await wait_for(app, lambda: len(saved()) == 1 and ("running" in status(app) or "finished" in status(app)),
                       "the run")
        [info] = saved().values()
        assert info.iterations == DEMO_DEFAULTS["iterations"]
        assert info.config.clip_models == ((DEMO_CLIP_ID, 1.0),)
        assert not [m for _, _, m in app.shown if "ViT-B/32" in m]
        await pilot.press("f8")
        # stopped, or finished before F8 landed: either way released
        await wait_for(app, lambda: [i.status for i in saved().values()] in (["stopped"], ["finished"]),
                       "stopped and released")


async def test_a_printable_quit_key_types_in_a_prompt_instead_of_quitting() -> None:
    app = RecordingApp(settings=Settings(keymap={"app.quit": "a"}))
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        await type_into(pilot, "#source", "a cat")
        await pilot.pause()
        assert app.is_running and app.return_code is None
        assert app.train_screen.query_one("#source", Input).value == "a cat"
        [said] = [m for _, title, m in app.shown if title == "Skipped settings"]
        assert '"app.quit" = "a": a would fire while you type in a text field' in said
