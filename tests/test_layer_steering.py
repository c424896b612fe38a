"""Steering which layers train: the `layers` setting (named sets, explicit indices), pins (live, recorded in
metrics.jsonl, saved and restored on resume), their checks, flags and the layer-set table in docs/settings.md."""

from __future__ import annotations

import argparse
import json
import queue
import re
from pathlib import Path

import pytest
import torch

from engine import events as ev
from engine import runs, sessions
from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, SETTINGS, ConfigError, TrainConfig, default_k
from engine.freezing import LayerChoice, index_resolution, layer_sets_markdown, named_layers, top_k
from engine.trainer import Trainer
from engine.training_worker import TrainingWorker
from nada_tui.cli._common import add_config_flags, config_changes

SETTINGS_DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
ORACLE = (("oracle", 1.0),)


def make_trainer(generator, oracle, **kw) -> Trainer:
    base = dict(source="a red image", target="a blue image", clip_models=ORACLE, batch=1, auto_layer_batch=2)
    return Trainer(TrainConfig(**{**base, **kw}), generator, {"oracle": oracle}, device="cpu")


# ----- the setting as text --------------------------------------------------------------------------
def test_layer_specs_and_pins_parse_to_one_canonical_form() -> None:
    cfg = TrainConfig.parse({"layers": " 4-7,1, 0", "pin_on": "3,1 2", "pin_off": "9"})
    assert (cfg.layers, cfg.pin_on, cfg.pin_off) == ("0,1,4-7", (1, 2, 3), (9,))
    assert TrainConfig.parse({"layers": "COARSE"}).layers == "coarse"
    assert TrainConfig(layers=[5, 3, 4], pin_on=[0]).layers == "3-5"  # TOML/JSON lists
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert SETTINGS["pin_on"].live and SETTINGS["pin_off"].live and not SETTINGS["layers"].live


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("layers", "0,x", "'x' is not a W+ index"),
        ("layers", "7-4", "runs backwards"),
        ("layers", "-1", "start at 0"),
        ("layers", "coarse,fine", "is not a W+ index"),
        ("pin_on", "1;2", "is not a W+ index"),
        ("pin_off", "a-b", "is not a W+ index"),
    ],
)
def test_bad_syntax_names_the_setting(field: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: .*{re.escape(says)}") as info:
        TrainConfig.parse({field: value})
    assert info.value.field == field


def test_a_layer_pinned_both_ways_is_refused() -> None:
    with pytest.raises(ConfigError, match="^pin_off: w2 is pinned both on and off"):
        TrainConfig(pin_on=(1, 2), pin_off=(2,))


def test_cli_flags_layers_pin_on_pin_off() -> None:
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    args = parser.parse_args(["--layers", "0,1,4-7", "--pin-on", "0,1", "--pin-off", "12"])
    assert config_changes(args) == {"layers": "0,1,4-7", "pin_on": (0, 1), "pin_off": (12,)}
    with pytest.raises(SystemExit):
        parser.parse_args(["--layers", "fine-ish"])


# ----- named sets by resolution, ranges checked once the generator is known -------------------------
def test_named_sets_follow_resolution_at_every_size() -> None:
    assert [index_resolution(i) for i in range(8)] == [4, 8, 8, 16, 16, 32, 32, 64]
    for size in (64, 256, 512, 1024):
        n = 2 * size.bit_length() - 4  # 2 log2(size) - 2
        coarse, medium, fine = (named_layers(s, n) for s in ("coarse", "medium", "fine"))
        assert coarse == (0, 1, 2) and medium == (3, 4, 5, 6)
        assert fine == tuple(range(7, n - 1))  # the last index feeds only the final to_rgb
        assert named_layers("all", n) == coarse + medium + fine


def test_docs_have_the_generated_layer_set_table() -> None:
    assert layer_sets_markdown() in SETTINGS_DOC.read_text(encoding="utf-8"), (
        "docs/settings.md's layer-set table differs from engine.freezing.layer_sets_markdown(): paste its output"
    )


@pytest.mark.parametrize(
    ("settings", "field", "says"),
    [
        (dict(layers="0,7"), "layers", "w7 is out of range: this 32 px generator trains W\\+ indices 0-6"),
        (dict(layers="fine"), "layers", "'fine' \\(64 px and up\\) is empty"),
        (dict(pin_on=(3, 8)), "pin_on", "w8 is out of range"),
        (dict(pin_off=(7,)), "pin_off", "w7 feeds only the final to_rgb"),
        (dict(layers="coarse", pin_off=(0, 1, 2)), "pin_off", "leaves no layer to train"),
    ],
)
def test_out_of_range_for_the_model_names_the_setting(generator, oracle, settings, field, says) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: .*{says}"):
        make_trainer(generator, oracle, **settings)


# ----- the trained set, step by step ------------------------------------------------------------------
def run_steps(tr: Trainer, n: int, selections: list[int], monkeypatch) -> list[ev.StepMetrics]:
    real = tr.select_layers

    def spy():
        selections.append(tr.step_count)
        return real()

    monkeypatch.setattr(tr, "select_layers", spy)
    return [tr.step() for _ in range(n)]


@pytest.mark.parametrize(
    ("layers", "pins", "expected"),
    [
        ("coarse", {}, (0, 1, 2)),
        ("medium", {"pin_on": (0,)}, (0, 3, 4, 5, 6)),
        ("all", {"pin_off": (6,)}, (0, 1, 2, 3, 4, 5)),
        ("0,1,4-6", {"pin_off": (4,)}, (0, 1, 5, 6)),
    ],
)
def test_fixed_sets_train_exactly_their_layers_without_selection(
    generator, oracle, monkeypatch, layers, pins, expected
) -> None:
    tr = make_trainer(generator, oracle, iterations=6, layers=layers, auto_layer_interval=2, **pins)
    selections: list[int] = []
    before = {k: v.clone() for k, v in tr.generator.state_dict().items()}
    for m in run_steps(tr, 6, selections, monkeypatch):
        assert m.trained_indices == expected and m.k == len(expected) and m.layers == layers
        assert m.scores is None and m.next_selection is None
    assert selections == []
    prefixes = tuple("conv1." if i == 0 else f"convs.{i - 1}." for i in expected)
    for k, v in tr.generator.state_dict().items():
        if not torch.equal(v, before[k]):
            assert k.startswith(prefixes), f"{k} changed but is not in {layers}"


def test_pins_shape_adaptive_selection_at_every_step_of_the_schedule(generator, oracle, monkeypatch) -> None:
    # k falls 4, 4, 3, 3, 2, 2, 1, ... : k_eff = max(k, |pin_on|) = max(k, 2), pinned-off never trains
    on, off = (1, 5), (0, 6)
    tr = make_trainer(generator, oracle, iterations=12, auto_layer_k=4, auto_layer_interval=3,
                      auto_layer_falloff=2, pin_on=on, pin_off=off)
    selections: list[int] = []
    metrics = run_steps(tr, 12, selections, monkeypatch)
    assert selections == [0, 3, 6, 9]
    scores = None
    for t, m in enumerate(metrics):
        if t % 3 == 0:
            scores = torch.tensor(m.scores)
        k_eff = max(max(1, 4 - t // 2), len(on))
        assert m.k == k_eff and len(m.trained_indices) == k_eff
        assert set(on) <= set(m.trained_indices) and not set(off) & set(m.trained_indices)
        free = [i for i in range(generator.n_latent - 1) if i not in on + off]
        assert m.trained_indices == tuple(sorted({*on, *top_k(scores, k_eff - len(on), free)}))
        assert (m.pin_on, m.pin_off, m.n_latent) == (on, off, generator.n_latent)


def test_pins_with_k_zero_and_more_pins_than_k(generator, oracle) -> None:
    tr = make_trainer(generator, oracle, iterations=2, auto_layer_k=0, pin_off=(2,))
    assert tr.step().trained_indices == (0, 1, 3, 4, 5, 6)
    tr = make_trainer(generator, oracle, iterations=2, auto_layer_k=1, auto_layer_falloff=0, pin_on=(0, 3, 4))
    m = tr.step()
    assert m.trained_indices == (0, 3, 4) and m.k == 3
    assert LayerChoice.from_settings("auto", (), (), 8).k_effective(default_k(8)) == default_k(8)


# ----- live: through Trainer.update and the worker --------------------------------------------------
def test_a_pin_change_through_the_worker_takes_effect_at_the_next_step(generator, oracle) -> None:
    tr = make_trainer(generator, oracle, iterations=100_000, auto_layer_k=2, auto_layer_falloff=0)
    q: queue.Queue = queue.Queue()
    worker = TrainingWorker(tr, q.put)
    worker.start()
    try:
        first = next(e for e in iter(lambda: q.get(timeout=20), None) if isinstance(e, ev.StepMetrics))
        assert first.pin_on == () and len(first.trained_indices) == 2
        worker.pause()
        while not (isinstance(e := q.get(timeout=20), ev.StateChanged) and e.state == "paused"):
            pass
        paused_at = tr.step_count
        pinned = (6,) if 6 not in first.trained_indices else (5,)
        off = tuple(i for i in first.trained_indices if i not in pinned)[:1]
        tr.update(pin_on=pinned, pin_off=off)
        with pytest.raises(ConfigError, match="^pin_on: w7 is out of range"):
            tr.update(pin_on=(7,))  # refused; the accepted change above stays pending
        worker.resume()
        m = next(e for e in iter(lambda: q.get(timeout=20), None) if isinstance(e, ev.StepMetrics))
        assert m.step == paused_at + 1  # the very next step
        assert (m.pin_on, m.pin_off) == (pinned, off)
        assert set(pinned) <= set(m.trained_indices) and not set(off) & set(m.trained_indices)
        assert len(m.trained_indices) == 2
    finally:
        worker.stop()
        assert worker.join(timeout=10)


def test_update_between_steps_applies_from_the_next_one(generator, oracle) -> None:
    tr = make_trainer(generator, oracle, iterations=5, layers="coarse")
    got: list[ev.StepMetrics] = []

    def on_event(e) -> None:
        if isinstance(e, ev.StepMetrics):
            got.append(e)
            if e.step == 2:
                tr.update(pin_on=(5,), pin_off=(0,))

    TrainingWorker(tr, on_event).run()
    assert [m.trained_indices for m in got] == [(0, 1, 2)] * 2 + [(1, 2, 5)] * 3


# ----- sessions: metrics.jsonl records pins, a resume restores them ----------------------------------
@pytest.mark.usefixtures("small_demo", "one_thread")
def test_pins_are_recorded_saved_and_restored_on_resume() -> None:
    config = TrainConfig(source="a red image", target="a blue image", clip_models=((DEMO_CLIP_ID, 1.0),),
                         iterations=8, preview_every=0, preview_seeds=(0,), batch=1, auto_layer_batch=2,
                         auto_layer_interval=4, auto_layer_k=3, pin_on=(1,))
    run = runs.start_session(config, DEMO_GENERATOR_ID, device="cpu", checkpoint_every=4)

    class Kill(BaseException):
        pass

    def on_event(e) -> None:
        if isinstance(e, ev.StepMetrics) and e.step == 2:
            run.trainer.update(pin_on=(1, 2), pin_off=(0,))
        if isinstance(e, ev.StepMetrics) and e.step == 5:
            raise Kill  # after step 5's line; the last checkpoint is step 4

    with pytest.raises(Kill):
        runs.train_session(run, on_event=on_event, handle_signals=False)
    run.close()
    lines = sessions.read_metrics(run.path)
    assert [(r.step, r.pins) for r in lines] == [
        (1, ((1,), ())), (2, None), (3, ((1, 2), (0,))), (4, None), (5, None)]
    assert sessions.load(run.session_id).config.pin_on == (1, 2)

    resumed = runs.resume_session(run.session_id, device="cpu")
    assert (resumed.trainer.config.pin_on, resumed.trainer.config.pin_off) == ((1, 2), (0,))
    with resumed:
        res = runs.train_session(resumed, handle_signals=False)
    assert res.status == "finished"
    lines = sessions.read_metrics(run.path)
    assert [r.step for r in lines] == list(range(1, 9))
    assert lines[4].pins == ((1, 2), (0,))  # the first line after a resume says them again
    for r in lines[2:]:
        assert {1, 2} <= set(r.trained) and 0 not in r.trained
