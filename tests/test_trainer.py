"""The training loop end to end on tiny models: it learns the right thing, reproducibly."""

from __future__ import annotations

import pytest
import torch

from engine.clip_loss import PromptError
from engine.config import ConfigError, TrainConfig
from engine.sampling import render_seeds
from engine.trainer import Trainer

SEEDS = range(8)


def blue_minus_red(g) -> float:
    x = render_seeds(g, SEEDS, truncation=0.7)
    return float((x[:, 2] - x[:, 0]).mean())


def run(generator, encoder, steps, **kw):
    cfg = TrainConfig(clip_models=((encoder.name, 1.0),), iterations=steps, **kw)
    tr = Trainer(cfg, generator, {encoder.name: encoder}, device="cpu")
    losses = [tr.step().losses for _ in range(steps)]
    return tr, losses


def test_directional_loss_falls_over_50_steps_with_a_real_tiny_clip(generator, clip_tiny):
    _, losses = run(generator, clip_tiny, 50, source="a photo of a dog", target="a sketch of a dog")
    d = [m["directional"] for m in losses]
    assert d[0] == pytest.approx(1.0)  # both generators agree at step 0
    assert sum(d[-10:]) / 10 < sum(d[1:11]) / 10 - 0.05


@pytest.mark.parametrize(
    "source,target,sign", [("a red image", "a blue image", 1), ("a blue image", "a red image", -1)]
)
def test_colour_oracle_moves_samples_the_way_the_prompts_say(generator, oracle, source, target, sign):
    before = blue_minus_red(generator)
    tr, _ = run(generator, oracle, 50, source=source, target=target)
    after = blue_minus_red(tr.generator)
    assert sign * (after - before) > 0.2, (before, after)
    assert blue_minus_red(tr.frozen) == pytest.approx(before)


def test_global_weight_one_follows_the_global_loss(generator, oracle):
    _, losses = run(generator, oracle, 30, source="a red image", target="a blue image", global_weight=1.0)
    assert losses[-1]["global"] < losses[0]["global"] - 0.05
    assert losses[-1]["total"] == pytest.approx(losses[-1]["global"])


def test_same_seed_same_losses_and_different_seed_differs(generator, clip_tiny):
    kw = dict(source="a photo of a dog", target="a sketch of a dog", mixing=0.5)
    _, a = run(generator, clip_tiny, 12, **kw)
    _, b = run(generator, clip_tiny, 12, **kw)
    _, c = run(generator, clip_tiny, 12, seed=1, **kw)
    assert a == b
    assert a != c


def test_resume_from_state_dict_continues_the_same_curve(generator, clip_tiny):
    kw = dict(
        source="a photo of a dog", target="a sketch of a dog", auto_layer_interval=4, auto_layer_falloff=3
    )
    _, full = run(generator, clip_tiny, 14, **kw)
    tr, first = run(generator, clip_tiny, 6, **kw)
    state = tr.state_dict()
    cfg = TrainConfig.from_dict(state["config"]).replace(iterations=14)
    resumed = Trainer(cfg, generator, {clip_tiny.name: clip_tiny}, device="cpu")
    resumed.load_state_dict(state)
    rest = [resumed.step().losses for _ in range(8)]
    assert first + rest == full


def test_preview_shows_the_same_seeds_before_and_after(generator, oracle):
    tr, _ = run(generator, oracle, 5, source="a red image", target="a blue image", preview_seeds=(0, 1, 2))
    p = tr.preview()
    assert p.frozen.size == p.adapted.size == (96, 32)
    assert p.seeds == (0, 1, 2) and p.step == 5
    assert p.frozen.tobytes() != p.adapted.tobytes()


@pytest.mark.parametrize(
    "field,value",
    [
        ("global_weight", 1.5),
        ("iterations", 0),
        ("batch", 0),
        ("lr", -1.0),
        ("auto_layer_interval", 0),
        ("mixing", 2.0),
        ("sample_truncation", -0.1),
        ("auto_layer_min_k", 0),
    ],
)
def test_bad_settings_name_the_field_and_the_range(field, value):
    with pytest.raises(ConfigError, match=f"^{field}: got .*allowed") as info:
        TrainConfig(source="a", target="b", **{field: value})
    assert info.value.field == field


def test_clip_weights_must_have_one_positive():
    with pytest.raises(ConfigError, match="clip_models"):
        TrainConfig(source="a", target="b", clip_models=(("ViT-B/32", 0.0),))


def test_bad_prompts_refused_before_any_step():
    from engine.inputs import check_inputs

    for source, target in (("a red image", "a red image"), ("", "a red image"), ("a red image", "x " * 80)):
        with pytest.raises(PromptError):
            check_inputs(TrainConfig(source=source, target=target, clip_models=(("o", 1.0),)))


def test_prompts_with_no_clip_difference_are_refused(generator, oracle):
    # The oracle only sees colour words, so these two prompts embed identically.
    cfg = TrainConfig(source="a photo of a dog", target="a photo of a cat", clip_models=(("o", 1.0),))
    with pytest.raises(PromptError, match="same embedding"):
        Trainer(cfg, generator, {"o": oracle}, device="cpu")


def test_config_round_trips_through_a_dict():
    cfg = TrainConfig(source="a", target="b", clip_models=(("ViT-B/32", 1.0), ("ViT-B/16", 0.5)))
    assert TrainConfig.from_dict(cfg.to_dict() | {"from_the_future": 1}) == cfg


def test_live_global_weight_change_applies_at_next_step(generator, oracle):
    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=(("o", 1.0),), iterations=3)
    tr = Trainer(cfg, generator, {"o": oracle}, device="cpu")
    tr.step()
    tr.update(global_weight=1.0)
    m = tr.step()
    assert m.global_weight == 1.0 and m.losses["total"] == pytest.approx(m.losses["global"])
    with pytest.raises(ConfigError, match="batch"):
        tr.update(batch=4)
    # a length the run has already reached is refused (it would end the run at once, past its end)
    with pytest.raises(ConfigError, match="already at step 2"):
        tr.update(iterations=2)
    tr.update(iterations=5)
    assert tr.next_config.iterations == 5


def test_cuda_request_without_cuda_is_a_clear_error(generator, oracle):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=(("o", 1.0),))
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        Trainer(cfg, generator, {"o": oracle}, device="cuda")


def test_resume_with_a_random_state_from_another_device_type_still_trains(generator, oracle):
    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=(("o", 1.0),), iterations=6)
    tr = Trainer(cfg, generator, {"o": oracle}, device="cpu")
    tr.step()
    state = tr.state_dict() | {"rng": torch.zeros(16, dtype=torch.uint8)}  # a CUDA Philox state's size
    resumed = Trainer(cfg, generator, {"o": oracle}, device="cpu")
    resumed.load_state_dict(state)
    assert resumed.step_count == 1
    assert resumed.step().step == 2
