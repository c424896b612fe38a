"""Precision: the generator under bf16 autocast stays close to fp32; bf16 training on CUDA keeps fp32 state.

CPU autocast stands in for CUDA's in the CPU tests: the same dtype rules reach the same code.
"""

from __future__ import annotations

import math

import pytest
import torch

from engine import device as devices
from engine.clip_loss import ClipLoss
from engine.config import ConfigError, TrainConfig
from engine.demo import tiny_clip, tiny_generator
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


@pytest.mark.parametrize("capability, refused", [((7, 5), True), ((6, 1), True), ((8, 0), False), ((9, 0), False)])
def test_bf16_is_refused_on_gpus_without_native_bfloat16(monkeypatch, capability, refused):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda")
    if refused:
        major, minor = capability
        with pytest.raises(ConfigError, match=rf"compute capability 8.0 or newer.*{major}\.{minor}: use tf32 or fp32"):
            devices.check_precision(cuda, "bf16")
    else:
        devices.check_precision(cuda, "bf16")
    devices.check_precision(cuda, "tf32")  # the other precisions never ask


def test_text_features_are_fp32_whatever_autocast_the_caller_runs_under():
    """Text embeddings are cached per encoder and shared by later runs (an fp32 run after a bf16 one):
    computed inside a bf16 step they must still be the fp32 ones, and so must the global loss's target."""
    enc, reference = tiny_clip(0), tiny_clip(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = enc.encode_texts(["a blue image"])
        target = ClipLoss([(enc, 1.0)]).global_target(enc, "a drawing")
    assert torch.equal(inside, reference.encode_texts(["a blue image"]))
    assert torch.equal(target, reference.encode_texts(["a drawing"])[0])


def test_bf16_renders_agree_exactly_at_step_0_and_only_clip_runs_in_bf16(generator, clip_tiny, monkeypatch):
    """bf16 autocasts CLIP alone: the generator stays fp32, so the frozen and the trained render of step 0
    (no training yet) are the same image, and the early edit direction is not rounding noise. CPU autocast
    stands in for CUDA's (bf16 is refused on the CPU otherwise)."""
    monkeypatch.setattr(devices, "check_precision", lambda device, precision: None)
    cfg = TrainConfig(source="a dog", target="a cat", clip_models=((clip_tiny.name, 1.0),), precision="bf16",
                      iterations=2)
    tr = Trainer(cfg, generator, {clip_tiny.name: clip_tiny}, device="cpu")
    seen = {}
    call, encode = tr.loss.__class__.__call__, clip_tiny.encode_images

    def spy_loss(self, frozen_img, trained_img, *a):
        seen["images"] = (frozen_img.detach().clone(), trained_img.detach().clone())
        return call(self, frozen_img, trained_img, *a)

    def spy_encode(images):
        seen["clip autocast"] = torch.is_autocast_enabled("cpu")
        return encode(images)

    monkeypatch.setattr(type(tr.loss), "__call__", spy_loss)
    monkeypatch.setattr(clip_tiny, "encode_images", spy_encode)
    assert math.isfinite(tr.step().losses["total"])
    frozen, trained = seen["images"]
    assert frozen.dtype == trained.dtype == torch.float32
    assert torch.equal(frozen, trained)
    assert seen["clip autocast"]
