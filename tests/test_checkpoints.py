"""Rosinality checkpoints in and out, and clear errors for everything that is not a generator."""

from __future__ import annotations

import argparse
import zipfile

import pytest
import torch

from engine.demo import tiny_generator
from engine.generator_files import CheckpointError, load_generator, save_rosinality


def _same_images(a, b, truncation: float = 0.7):
    # Files without latent_avg get a truncation centre computed on load: compare those untruncated.
    z = torch.randn(2, a.style_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(
            a.render(z, truncation=truncation), b.render(z, truncation=truncation), atol=0, rtol=0
        )


def test_save_and_load_rosinality_round_trip(tmp_path):
    g = tiny_generator(32, seed=2)
    path = tmp_path / "models" / "out.pt"
    save_rosinality(g, path)
    assert [p.name for p in path.parent.iterdir()] == ["out.pt"]  # no temp file left behind
    raw = torch.load(path, weights_only=True)  # what rosinality / NADA tools do
    assert set(raw) == {"g_ema", "latent_avg"} and "conv1.conv.weight" in raw["g_ema"]
    h, info = load_generator(path)
    assert info["format"] == "rosinality"
    for key in ("format", "size", "n_mlp", "style_dim", "channel_multiplier", "sha256"):
        assert key in info
    assert (info["size"], info["n_mlp"], info["style_dim"]) == (32, 2, 32)
    assert len(info["sha256"]) == 64
    assert not h.training and next(h.parameters()).device.type == "cpu"
    _same_images(g, h)


def test_rosinality_training_checkpoint_with_args(tmp_path):
    g = tiny_generator(32, seed=2)
    ckpt = {
        "g": g.state_dict(),
        "d": {"w": torch.zeros(1)},
        "g_ema": g.state_dict(),
        "g_optim": torch.optim.Adam(g.parameters()).state_dict(),
        "d_optim": {},
        "args": argparse.Namespace(size=32, channel_multiplier=2),
        "ada_aug_p": 0.0,
    }
    torch.save(ckpt, tmp_path / "050000.pt")
    h, info = load_generator(tmp_path / "050000.pt")
    assert info["format"] == "rosinality" and not info["has_latent_avg"]
    _same_images(g, h, truncation=1.0)


def test_bare_state_dict_and_missing_buffers(tmp_path):
    g = tiny_generator(32, seed=2)
    sd = {k: v for k, v in g.state_dict().items() if "kernel" not in k}  # some exports drop buffers
    torch.save(sd, tmp_path / "bare.pt")
    h, info = load_generator(tmp_path / "bare.pt")
    assert info["format"] == "rosinality-state-dict"
    z = torch.randn(2, 32)
    torch.testing.assert_close(h.render(z, noise="const"), g.render(z, noise="const").detach())


def test_legacy_torch_save_format(tmp_path):
    g = tiny_generator(32, seed=2)
    torch.save({"g_ema": g.state_dict()}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    h, _ = load_generator(tmp_path / "old.pt")
    _same_images(g, h, truncation=1.0)


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text("# my notes\nnot weights\n"), "text file"),
        (lambda p: p.write_bytes(bytes(range(1, 255)) * 4), "unknown binary format"),
        (lambda p: torch.save({"model": {"w": torch.zeros(2)}}, p), "no 'g_ema'"),
        (lambda p: torch.save([torch.zeros(2)], p), "not a dict"),
        (lambda p: torch.save({"g_ema": {"foo": torch.zeros(2)}}, p), "not a StyleGAN2 generator"),
    ],
    ids=["missing", "directory", "empty", "text", "binary", "no-g_ema", "list", "foreign-state-dict"],
)
def test_bad_files_get_clear_errors(tmp_path, make, expect):
    path = tmp_path / "model.pt"
    make(path)
    with pytest.raises(CheckpointError, match=expect) as err:
        load_generator(path)
    msg = str(err.value)
    assert str(path) in msg and "expected" in msg


def test_truncated_checkpoint(tmp_path):
    g = tiny_generator(32)
    save_rosinality(g, tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or truncated") as err:
        load_generator(tmp_path / "cut.pt")
    assert "cut.pt" in str(err.value)
    assert zipfile.is_zipfile(tmp_path / "full.pt")


def test_wrong_shapes_and_nan_weights(tmp_path):
    g = tiny_generator(32)
    sd = g.state_dict()
    bad = dict(sd)
    bad["conv1.conv.weight"] = torch.zeros(1, 32, 16, 3, 3)
    torch.save({"g_ema": bad}, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(tmp_path / "shape.pt")
    nan = dict(sd)
    nan["style.1.weight"] = torch.full_like(sd["style.1.weight"], float("nan"))
    torch.save({"g_ema": nan}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="NaN"):
        load_generator(tmp_path / "nan.pt")
