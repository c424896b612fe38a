"""Issue 11, section 3, in the app, driven by keys: a failed final save, the fork dialog's "Start from"
choice, a session another process trains, and the global weight's log line. Each test failed before its
fix (the log line's test guards a fix made earlier)."""

from __future__ import annotations

import asyncio

import pytest
from _pilot import RecordingApp, ready, saved, status, step_shown, to_sessions, type_into, wait_for
from _sessions import fill_disk_after
from textual.widgets import RichLog

from engine import sessions
from nada_tui.screens.dialogs import FormDialog

pytestmark = pytest.mark.usefixtures("small_demo")


async def train_one(pilot, iterations: int = 4) -> str:
    """Train a short session with the form; returns its id once it is finished and released."""
    app = pilot.app
    await type_into(pilot, "#iterations", str(iterations))
    await pilot.press("escape", "f5")
    await wait_for(app, lambda: [i.status for i in saved().values()] == ["finished"], "the session released")
    [sid] = saved()
    return sid


# ----- 2. a failed final save ------------------------------------------------------------------------
async def test_a_failed_final_save_shows_not_saved(monkeypatch) -> None:
    fill_disk_after(monkeypatch, 1)  # the session's creation saves step 0; the disk is full after that
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        await type_into(pilot, "#iterations", "4")
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: "not saved" in status(app), "the failed final save")
        assert "finished" not in status(app)
        [(severity, text)] = [(sev, m) for sev, title, m in app.shown if title == "Not saved"]
        assert severity == "error" and "holds step 0" in text and "resume" in text
        await wait_for(app, lambda: [i.status for i in saved().values()] == ["interrupted"], "the session released")
    [info] = saved().values()
    assert info.step == 0  # what the toast said


# ----- 7. the fork dialog's "Start from" is a choice ---------------------------------------------------
async def test_fork_from_the_adapted_weights_picked_with_keys() -> None:
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        parent = await train_one(pilot)
        await to_sessions(pilot, 1)
        await pilot.press("f")
        assert isinstance(app.screen, FormDialog)
        await type_into(pilot, "#f-source", "a blue image")
        await type_into(pilot, "#f-target", "a green image")
        await pilot.press("tab", "down", "enter")  # to "Start from", the next choice (adapted), pick it
        await pilot.click("#ok")
        await wait_for(app, lambda: len(saved()) == 2 and all(i.status == "finished" for i in saved().values()),
                       "the fork trained")
    [fork] = [i for i in saved().values() if i.id != parent]
    assert fork.parent_id == parent and fork.data["parent"]["from_weights"] is True
    assert (fork.source, fork.target) == ("a blue image", "a green image")
    assert sessions.start_weights(fork)  # it started from the parent's adapted weights


# ----- 8. a session another process trains; the global weight's log line -------------------------------
async def test_resuming_a_session_another_process_trains_says_so() -> None:
    import torch

    from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, TrainConfig

    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=((DEMO_CLIP_ID, 1.0),))
    state = dict(step=0, config=cfg.to_dict(), weights={}, param_names=[], optimizer={}, scores=None,
                 rng=torch.Generator().manual_seed(0).get_state())
    with sessions.create(state, {"id": DEMO_GENERATOR_ID}, name="busy") as writer:
        sid = writer.id
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        lock = sessions.SessionLock(sessions.session_path(sid)).acquire()  # another app trains it
        try:
            await to_sessions(pilot, 1)
            await pilot.press("r", "y")
            await wait_for(app, lambda: any(sev == "error" for sev, _, _ in app.shown), "the refusal")
        finally:
            lock.release()
    [(title, text)] = [(title, m) for sev, title, m in app.shown if sev == "error"]
    assert title == "Cannot use this session" and "being written by process" in text


async def test_a_new_global_weight_is_logged_once() -> None:
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        await type_into(pilot, "#iterations", "100000")
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: "running" in status(app) and step_shown(app) >= 2, "training")
        await pilot.press("f4")  # the setup form, folded away while the run trains
        await type_into(pilot, "#global_weight", "0.35", submit=True)
        await wait_for(app, lambda: "g=0.35" in status(app), "the new global weight")
        log = app.train_screen.query_one("#log", RichLog)

        def weight_lines() -> list[str]:
            return [line.text for line in log.lines if "global weight" in line.text.lower()]

        await wait_for(app, lambda: weight_lines(), "the log line")
        await asyncio.sleep(1.0)  # a second line would have been drawn by now
        lines = weight_lines()
        await pilot.press("f8")
        await wait_for(app, lambda: [i.status for i in saved().values()] == ["stopped"], "stopped and released")
    assert len([line for line in lines if "0.35" in line]) == 1, lines
