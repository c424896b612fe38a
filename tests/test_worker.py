"""The worker thread: control flags checked every step, events out, failures as events."""

from __future__ import annotations

import queue
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from engine import events as ev
from engine.config import TrainConfig
from engine.trainer import Trainer
from engine.training_worker import TrainingWorker


def make(generator, oracle, iterations=200, **kw):
    cfg = TrainConfig(
        source="a red image",
        target="a blue image",
        clip_models=(("o", 1.0),),
        iterations=iterations,
        preview_every=5,
        **kw,
    )
    return Trainer(cfg, generator, {"o": oracle}, device="cpu")


def collect(worker_events: queue.Queue, kind, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        e = worker_events.get(timeout=deadline - time.monotonic())
        if isinstance(e, kind):
            return e
    raise AssertionError(f"no {kind.__name__} within {timeout}s")


def test_run_to_the_end_emits_metrics_selection_previews_and_finish(generator, oracle):
    got: list = []
    saves: list = []
    tr = make(generator, oracle, iterations=12)
    TrainingWorker(
        tr, got.append, checkpoint=lambda t, why: saves.append((t.step_count, why)), checkpoint_every=5
    ).run()
    steps = [e for e in got if isinstance(e, ev.StepMetrics)]
    assert [m.step for m in steps] == list(range(1, 13))
    assert [e.step for e in got if isinstance(e, ev.SelectionDone)] == [1, 11]  # 1-based, like the steps
    assert [e.step for e in got if isinstance(e, ev.PreviewReady)] == [5, 10, 12]
    assert saves == [(5, "interval"), (10, "interval"), (12, "finish")]
    fin = got[-1]
    assert isinstance(fin, ev.TrainingFinished) and fin.step == 12 and not fin.stopped
    assert fin.losses == steps[-1].losses
    assert steps[-1].memory is not None and steps[-1].memory.used_bytes > 0


def test_pause_resume_and_stop_take_effect_between_steps(generator, oracle):
    q: queue.Queue = queue.Queue()
    saves: list = []
    worker = TrainingWorker(
        make(generator, oracle, iterations=100_000), q.put, checkpoint=lambda t, why: saves.append(why)
    )
    worker.start()
    collect(q, ev.StepMetrics)
    worker.pause()
    paused = collect(q, ev.StateChanged)
    while paused.state != "paused":
        paused = collect(q, ev.StateChanged)
    step_at_pause = worker.trainer.step_count
    time.sleep(0.3)
    assert worker.trainer.step_count == step_at_pause  # nothing runs while paused
    assert saves == ["pause"]
    worker.resume()
    m = collect(q, ev.StepMetrics)
    assert m.step == step_at_pause + 1
    t0 = time.monotonic()
    worker.stop()
    assert worker.join(timeout=5)
    assert time.monotonic() - t0 < 2
    fin = collect(q, ev.TrainingFinished)
    assert fin.stopped and saves[-1] == "stop"


def test_stop_while_paused_ends_promptly(generator, oracle):
    q: queue.Queue = queue.Queue()
    worker = TrainingWorker(make(generator, oracle, iterations=100_000), q.put)
    worker.start()
    collect(q, ev.StepMetrics)
    worker.pause()
    time.sleep(0.2)
    worker.stop()
    assert worker.join(timeout=5)


def test_nan_loss_fails_with_a_message_and_keeps_the_last_good_weights(generator, oracle, monkeypatch):
    tr = make(generator, oracle, iterations=10)
    got: list = []
    real_call = tr.loss.__call__
    calls = {"n": 0}

    def poisoned(frozen, trained, s, t):
        calls["n"] += 1
        terms = real_call(frozen, trained, s, t)
        if calls["n"] == 4:
            terms["total"] = terms["total"] * float("nan")
        return terms

    monkeypatch.setattr(
        tr,
        "loss",
        type(
            "L",
            (),
            {
                "__call__": staticmethod(poisoned),
                "global_losses": tr.loss.global_losses,
                "models": tr.loss.models,
            },
        )(),
    )
    snapshots = []
    TrainingWorker(
        tr,
        got.append,
        checkpoint=lambda t, why: snapshots.append({k: v.clone() for k, v in t.trainable_state().items()}),
    ).run()
    failed = got[-1]
    assert isinstance(failed, ev.TrainingFailed) and failed.kind == "nan"
    assert "step 4" in failed.message and "lr" in failed.message
    assert tr.step_count == 3
    assert all(torch.isfinite(v).all() for v in snapshots[-1].values())


def test_cuda_out_of_memory_becomes_advice(generator, oracle, monkeypatch):
    tr = make(generator, oracle, iterations=10)

    def boom():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(tr, "step", boom)
    got: list = []
    TrainingWorker(tr, got.append).run()
    failed = got[-1]
    assert failed.kind == "oom" and "Lower the batch (now 2)" in failed.message


def test_unexpected_errors_become_failed_events_not_dead_threads(generator, oracle, monkeypatch):
    tr = make(generator, oracle, iterations=10)
    monkeypatch.setattr(tr, "step", lambda: 1 / 0)
    got: list = []
    w = TrainingWorker(tr, got.append)
    w.start()
    assert w.join(5)
    assert isinstance(got[-1], ev.TrainingFailed) and "ZeroDivisionError" in got[-1].message


def test_full_disk_during_checkpoint_is_reported_and_training_goes_on(generator, oracle):
    def full(trainer, why):
        raise OSError(28, "No space left on device")

    got: list = []
    TrainingWorker(
        make(generator, oracle, iterations=4), got.append, checkpoint=full, checkpoint_every=2
    ).run()
    logs = [e for e in got if isinstance(e, ev.LogMessage)]
    assert logs and "No space left" in logs[0].text and "previous checkpoint is intact" in logs[0].text
    assert isinstance(got[-1], ev.TrainingFinished) and got[-1].step == 4


def test_engine_trains_with_textual_blocked():
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "textual" or name.startswith("textual."):
                    raise ImportError("textual is blocked in this test")
        sys.meta_path.insert(0, Block())
        import importlib, pkgutil, engine
        for info in pkgutil.iter_modules(engine.__path__):
            importlib.import_module(f"engine.{info.name}")
        from engine.config import TrainConfig
        from engine.trainer import Trainer
        from engine.training_worker import TrainingWorker
        from engine.demo import tiny_generator, colour_oracle
        cfg = TrainConfig(source="a red image", target="a blue image", clip_models=(("o", 1.0),), iterations=3)
        got = []
        TrainingWorker(Trainer(cfg, tiny_generator(), {"o": colour_oracle()}, device="cpu"), got.append).run()
        assert type(got[-1]).__name__ == "TrainingFinished", got[-1]
        assert not any(m.startswith("textual") for m in sys.modules)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_events_can_arrive_on_another_thread(generator, oracle):
    seen_threads = set()
    done = threading.Event()

    def on_event(e):
        seen_threads.add(threading.current_thread().name)
        if isinstance(e, ev.TrainingFinished):
            done.set()

    w = TrainingWorker(make(generator, oracle, iterations=3), on_event)
    w.start()
    assert done.wait(20)
    assert seen_threads == {"nada-train"}


@pytest.mark.gpu
def test_cuda_training_steps(generator, oracle):
    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=(("o", 1.0),), iterations=5)
    tr = Trainer(cfg, generator, {"o": oracle}, device="cuda")
    m = [tr.step() for _ in range(5)][-1]
    assert m.memory.device.startswith("cuda") and m.memory.used_bytes > 0


def test_long_lived_objects_are_left_out_of_full_collections_only_while_training(generator, oracle):
    # A full collection walks every object in the process (a ~220 ms pause with torch, CLIP and
    # Textual loaded); while a run trains in the app, what existed before it is frozen out of those
    # walks (nada_tui.process), and afterwards it is collectable again, so a finished run's reference
    # cycles do not leak.
    import gc
    import weakref

    from nada_tui.process import freeze_while_training

    class Cycle:
        pass

    before = gc.get_freeze_count()
    garbage = Cycle()
    garbage.me = garbage  # only the cyclic GC can free it
    gone = weakref.ref(garbage)
    del garbage
    frozen_while_training: list[int] = []

    def on_event(e) -> None:
        if isinstance(e, ev.StepMetrics):
            frozen_while_training.append(gc.get_freeze_count())

    worker = TrainingWorker(make(generator, oracle, iterations=3), on_event)
    worker.start()
    waiter = freeze_while_training(worker)
    waiter.join(60)
    assert frozen_while_training and frozen_while_training[-1] > before  # frozen a moment after the start
    assert gc.get_freeze_count() == before
    gc.collect()
    assert gone() is None
