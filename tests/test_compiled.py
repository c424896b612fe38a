"""The `compile` setting: CUDA only (refused elsewhere with what to use), eager by default, and the parts it
captures trace as one graph each and give the eager results."""

from __future__ import annotations

import math

import pytest
import torch

from engine.compiled import StepParts
from engine.config import ConfigError, TrainConfig
from engine.demo import tiny_clip, tiny_generator
from engine.stylegan2 import modconv_path
from engine.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def config(enc, **kw) -> TrainConfig:
    return TrainConfig(source="a red image", target="a blue image", clip_models=((enc.name, 1.0),),
                       iterations=4, **kw)


@pytest.mark.parametrize("mode", ["compile", "graphs"])
def test_compile_is_refused_off_cuda_with_what_to_use(generator, oracle, mode):
    with pytest.raises(ConfigError, match=f"compile = {mode} runs on CUDA only; on cpu use compile = off"):
        Trainer(config(oracle, compile=mode), generator, {oracle.name: oracle}, device="cpu")


def test_an_unknown_compile_value_is_refused():
    with pytest.raises(ConfigError, match="off, compile or graphs"):
        TrainConfig(source="a", target="b", compile="fast")
    assert TrainConfig(source="a", target="b").compile == "off"


def test_the_default_step_never_compiles(generator, oracle, monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("torch.compile called with compile = off")

    monkeypatch.setattr(torch, "compile", refuse)
    tr = Trainer(config(oracle), generator, {oracle.name: oracle}, device="cpu")
    assert math.isfinite(tr.step().losses["total"])


def test_captured_parts_trace_as_one_graph_each_and_match_eager():
    """torch.compile's tracer (no kernels compiled: the "eager" backend, so it runs on the CPU) takes the
    frozen render and a CLIP image encoder whole (fullgraph: no graph break) and gives the eager results."""
    g = tiny_generator(32, seed=1).requires_grad_(False)
    enc = tiny_clip(0)
    w = g.w_plus(g.mapping(torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(0))))
    noise = g.make_noise(2, torch.Generator().manual_seed(1))
    parts = StepParts("compile", g, backend="eager", fullgraph=True)
    with torch.no_grad(), modconv_path("split"):
        eager = g.synthesis(w, noise)
    torch.testing.assert_close(parts.frozen_render(w, noise), eager, rtol=1e-5, atol=1e-6)

    images = eager.clone().requires_grad_(True)
    expected = enc.encode_images(images)
    (grad_eager,) = torch.autograd.grad(expected.sum(), images)
    images = eager.clone().requires_grad_(True)
    got = parts.encoder(enc.name, enc.encode_images)(images)
    (grad,) = torch.autograd.grad(got.sum(), images)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, grad_eager, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["compile", "graphs"])
def test_a_compiled_step_gives_the_eager_losses_on_cuda(mode):
    g = tiny_generator(64, seed=0)
    enc = tiny_clip(0)
    losses = {}
    for m in ("off", mode):
        tr = Trainer(config(enc, compile=m, precision="fp32", iterations=5), g, {enc.name: enc}, device="cuda")
        losses[m] = [tr.step().losses for _ in range(4)]
    for eager, compiled in zip(losses["off"], losses[mode], strict=True):
        for k, v in eager.items():
            assert compiled[k] == pytest.approx(v, rel=1e-3, abs=1e-5), k
