"""The app and its one run handle, driven by keys (issue 17 point 1, issue 18 defects 6 and 11): quitting
leaves without waiting for the step in progress, live settings reach the run through one message (and a
refusal comes back as one), a stopped session opened read-only says what it is, and a refused resume
keeps the session's state and says why. Each test failed before its fix."""

from __future__ import annotations

import threading

import pytest
from _pilot import RecordingApp, ready, saved, screen_text, status, step_shown, to_sessions, type_into, wait_for
from textual.widgets import Input

from engine import sessions
from engine.trainer import Trainer
from nada_tui.screens.dialogs import ConfirmDialog

pytestmark = pytest.mark.usefixtures("small_demo")


async def start_long_run(pilot, app: RecordingApp, steps: int) -> None:
    """Start a 5000-step demo run by keys and wait until it is running and has shown `steps` steps."""
    await ready(pilot)
    await type_into(pilot, "#iterations", "5000")
    await pilot.press("escape", "f5")
    await wait_for(app, lambda: "running" in status(app) and step_shown(app) >= steps, "training")


async def test_quit_does_not_wait_for_the_step_in_progress(monkeypatch) -> None:
    # Once the quit question is up, the next step is slow: it waits for the app to have left, for at most
    # 1.5 s. An app that waits for the step (and its save) before leaving sees that step time out first.
    slow, in_step, gone = threading.Event(), threading.Event(), threading.Event()
    left_during_step: list[bool] = []
    step = Trainer.step

    def slow_step(self: Trainer):
        if slow.is_set() and not in_step.is_set():
            in_step.set()
            left_during_step.append(gone.wait(1.5))
        return step(self)

    monkeypatch.setattr(Trainer, "step", slow_step)
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await start_long_run(pilot, app, steps=2)
        await pilot.press("ctrl+q")
        await wait_for(app, lambda: isinstance(app.screen, ConfirmDialog), "the quit question")
        slow.set()
        await wait_for(app, in_step.is_set, "a slow step under way")
        await pilot.press("y")
        await wait_for(app, lambda: app.return_code is not None, "the app leaving")
        gone.set()
    app.finish_saving()  # what run_app does once the terminal is restored: the run saves, then exits
    assert left_during_step == [True]
    [info] = saved().values()
    assert info.status == "stopped" and info.step >= 3 and info.damaged is None


async def test_live_settings_reach_the_run_and_a_refusal_comes_back() -> None:
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await start_long_run(pilot, app, steps=2)
        form = app.train_screen
        await pilot.press("f4")  # the setup form folds away while a run trains: unfold it

        # pinning every trainable layer off leaves nothing to train: refused, and the form shows the pins
        # still in force
        await type_into(pilot, "#pin_off", "0-6", submit=True)
        await wait_for(app, lambda: any(title == "Not changed" for _, title, _ in app.shown), "the refusal")
        assert form.query_one("#pin_off", Input).value == ""
        assert "running" in status(app)

        # the iterations are live too: Enter ends the run earlier (paused, so that the step is known)
        await pilot.press("f6")
        await wait_for(app, lambda: "paused" in status(app), "the pause")
        mark = step_shown(app)
        await type_into(pilot, "#iterations", str(mark + 12), submit=True)
        await wait_for(app, lambda: any(f"Iterations {mark + 12}" in text for _, _, text in app.shown), "the change")
        await pilot.press("f6")
        await wait_for(app, lambda: f"/{mark + 12}" in status(app), "the new length")
        await wait_for(app, lambda: " finished " in status(app), "the run finished at its new length")
        await wait_for(app, lambda: [i.status for i in saved().values()] == ["finished"], "the session released")
    [info] = saved().values()
    assert info.step == mark + 12


async def test_a_stopped_session_read_only_and_a_refused_resume_say_what_it_is() -> None:
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await start_long_run(pilot, app, steps=3)
        await pilot.press("f8")
        await wait_for(app, lambda: [i.status for i in saved().values()] == ["stopped"], "stopped and released")
        [info] = saved().values()

        # opened read-only: the panels say the session's state and step, not "waiting for the first step"
        await to_sessions(pilot, 1)
        await pilot.press("o")
        await wait_for(app, lambda: "(read-only)" in status(app), "the read-only view")
        await pilot.pause()
        text = "\n".join(screen_text(app))
        assert "waiting for the first step" not in text
        assert f"stopped at step {info.step}" in text

        # another process trains it: the resume is refused, and the top bar keeps "stopped" and says why
        lock = sessions.SessionLock(sessions.session_path(info.id)).acquire()
        try:
            await to_sessions(pilot, 1)
            await pilot.press("r")
            await wait_for(app, lambda: isinstance(app.screen, ConfirmDialog), "the resume question")
            await pilot.press("y")
            await wait_for(app, lambda: "not resumed" in status(app), "the refusal in the top bar")
        finally:
            lock.release()
        bar = status(app)
        assert "failed" not in bar and " stopped " in bar and "(read-only)" in bar
        assert any(title == "Cannot use this session" for _, title, _ in app.shown)
