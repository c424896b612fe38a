"""Saving never blocks training: checkpoints and sample PNGs are written on the run's writer thread, a run
is reported saved only once the write finished, and stop/finish wait for pending writes."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest
from test_sessions import demo_config
from test_worker import collect, make

from engine import events as ev
from engine import runs
from engine.config import DEMO_GENERATOR_ID, TrainConfig
from engine.save_thread import SaveThread
from engine.sessions import writer as session_writer
from engine.trainer import Trainer
from engine.training_worker import TrainingWorker


def test_training_goes_on_while_a_checkpoint_is_written(generator, oracle):
    release = threading.Event()
    written: list[int] = []

    def slow_checkpoint(trainer, why):
        step = trainer.step_count  # taken on the training thread, between steps

        def write():
            if step == 3:
                assert release.wait(60), "the test never released the write"
            written.append(step)
            return Path(f"checkpoint-{step}")

        return write

    q: queue.Queue = queue.Queue()
    worker = TrainingWorker(
        make(generator, oracle, iterations=100_000), q.put, checkpoint=slow_checkpoint, checkpoint_every=3
    )
    worker.start()
    try:
        # Steps 4 and 5 run while the checkpoint of step 3 is still being written.
        while (m := collect(q, ev.StepMetrics)).step < 5:
            assert not isinstance(m, ev.CheckpointSaved)
        assert written == [] and worker.saved_step == 0  # not reported saved before the write finished
        # The next checkpoint (step 6) is due while that write still runs: training waits for it rather
        # than holding a second copy of the state (engine.save_thread).
        while worker.trainer.step_count < 6:
            collect(q, ev.StepMetrics)
        time.sleep(0.3)
        assert worker.trainer.step_count == 6 and written == []
    finally:
        release.set()
    saved = collect(q, ev.CheckpointSaved)
    assert (saved.step, saved.reason) == (3, "interval") and written[0] == 3
    worker.stop()
    assert worker.join(30)
    rest = []
    while not q.empty():
        rest.append(q.get())
    fin = rest[-1]
    assert isinstance(fin, ev.TrainingFinished) and fin.stopped
    assert [e.step for e in rest if isinstance(e, ev.CheckpointSaved)][-1] == fin.step == fin.saved_step


def test_finished_is_reported_after_the_last_write_and_every_event_comes_from_the_training_thread(
    generator, oracle
):
    threads: dict[str, set[str]] = {}
    got: list = []

    def on_event(e):
        threads.setdefault(type(e).__name__, set()).add(threading.current_thread().name)
        got.append(e)

    def slow_final(trainer, why):
        gate = threading.Event()

        def write():
            gate.wait(0.3 if why == "finish" else 0)  # a slow disk at the end
            return Path(why)

        return write

    w = TrainingWorker(make(generator, oracle, iterations=4), on_event, checkpoint=slow_final, checkpoint_every=2)
    w.start()
    assert w.join(60)
    kinds = [type(e).__name__ for e in got]
    assert kinds[-2:] == ["CheckpointSaved", "TrainingFinished"]
    assert [(e.step, e.reason) for e in got if isinstance(e, ev.CheckpointSaved)] == [(2, "interval"), (4, "finish")]
    assert got[-1].saved_step == 4
    assert threads["CheckpointSaved"] == threads["StepMetrics"] == {"nada-train"}


def test_a_failing_write_is_reported_like_a_full_disk_and_the_run_finishes(generator, oracle):
    def failing(trainer, why):
        def write():
            raise OSError(28, "No space left on device")

        return write

    got: list = []
    w = TrainingWorker(make(generator, oracle, iterations=4), got.append, checkpoint=failing, checkpoint_every=2)
    w.run()
    errors = [e.text for e in got if isinstance(e, ev.LogMessage) and e.level == "error"]
    assert errors == [
        "Checkpoint at step 2 failed: No space left on device. The previous checkpoint is intact (step 0). "
        "Training goes on; the next checkpoint tries again.",
        "Checkpoint at step 4 failed: No space left on device. The previous checkpoint is intact (step 0). "
        "Free some disk space, then resume the session to continue from there.",
    ]
    assert isinstance(got[-1], ev.TrainingFinished) and got[-1].saved_step == 0 and not got[-1].saved


def test_save_thread_writes_in_order_and_reports_on_the_delivering_thread():
    saver = SaveThread()
    order: list[str] = []
    done: list[tuple[object, object]] = []
    saver.submit(lambda: order.append("a") or "A", lambda r, e: done.append((r, e)), checkpoint=True)
    saver.submit(lambda: order.append("b") or 1 / 0, lambda r, e: done.append((r, type(e).__name__)))
    saver.wait()
    assert order == ["a", "b"] and done == [("A", None), (None, "ZeroDivisionError")]
    assert saver.pending == 0
    saver.close()


@pytest.mark.usefixtures("small_demo", "one_thread")
def test_a_slow_sample_png_does_not_hold_up_training(monkeypatch):
    release = threading.Event()
    real = session_writer._save_png

    def slow_png(path, image):
        if path.name == "step_000002.png":
            assert release.wait(60)
        real(path, image)

    monkeypatch.setattr(session_writer, "_save_png", slow_png)
    run = runs.start_session(
        demo_config(iterations=100_000, preview_every=2), DEMO_GENERATOR_ID, device="cpu", checkpoint_every=0
    )
    q: queue.Queue = queue.Queue()
    with run:
        run.start(q.put)
        try:
            while collect(q, ev.StepMetrics, timeout=60).step < 5:
                pass
            assert not (run.path / "samples" / "step_000002.png").exists()
        finally:
            release.set()
        run.stop()
        assert run.join(60)
    assert (run.path / "samples" / "step_000002.png").is_file()
    assert (run.path / "samples" / "step_000004.png").is_file()


@pytest.mark.usefixtures("one_thread")
def test_the_bench_compares_a_run_with_checkpoints_to_one_without(generator, oracle):
    from engine import bench_saving

    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=(("o", 1.0),), iterations=5,
                      preview_every=0)
    none, every = bench_saving.compare(lambda: Trainer(cfg, generator, {"o": oracle}, device="cpu"), 2)
    assert (none.checkpoint_every, none.checkpoints, none.steps) == (0, 0, 5)
    assert (every.checkpoint_every, every.checkpoints, every.steps) == (2, 2, 5)  # steps 2 and 4; 5 is the finish
    assert every.write_ms is not None and every.checkpoint_bytes > 0
    lines = bench_saving.report("tiny", none, every)
    assert "no checkpoints" in lines[0] and "checkpoint every 2" in lines[1] and "if synchronous" in lines[2]
