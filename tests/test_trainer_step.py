"""One training step's contract: every accepted seed trains, selection settings never change the training
batches, a broken gradient never reaches the weights (or a checkpoint), and the engine reports the next
selection in the same 1-based numbering as the steps."""

from __future__ import annotations

import math

import pytest
import torch

from engine import sessions
from engine.config import DEMO_GENERATOR_ID, TrainConfig
from engine.events import SelectionDone, StepMetrics
from engine.seeds import stream_seed
from engine.stylegan2 import Generator, modconv_path
from engine.trainer import NonFiniteLoss, Trainer
from engine.training_worker import TrainingWorker

LARGEST_SEED = 2**63 - 1  # the largest --seed the CLI accepts (config: 0 <= seed < 2**63)


def trainer(generator, encoder, **kw) -> Trainer:
    base = dict(source="a red image", target="a blue image", clip_models=((encoder.name, 1.0),), iterations=4,
                batch=2, auto_layer_batch=4, mixing=0.9)
    return Trainer(TrainConfig(**{**base, **kw}), generator, {encoder.name: encoder}, device="cpu")


def test_stream_seeds_are_stable_in_range_and_independent():
    assert stream_seed(LARGEST_SEED, 10**9, "mixing") < 2**63
    assert stream_seed(7, 3, "mixing") == stream_seed(7, 3, "mixing")
    assert len({stream_seed(7, 3, "mixing"), stream_seed(7, 3, "selection"), stream_seed(7, 4, "mixing"),
                stream_seed(8, 3, "mixing")}) == 4


@pytest.mark.parametrize("seed", [4611686018427387904, LARGEST_SEED])
def test_the_largest_seeds_train(generator, oracle, seed):
    tr = trainer(generator, oracle, seed=seed, iterations=2)
    for _ in range(2):
        assert math.isfinite(tr.step().losses["total"])


@pytest.mark.usefixtures("small_demo")
def test_the_largest_seed_trains_through_the_cli(capsys):
    from _sessions import cli_train

    session = cli_train(capsys, "--seed", str(LARGEST_SEED))
    assert sessions.read_state(sessions.resolve(session) / sessions.CHECKPOINT_FILE)["step"] == 3


@pytest.mark.parametrize(
    "a, b, steps",
    [
        (dict(auto_layer_batch=8), dict(auto_layer_batch=4), 1),
        (dict(auto_layer_interval=10), dict(auto_layer_interval=1), 2),
        (dict(layers="auto"), dict(layers="all"), 1),
        (dict(auto_layer_k=3), dict(auto_layer_k=0), 1),
    ],
)
def test_selection_settings_leave_the_training_batches_alone(generator, clip_tiny, a, b, steps):
    # A step's losses come before its update: step 1's depend on the training batch alone, which
    # selection (whatever its batch, interval, layer set or k) must not draw from. With intervals 10 and
    # 1 both select at step 1 (the same scores, the same update), and only interval 1 selects at step 2.
    runs = [trainer(generator, clip_tiny, **kw) for kw in (a, b)]
    losses = [[tr.step().losses for _ in range(steps)] for tr in runs]
    assert losses[0] == losses[1]


def test_a_nan_gradient_with_a_finite_loss_never_reaches_the_weights(generator, oracle):
    tr = trainer(generator, oracle, auto_layer_k=0)
    tr.step()
    before = {k: v.clone() for k, v in tr.trainable_state().items()}
    hook = tr.convs[0].conv.weight.register_hook(lambda g: torch.full_like(g, math.nan))
    with pytest.raises(NonFiniteLoss, match="gradients became nan at step 2.*weights of step 1 are kept"):
        tr.step()
    hook.remove()
    assert tr.step_count == 1
    for name, value in tr.trainable_state().items():
        assert torch.equal(value, before[name]), name
    assert all(p.grad is None for c in tr.convs for p in c.parameters())


def test_the_worker_saves_the_last_good_weights_after_a_nan_gradient(generator, oracle):
    tr = trainer(generator, oracle, auto_layer_k=0)
    weight = tr.convs[2].conv.weight.requires_grad_(True)  # every step trains it (k=0)
    weight.register_hook(lambda g: g * math.inf if tr.step_count == 2 else g)
    events, saved = [], []
    TrainingWorker(tr, events.append, checkpoint=lambda t, why: saved.append(t.state_dict())).run()
    assert [e.kind for e in events if type(e).__name__ == "TrainingFailed"] == ["nan"]
    assert saved and saved[-1]["step"] == 2
    assert all(bool(torch.isfinite(w).all()) for w in saved[-1]["weights"].values())


def test_a_checkpoint_with_non_finite_weights_is_refused(generator, oracle):
    from test_sessions import fresh_state

    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=((oracle.name, 1.0),))
    tr = Trainer(cfg, generator, {oracle.name: oracle}, device="cpu")
    with torch.no_grad():
        tr.convs[1].conv.weight[0, 0, 0, 0, 0] = math.nan
    with sessions.create(fresh_state(cfg), {"id": DEMO_GENERATOR_ID}, name="nan") as writer:
        with pytest.raises(OSError, match="NaN or infinite.*not saved"):
            writer.checkpoint(tr, "interval")
        assert sessions.read_state(writer.path / sessions.CHECKPOINT_FILE)["step"] == 0
        assert "previous checkpoint (step 0) is intact" in writer.last_checkpoint_error


def test_next_selection_and_selection_events_count_steps_from_one(generator, oracle):
    tr = trainer(generator, oracle, iterations=12, auto_layer_interval=5)
    events = []
    TrainingWorker(tr, events.append).run()
    metrics = [e for e in events if isinstance(e, StepMetrics)]
    # Selection runs at the start of steps 1, 6 and 11 (1-based, as StepMetrics.step counts them).
    assert [e.step for e in events if isinstance(e, SelectionDone)] == [1, 6, 11]
    assert [m.next_selection for m in metrics] == [6] * 5 + [11] * 5 + [16] * 2


def test_frozen_and_trained_renders_are_identical_before_training(generator, oracle, monkeypatch):
    # Both renders take the same path, so the edit direction at step 1 is exactly zero, not rounding noise.
    from engine.clip_loss import ClipLoss

    seen = []
    real = ClipLoss.__call__

    def spy(self, frozen, trained, *rest):
        seen.append((frozen, trained.detach()))
        return real(self, frozen, trained, *rest)

    monkeypatch.setattr(ClipLoss, "__call__", spy)
    trainer(generator, oracle).step()
    assert torch.equal(*seen[0])


def test_a_layer_that_stops_training_renders_with_its_trained_weights(generator, oracle):
    """Step 1's selection pass keeps what every frozen layer derives from its weights; Adam then changes
    the trained ones in place. A render with them frozen again must use the new weights, not the kept ones."""
    tr = trainer(generator, oracle, iterations=3, mixing=0.0)
    tr.step()
    tr.step()
    g = tr.generator.requires_grad_(False)
    fresh = Generator.from_state_dict(g.state_dict(), latent_avg=g.latent_avg)
    start = generator.state_dict()
    assert any(not torch.equal(v, start[k]) for k, v in fresh.state_dict().items())  # it did train
    w = g.w_plus(g.mapping(torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(0))))
    noise = g.make_noise(2, torch.Generator().manual_seed(1))
    with torch.no_grad(), modconv_path("split"):
        assert torch.equal(g.synthesis(w, noise), fresh.synthesis(w, noise))
