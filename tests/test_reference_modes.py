"""Where a step follows the reference or says otherwise: the learned constant input trains when selection is
off and every layer trains (`--k 0`, `--layers all`), and the `noise` setting decides whether the frozen and
the trained render of a step share their noise maps."""

from __future__ import annotations

import pytest
import torch

from engine.config import ConfigError, TrainConfig
from engine.trainer import Trainer


def trainer(generator, encoder, **kw) -> Trainer:
    base = dict(source="a red image", target="a blue image", clip_models=((encoder.name, 1.0),), iterations=4,
                batch=2, auto_layer_batch=4)
    return Trainer(TrainConfig(**{**base, **kw}), generator, {encoder.name: encoder}, device="cpu")


def constant_moved(tr: Trainer) -> bool:
    before = tr.generator.input.input.detach().clone()
    tr.step()
    return not torch.equal(tr.generator.input.input, before)


@pytest.mark.parametrize("kw", [dict(auto_layer_k=0), dict(layers="all")], ids=["k0", "layers-all"])
def test_the_constant_input_trains_when_every_layer_trains(generator, oracle, kw):
    tr = trainer(generator, oracle, **kw)
    assert constant_moved(tr)
    assert "input.input" in tr.state_dict()["weights"]  # saved with the adapted weights


@pytest.mark.parametrize("kw", [dict(), dict(auto_layer_k=99), dict(auto_layer_k=0, pin_off=(3,))],
                         ids=["adaptive", "adaptive-k-max", "k0-pinned-off"])
def test_the_constant_input_stays_with_selection_or_a_layer_left_out(generator, oracle, kw):
    assert not constant_moved(trainer(generator, oracle, **kw))


def test_a_session_saved_before_the_constant_could_train_resumes(generator, oracle):
    first = trainer(generator, oracle, auto_layer_k=0)
    first.step()
    state = first.state_dict()
    old = len(state["param_names"]) - 1
    assert state["param_names"][old] == "input.input"
    state["param_names"] = state["param_names"][:old]  # as written before this change
    state["optimizer"] = {i: slots for i, slots in state["optimizer"].items() if i < old}
    state["weights"].pop("input.input")
    again = trainer(generator, oracle, auto_layer_k=0)
    again.load_state_dict(state)
    assert again.step_count == 1 and constant_moved(again)


class RecordingLoss:
    """The trainer's loss, unchanged, keeping the images each step compares."""

    def __init__(self, loss) -> None:
        self.loss, self.images = loss, []

    def __call__(self, frozen_img, trained_img, *args):
        self.images.append((frozen_img.detach().clone(), trained_img.detach().clone()))
        return self.loss(frozen_img, trained_img, *args)

    def __getattr__(self, name):
        return getattr(self.loss, name)


@pytest.mark.parametrize("mode, same", [("shared", True), ("independent", False)])
def test_the_noise_setting_decides_whether_both_renders_share_noise(generator, oracle, mode, same):
    with torch.no_grad():  # noise strengths start at 0 in a fresh generator; a trained one has them above 0
        for conv in generator.styled_convs():
            conv.noise.weight.fill_(0.1)
    tr = trainer(generator, oracle, noise=mode)
    tr.loss = RecordingLoss(tr.loss)
    tr.step()
    frozen_img, trained_img = tr.loss.images[0]  # step 1: no weight has changed yet
    assert torch.equal(frozen_img, trained_img) is same


def test_the_noise_setting_reads_text_and_refuses_other_values():
    assert TrainConfig.parse({"noise": "Independent"}).noise == "independent"
    assert TrainConfig().noise == "shared"
    with pytest.raises(ConfigError, match="shared or independent"):
        TrainConfig.parse({"noise": "random"})
