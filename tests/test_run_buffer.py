"""RunBuffer.apply folds engine events into what the screens draw and says what to tell the user."""

from __future__ import annotations

from pathlib import Path

from engine import events as ev
from engine.config import demo_config
from nada_tui.run_buffer import RunBuffer, ViewState


def metrics(step: int, loss: float = 0.5) -> ev.StepMetrics:
    return ev.StepMetrics(step, 10, {"total": loss}, 0.0016, 5.0, 1.0, (1, 2), 2, (0.1, 0.3, 0.2), 10, 0.0)


def test_a_run_from_loading_to_finished() -> None:
    buf = RunBuffer("run-1", demo_config(iterations=10), "demo-tiny")
    view = ViewState(demo=True, settings=None, buffer=buf)
    assert buf.state == "loading" and buf.active and view.training
    buf.session_id = "s1"
    assert view.is_live("s1") and not view.is_live("s2")
    version = buf.version
    assert buf.apply(ev.StateChanged("running", 0)) is None
    for step in (1, 2, 3):
        buf.apply(metrics(step, 1.0 / step))
    assert buf.version > version
    assert [r.step for r in buf.records] == [1, 2, 3] and buf.last.step == 3
    buf.apply(ev.SelectionDone(0, (0.1, 0.3, 0.2), (1, 2)))
    assert buf.log[-1][2] == "step 0: selection trains w1,2"
    lines = len(buf.log)
    buf.apply(ev.SelectionDone(10, (0.1, 0.3, 0.2), (1, 2)))  # the same layers again: no new line
    assert len(buf.log) == lines
    buf.apply(ev.SelectionDone(20, (0.1, 0.3, 0.2), (2,)))
    assert buf.log[-1][2] == "step 20: selection trains w2"
    assert buf.apply(ev.CheckpointSaved(3, Path("x"), "interval")) is None
    assert buf.apply(ev.CheckpointSaved(3, Path("x"), "manual")).text == "Checkpoint saved at step 3."
    notice = buf.apply(ev.TrainingFinished(3, {"total": 0.25}, stopped=True))
    assert buf.state == "stopped" and not buf.active and not view.training
    assert notice.text == "Training stopped at step 3, final loss 0.2500. Session saved."


def test_failures_and_errors_are_shown_with_their_kind() -> None:
    buf = RunBuffer("run-2", demo_config(), "demo-tiny", state="running")
    notice = buf.apply(ev.LogMessage("error", "disk full"))
    assert notice.severity == "error" and buf.log[-1][1:] == ("error", "disk full")
    assert buf.apply(ev.LogMessage("info", "fine")) is None
    notice = buf.apply(ev.TrainingFailed(4, "nan", "The loss became nan at step 5"))
    assert (notice.title, notice.severity, buf.state, buf.failure) == (
        "Loss became NaN", "error", "failed", "The loss became nan at step 5")
    assert buf.apply(ev.TrainingFailed(4, "oom", "lower the batch")).title == "Out of memory"


def test_the_log_keeps_the_last_500_lines() -> None:
    buf = RunBuffer("run-3", None, "demo-tiny")
    for i in range(600):
        buf.add_log("info", str(i))
    assert len(buf.log) == 500 and buf.log[0][2] == "100"
