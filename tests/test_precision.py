"""Precision: the generator under bf16 autocast stays close to fp32; bf16 training on CUDA keeps fp32 state.

CPU autocast stands in for CUDA's in the CPU tests: the same dtype rules reach the same code.
"""

from __future__ import annotations

import math

import pytest
import torch

from engine.config import ConfigError, TrainConfig
from engine.demo import tiny_generator
from engine.stylegan2 import modconv_path
from engine.trainer import Trainer


@pytest.mark.parametrize("path", ["fused", "split"])
def test_generator_under_bf16_autocast_is_close_to_fp32(path):
    g = tiny_generator(32, seed=2).requires_grad_(False)
    w = g.w_plus(g.mapping(torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(1)))).detach()
    with modconv_path(path):
        ref = g.synthesis(w)
        codes = w.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            img = g.synthesis(codes)
        img.float().square().mean().backward()
    assert torch.isfinite(codes.grad).all() and codes.grad.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: about 0.5 % relative error over the image (measured), not more
    assert img.dtype == torch.float32  # ToRGB's fp32 bias promotes the output back
    assert float((img.detach() - ref).norm() / ref.norm()) < 0.02


def test_bf16_is_refused_on_cpu_with_a_clear_message(generator, oracle):
    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=(("o", 1.0),), precision="bf16")
    with pytest.raises(ConfigError, match="bf16 runs on CUDA only"):
        Trainer(cfg, generator, {"o": oracle}, device="cpu")


@pytest.mark.gpu
def test_bf16_training_on_cuda_keeps_fp32_losses_and_weights(generator, oracle):
    cfg = TrainConfig(
        source="a red image", target="a blue image", clip_models=(("o", 1.0),), iterations=4, precision="bf16"
    )
    tr = Trainer(cfg, generator, {"o": oracle}, device="cuda")
    metrics = [tr.step() for _ in range(3)]
    assert all(math.isfinite(v) for m in metrics for v in m.losses.values())
    assert all(p.dtype == torch.float32 for p in tr.generator.parameters())
    state = tr.state_dict()
    resumed = Trainer(cfg, generator, {"o": oracle}, device="cuda")
    resumed.load_state_dict(state)
    assert math.isfinite(resumed.step().losses["total"])


@pytest.mark.gpu
@pytest.mark.parametrize("size", [32, 64])
def test_split_equals_fused_on_cuda(size):
    torch.backends.cudnn.allow_tf32 = False  # compare the formulations, not TF32 rounding
    torch.backends.cuda.matmul.allow_tf32 = False
    g = tiny_generator(size, seed=3).cuda().requires_grad_(False)
    w = g.w_plus(g.mapping(torch.randn(3, g.style_dim, device="cuda"))).detach()
    noise = g.make_noise(3)
    out = {}
    for path in ("fused", "split"):
        codes = w.clone().requires_grad_(True)
        with modconv_path(path):
            img = g.synthesis(codes, noise)
        (img * torch.linspace(-1, 1, img.numel(), device="cuda").view_as(img)).sum().backward()
        out[path] = (img.detach(), codes.grad)
    for a, b in zip(out["split"], out["fused"], strict=True):
        assert float((a - b).norm() / b.norm()) <= 1e-4
