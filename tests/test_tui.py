"""The app driven through Textual's Pilot with tiny models (a 32 px generator and the colour oracle).

Pitfall: pilot.press waits for the CPU to go idle, which never happens while a training thread runs,
so while training the tests call the screen's actions directly and poll the app's state.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Label, Select

from engine import sessions
from nada_tui import backend
from nada_tui.app import NadaApp
from nada_tui.screens.dialogs import ConfirmDialog, FormDialog
from nada_tui.screens.sessions import SessionsScreen
from nada_tui.screens.train import TrainScreen
from nada_tui.widgets.layer_map import LayerMap
from nada_tui.widgets.loss_chart import LossChart

_APP: list[NadaApp] = []


def _log() -> object:
    buf = _APP[-1].buffer if _APP else None
    return None if buf is None else (buf.state, buf.log[-4:], [n.message for n in _APP[-1]._notifications])


async def wait_for(cond, timeout: float = 20.0, what: str = "condition") -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}; log: {_log()}")
        await asyncio.sleep(0.05)


@pytest.fixture
def fast_model() -> str:
    return backend.ensure_test_model()


async def ready_screen(app: NadaApp) -> TrainScreen:
    _APP.append(app)
    screen = app.screen
    assert isinstance(screen, TrainScreen)
    await wait_for(lambda: screen.engine_ready, what="the model registry")
    return screen


def fill(screen: TrainScreen, model: str, **values: str) -> None:
    screen.query_one("#model", Select).value = model
    for key, value in values.items():
        screen.query_one(f"#{key}", Input).value = value


async def test_train_pause_retrain_sessions_generate_delete(fast_model: str, tmp_path: Path) -> None:
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await ready_screen(app)
        # the demo example is filled in and labelled
        assert screen.query_one("#source", Input).value == backend.DEMO_SOURCE
        assert screen.query_one("#target", Input).value == backend.DEMO_TARGET
        assert "DEMO" in str(screen.query_one(".demo-badge", Label).content)
        fill(screen, fast_model, iterations="400", preview_every="5", interval="3")
        await pilot.pause()
        screen.action_start()
        await wait_for(lambda: app.buffer is not None and len(app.buffer.records) >= 6, what="metrics")
        await wait_for(lambda: app.buffer.preview is not None, what="a preview")
        chart = screen.query_one(LossChart)
        # redraws come on a timer (stretched up to 1 s while training on the CPU)
        await wait_for(lambda: "total" in chart.series and len(chart.series["total"].values) >= 6,
                       what="the chart to draw the metrics")
        layers = screen.query_one(LayerMap)
        assert layers.scores and layers.trained and layers.k is not None

        # pause and resume
        app.toggle_pause()
        await wait_for(lambda: app.buffer.state == "paused", what="paused")
        n = len(app.buffer.records)
        await asyncio.sleep(0.4)
        assert len(app.buffer.records) == n
        app.toggle_pause()
        await wait_for(lambda: len(app.buffer.records) > n + 2, what="training again")

        # live global weight change
        screen.query_one("#global_weight", Input).value = "0.3"
        await wait_for(lambda: app.buffer.last.global_weight == pytest.approx(0.3), what="new global weight")

        # edit the target and retrain: the first run stops (saved), a fork starts
        first = app.buffer.session_id
        screen.query_one("#target", Input).value = "a green image"
        screen.action_retrain()
        await wait_for(lambda: app.buffer.session_id not in (None, first) and len(app.buffer.records) >= 3,
                       what="the retrained session")
        second = app.buffer.session_id
        assert app.training.config.target == "a green image"
        app.stop_training()
        await wait_for(lambda: app.buffer.state == "stopped" and not app.training.alive, what="stopped")
        await wait_for(lambda: app.training._closed, what="session released")

        # both sessions in the sessions screen
        app.switch_mode("sessions")
        await pilot.pause()
        ses = app.screen
        assert isinstance(ses, SessionsScreen)
        await wait_for(lambda: ses.query_one(DataTable).row_count == 2, what="two rows")
        ids = {s.id for s in ses.sessions}
        assert ids == {first, second}
        fork = sessions.load(second)
        assert fork.data["parent"]["id"] == first

        # generate 3 images from the fork through the dialog
        ses.select_session(second)
        await pilot.pause()
        ses.action_generate()
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, FormDialog)
        out = tmp_path / "generated"
        dialog.query_one("#f-n", Input).value = "3"
        dialog.query_one("#f-folder", Input).value = str(out)
        await pilot.click("#ok")
        await wait_for(lambda: len(list(out.glob("*.png"))) == 3, what="3 images")

        # delete the first after confirming
        ses.select_session(first)
        await pilot.pause()
        ses.action_delete()
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await wait_for(lambda: ses.query_one(DataTable).row_count == 1, what="one row left")
        assert [s.id for s in backend.list_sessions()] == [second]


async def test_quit_while_training_saves_within_two_seconds(fast_model: str) -> None:
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready_screen(app)
        fill(screen, fast_model, iterations="1000")
        await pilot.pause()
        screen.action_start()
        await wait_for(lambda: app.buffer is not None and len(app.buffer.records) >= 3, what="metrics")
        sid = app.buffer.session_id
        await app.action_quit()
        await wait_for(lambda: isinstance(app.screen, ConfirmDialog), what="the quit question")
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        app.screen.action_answer(True)
        await wait_for(lambda: app.return_code is not None, timeout=5, what="exit")
        elapsed = time.monotonic() - t0
    info = sessions.read_info(sessions.session_path(sid))
    assert elapsed < 2.0
    assert info.damaged is None
    assert info.status == "stopped" and info.step >= 3


async def test_prompt_validation_and_load_errors_are_messages(fast_model: str) -> None:
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready_screen(app)
        assert str(screen.query_one("#source-tokens", Label).content).startswith("5/77")
        screen.query_one("#target", Input).value = "a red image"
        await pilot.pause()
        assert "same" in str(screen.query_one("#prompt-warning", Label).content)
        screen.action_start()
        await pilot.pause()
        assert app.training is None  # refused before anything was written
        assert any("same" in n.message for n in app._notifications)

        # a CLIP model that needs a download fails offline: a notification, the app lives on
        fill(screen, fast_model, target="a blue image", clip_models="ViT-B/32=1")
        screen.action_start()
        await wait_for(lambda: app.buffer is not None and app.buffer.state == "failed", what="load failure")
        assert app.buffer.failure
        assert any(n.severity == "error" for n in app._notifications)
        assert backend.list_sessions() == []  # nothing written for a run that never loaded


async def test_help_and_palette_and_keymap(fast_model: str, private_home: Path) -> None:
    cfg = private_home / "config" / "nada-tui"
    cfg.mkdir(parents=True)
    (cfg / "config.toml").write_text('theme = "nada-light"\n[keymap]\n"app.sessions" = "f4"\n')
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready_screen(app)
        assert app.theme == "nada-light"
        await pilot.press("f4")
        assert isinstance(app.screen, SessionsScreen)
        await pilot.press("f2")
        assert isinstance(app.screen, TrainScreen)
        await pilot.press("f1")
        from nada_tui.screens.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        assert any(r[2] == "app.sessions" and "F4" in r[0].upper() for r in app.binding_rows())
        await pilot.press("escape")
        assert isinstance(app.screen, TrainScreen)


async def test_open_read_only_then_resume(fast_model: str) -> None:
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready_screen(app)
        fill(screen, fast_model, iterations="6", preview_every="3")
        screen.action_start()
        await wait_for(lambda: app.buffer is not None and app.buffer.state == "finished", what="finished")
        await wait_for(lambda: app.training._closed, what="session released")
        sid = app.buffer.session_id
        app.switch_mode("sessions")
        await pilot.pause()
        ses = app.screen
        assert isinstance(ses, SessionsScreen)
        await wait_for(lambda: ses.query_one(DataTable).row_count == 1, what="the session row")
        ses.select_session(sid)
        ses.action_open()
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen) and app.screen.read_only
        assert app.buffer.session_id == sid and len(app.buffer.records) == 6
        await wait_for(lambda: len(app.screen.query_one(LossChart).series.get("total", ()) and
                                   app.screen.query_one(LossChart).series["total"].values) == 6,
                       what="the saved curve")
        # resume the finished session: it trains 100 more steps in the same session
        info = next(s for s in backend.list_sessions() if s.id == sid)
        app.resume_session(info)
        await wait_for(lambda: app.buffer.last is not None and app.buffer.last.step > 8, what="resumed steps")
        assert app.buffer.session_id == sid
        app.stop_training()
        await wait_for(lambda: not app.training.alive and app.training._closed, what="stopped")
    assert sessions.read_info(sessions.session_path(sid)).step > 8
