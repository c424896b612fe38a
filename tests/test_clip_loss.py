"""CLIP wrapper and losses: preprocessing, prompt checks, text directions, the loss mix."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from engine.clip_loss import (
    CLIP_MEAN,
    CLIP_STD,
    ClipEncoder,
    ClipLoss,
    PromptError,
    count_tokens,
    load_clip,
    validate_prompts,
)
from engine.demo import tiny_clip
from engine.templates import IMAGENET_TEMPLATES


def test_preprocess_resizes_short_side_crops_centre_and_normalises(clip_tiny):
    img = -torch.ones(1, 3, 64, 96)
    img[..., :, 40:56] = 1.0  # a white band in the middle
    out = clip_tiny.preprocess(img)
    assert out.shape == (1, 3, 32, 32)
    # Black (-1) maps to (0 - mean) / std at the borders; white to (1 - mean) / std in the centre.
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    assert torch.allclose(out[0, :, 0, 0], (0 - mean) / std, atol=1e-4)
    assert torch.allclose(out[0, :, 16, 16], (1 - mean) / std, atol=1e-2)


def test_preprocess_is_differentiable(clip_tiny):
    img = torch.rand(2, 3, 64, 64, requires_grad=True)
    clip_tiny.encode_images(img * 2 - 1).sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0


def test_clip_weights_frozen(clip_tiny):
    assert not any(p.requires_grad for p in clip_tiny.model.parameters())
    assert not clip_tiny.model.training


@pytest.mark.parametrize(
    "source,target,match",
    [
        ("", "a sketch", "source prompt is empty"),
        ("a photo", "   ", "target prompt is empty"),
        ("a photo of a dog", "A  photo of a DOG", "the same"),
        ("a photo", "word " * 80, "limit is 77"),
    ],
)
def test_bad_prompts_refused_with_a_clear_message(source, target, match):
    with pytest.raises(PromptError, match=match):
        validate_prompts(source, target)


def test_token_count_includes_start_and_end():
    assert count_tokens("a photo of a dog") == 7
    # 75 words fit exactly; with templates the longest filled template must fit too.
    validate_prompts("dog", "cat " * 75)
    with pytest.raises(PromptError, match="templates"):
        validate_prompts("dog", "cat " * 75, templates=True)


def test_text_direction_with_and_without_templates(clip_tiny):
    d = clip_tiny.text_direction("dog", "cat")
    e = clip_tiny.encode_texts(["cat", "dog"])
    assert torch.allclose(d, F.normalize(e[0] - e[1], dim=0), atol=1e-6)
    dt = clip_tiny.text_direction("dog", "cat", templates=True)
    tgt = clip_tiny.encode_texts([t.format("cat") for t in IMAGENET_TEMPLATES])
    src = clip_tiny.encode_texts([t.format("dog") for t in IMAGENET_TEMPLATES])
    assert torch.allclose(dt, F.normalize((tgt - src).mean(0), dim=0), atol=1e-6)
    assert len(IMAGENET_TEMPLATES) == 79


def test_loss_mix_and_per_model_terms():
    a, b = tiny_clip(seed=0, name="A"), tiny_clip(seed=1, name="B")
    frozen = torch.rand(2, 3, 32, 32) * 2 - 1
    trained = frozen + 0.3 * torch.randn_like(frozen)
    g = 0.25
    terms = ClipLoss([(a, 1.0), (b, 0.5)], global_weight=g)(frozen, trained, "a dog", "a cat")
    for name in ("A", "B"):
        assert 0 <= terms[f"directional/{name}"] <= 2 and 0 <= terms[f"global/{name}"] <= 2
    expect = sum(
        w * ((1 - g) * terms[f"directional/{n}"] + g * terms[f"global/{n}"]) for n, w in (("A", 1), ("B", 0.5))
    )
    assert torch.allclose(terms["total"], expect)
    assert torch.allclose(terms["directional"], terms["directional/A"] + 0.5 * terms["directional/B"])


def test_directional_is_one_minus_cosine_of_image_and_text_directions(clip_tiny):
    frozen = torch.rand(3, 3, 32, 32) * 2 - 1
    trained = frozen.flip(-1)
    terms = ClipLoss([(clip_tiny, 1.0)])(frozen, trained, "a dog", "a cat")
    diff = clip_tiny.encode_images(trained) - clip_tiny.encode_images(frozen)
    expect = (1 - F.cosine_similarity(diff, clip_tiny.text_direction("a dog", "a cat")[None], dim=-1)).mean()
    assert torch.allclose(terms["directional"], expect, atol=1e-5)
    glob = (1 - clip_tiny.encode_images(trained) @ clip_tiny.encode_texts(["a cat"])[0]).mean()
    assert torch.allclose(terms["global"], glob, atol=1e-5)


def test_identical_images_give_finite_loss_and_bounded_gradient(clip_tiny):
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    trained = img.clone().requires_grad_(True)
    terms = ClipLoss([(clip_tiny, 1.0)])(img, trained, "a dog", "a cat")
    assert terms["directional"].item() == pytest.approx(1.0)
    terms["total"].backward()
    assert torch.isfinite(trained.grad).all() and trained.grad.abs().max() < 1e3


class CountingModel(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0
        self.visual = inner.visual

    def encode_image(self, x):
        self.calls += 1
        return self.inner.encode_image(x)

    def encode_text(self, t):
        self.calls += 1
        return self.inner.encode_text(t)


def test_models_with_weight_zero_are_never_evaluated(clip_tiny):
    idle = CountingModel(tiny_clip(seed=2).model)
    loss = ClipLoss([(clip_tiny, 1.0), (ClipEncoder(idle, "idle"), 0.0)])
    img = torch.rand(1, 3, 32, 32)
    terms = loss(img, img + 0.1, "a dog", "a cat")
    loss.global_losses(img, "a cat")
    assert idle.calls == 0
    assert "directional/idle" not in terms


def test_load_clip_from_state_dict_is_exact(tmp_path, clip_tiny):
    path = tmp_path / "tiny.pt"
    torch.save(clip_tiny.model.state_dict(), path)
    loaded = load_clip(path, name="tiny")
    for k, v in clip_tiny.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    assert loaded.input_resolution == 32


def test_load_clip_rejects_other_files(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a CLIP model file"):
        load_clip(bad)
    with pytest.raises(FileNotFoundError, match="models download"):
        load_clip(tmp_path / "missing.pt")


def test_load_clip_from_torchscript_archive_like_the_official_files(tmp_path, clip_tiny):
    """Official CLIP downloads are TorchScript archives; their weights are read back exactly."""
    model = clip_tiny.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent branches
        traced = torch.jit.trace(
            model, (torch.randn(1, 3, 32, 32), torch.randint(0, 49407, (1, 77))), check_trace=False
        )
    path = tmp_path / "ViT-tiny.pt"
    traced.save(str(path))
    loaded = load_clip(path, name="tiny")
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(loaded.encode_images(img), clip_tiny.encode_images(img), atol=1e-6)
