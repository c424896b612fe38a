"""The app driven by keys through Textual's Pilot, with the 32 px tiny generator as the demo model.

The tests press keys and click fields as a user would, and read what a user sees: the status bar, the
form, the tables, the toasts (recorded as the app shows them) and the sessions on disk. A key press
waits up to a second for the CPU to go idle, which it never is while training runs: allow for that.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from _pilot import RecordingApp, ready, saved, status, step_shown, type_into, wait_for
from textual.widgets import DataTable, Input, Label

from engine.config import DEMO_SOURCE, DEMO_TARGET
from engine.events import StepMetrics, TrainingFinished
from nada_tui.messages import PreviewPixels, RunEvents
from nada_tui.screens.dialogs import ConfirmDialog, FormDialog
from nada_tui.screens.help import HelpScreen
from nada_tui.screens.sessions import SessionsScreen
from nada_tui.screens.train import TrainScreen
from nada_tui.widgets.layer_map import LayerMap
from nada_tui.widgets.loss_chart import LossChart

pytestmark = pytest.mark.usefixtures("small_demo")


async def test_train_pause_weight_retrain_then_sessions_generate_delete(tmp_path: Path) -> None:
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        form = app.train_screen
        # the demo example is filled in and labelled
        assert form.query_one("#source", Input).value == DEMO_SOURCE
        assert form.query_one("#target", Input).value == DEMO_TARGET
        assert "DEMO" in str(form.query_one(".demo-badge", Label).content)
        await type_into(pilot, "#iterations", "5000")
        await type_into(pilot, "#preview_every", "5")
        await type_into(pilot, "#auto_layer_interval", "3")
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: "running" in status(app) and step_shown(app) >= 6, "training")
        chart, layers = form.query_one(LossChart), form.query_one(LayerMap)
        await wait_for(app, lambda: len(chart.series.get("total", ()) and chart.series["total"].values) >= 6,
                       "the chart")
        assert layers.scores and layers.trained and layers.k is not None
        [first] = saved()

        await pilot.press("f6")
        await wait_for(app, lambda: " paused " in status(app), "paused")
        step = step_shown(app)
        await asyncio.sleep(0.6)
        assert step_shown(app) == step
        await pilot.press("f6")
        await wait_for(app, lambda: step_shown(app) > step + 2, "training again")

        await pilot.press("f4")  # the setup form, folded away while the run trains
        await type_into(pilot, "#global_weight", "0.3", submit=True)
        await wait_for(app, lambda: "g=0.30" in status(app), "the new global weight")
        assert any("Global weight 0.3" in m for _, _, m in app.shown)

        # edit the target and retrain: the first run stops (saved), a fork of it trains the edit
        await type_into(pilot, "#target", "a green image")
        await pilot.press("escape", "ctrl+r")
        await wait_for(app, lambda: len(saved()) == 2 and "running" in status(app), "the retrained session")
        [second] = set(saved()) - {first}
        fork = saved()[second]
        assert fork.target == "a green image" and fork.parent_id == first
        await pilot.press("f8")
        await wait_for(app, lambda: " stopped " in status(app), "stopped")
        await wait_for(app, lambda: {i.status for i in saved().values()} == {"stopped"}, "both sessions released")

        # both sessions in the sessions screen, newest first
        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, SessionsScreen)
        table = screen.query_one(DataTable)
        await wait_for(app, lambda: table.row_count == 2, "two rows")
        await pilot.press("home")
        out = tmp_path / "generated"
        await pilot.press("g")
        assert isinstance(app.screen, FormDialog)
        await type_into(pilot, "#f-n", "3")
        await type_into(pilot, "#f-folder", str(out))
        await pilot.click("#ok")
        await wait_for(app, lambda: len(list(out.glob("*.png"))) == 3, "3 images")

        # delete the older one after confirming
        await pilot.press("down", "d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await wait_for(app, lambda: table.row_count == 1, "one row left")
        assert list(saved()) == [second]


async def test_quit_while_training_saves_within_two_seconds() -> None:
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        await type_into(pilot, "#iterations", "5000")  # still training when the quit comes
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: step_shown(app) >= 3, "training")
        await pilot.press("ctrl+q")
        await wait_for(app, lambda: isinstance(app.screen, ConfirmDialog), "the quit question")
        t0 = time.monotonic()
        await pilot.press("y")
        await wait_for(app, lambda: app.return_code is not None, "exit", timeout=5)
        elapsed = time.monotonic() - t0
    app.finish_saving()  # as run_app does once the terminal is restored
    [info] = saved().values()
    assert elapsed < 2.0
    assert info.damaged is None and info.status == "stopped" and info.step >= 3


async def test_training_on_the_cpu_reaches_the_ui_in_batches_a_second_apart() -> None:
    # Every message wakes the UI thread, and on the CPU every wake takes a core from training: a run's
    # events come once a second, with the newest preview only; the end of the run comes at once.
    batches: list[tuple] = []
    previews: list[int] = []

    def hook(message) -> None:
        if isinstance(message, RunEvents):
            batches.append(message.events)
        elif isinstance(message, PreviewPixels):
            previews.append(message.step)

    app = RecordingApp()
    async with app.run_test(size=(160, 48), message_hook=hook) as pilot:
        await ready(pilot)
        await type_into(pilot, "#iterations", "400")
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: any(isinstance(e, TrainingFinished) for b in batches for e in b), "the end")
        await wait_for(app, lambda: "finished" in status(app), "the finished run on screen")
    metrics = [[e for e in batch if isinstance(e, StepMetrics)] for batch in batches]
    assert sorted(m.step for batch in metrics for m in batch) == list(range(1, 401))  # none is lost
    flushed_at = [batch[-1].elapsed_s for batch in metrics if batch]
    assert len(flushed_at) >= 3
    assert all(b - a >= 0.9 for a, b in zip(flushed_at[:-2], flushed_at[1:-1], strict=True)), flushed_at
    assert isinstance(batches[-1][-1], TrainingFinished)
    assert 1 <= len(previews) <= len(batches)


async def test_bad_prompts_and_load_errors_are_messages_and_write_nothing() -> None:
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        screen = app.train_screen
        assert str(screen.query_one("#source-tokens", Label).content).startswith("5/77")
        await type_into(pilot, "#target", "a red image")
        assert "same" in str(screen.query_one("#prompt-warning", Label).content)
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: any("same" in m for _, _, m in app.shown), "the refusal")
        assert app.focused is screen.query_one("#target")  # the cursor goes to the field to fix
        assert "ready" in status(app)

        # a bad number names its field
        await type_into(pilot, "#batch", "0")
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: any(m.startswith("batch:") for _, _, m in app.shown), "the batch message")
        await type_into(pilot, "#batch", "2")

        # a CLIP model that needs a download fails offline: a message, the app lives on
        await type_into(pilot, "#target", "a blue image")
        await type_into(pilot, "#clip_models", "ViT-B/32=1")
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: "failed" in status(app), "the load failure")
        assert any(sev == "error" and title == "Could not load the models" for sev, title, _ in app.shown)
    assert saved() == {}  # nothing written for runs that never started


async def test_help_and_keymap(private_home: Path) -> None:
    cfg = private_home / "config" / "nada-tui"
    cfg.mkdir(parents=True)
    # f9: a key nothing else uses (f4 folds the setup form)
    (cfg / "config.toml").write_text('theme = "nada-light"\n[keymap]\n"app.sessions" = "f9"\n')
    app = RecordingApp()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        assert app.theme == "nada-light"
        await pilot.press("f9")
        assert isinstance(app.screen, SessionsScreen)
        await pilot.press("f2")
        assert isinstance(app.screen, TrainScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        assert any(r[2] == "app.sessions" and "F9" in r[0].upper() for r in app.binding_rows())
        assert any(r[2] == "train.setup" and "F4" in r[0].upper() for r in app.binding_rows())  # in the help
        await pilot.press("escape")
        assert isinstance(app.screen, TrainScreen)


async def test_open_read_only_then_resume() -> None:
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        await type_into(pilot, "#iterations", "6")
        await type_into(pilot, "#preview_every", "3")
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: " finished " in status(app), "finished")
        await wait_for(app, lambda: [i.status for i in saved().values()] == ["finished"], "the session released")
        [sid] = saved()

        await pilot.press("f3")
        table = app.screen.query_one(DataTable)
        await wait_for(app, lambda: table.row_count == 1, "the session row")
        await pilot.press("o")
        await wait_for(app, lambda: isinstance(app.screen, TrainScreen) and "(read-only)" in status(app), "read-only")
        chart = app.screen.query_one(LossChart)
        await wait_for(app, lambda: len(chart.series.get("total", ()) and chart.series["total"].values) == 6,
                       "the saved curve")

        # resume the finished session: it trains 100 more steps in the same session
        await pilot.press("f3", "r")
        assert isinstance(app.screen, ConfirmDialog)  # resuming asks first
        await pilot.press("y")
        await wait_for(app, lambda: "running" in status(app) and step_shown(app) > 8, "resumed steps")
        await pilot.press("f8")
        await wait_for(app, lambda: [i.status for i in saved().values()] == ["stopped"], "stopped and released")
    assert list(saved()) == [sid] and saved()[sid].step > 8
