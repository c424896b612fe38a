"""NVIDIA export and NVIDIA's seeds: `sessions export --format nvidia` writes a state dict that a generator
of NVIDIA's stylegan2-ada-pytorch layout (tests/_nvidia_layout.py, re-derived from the published formulas)
loads strictly and renders as we do; the script beside it makes a .pkl of that generator; our own NVIDIA
pickle reader reads the same tensors back; `generate --seed-convention nvidia` draws NVIDIA's z."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _full_disk import half_then_full, read_only_under
from _models_fakes import busy_generator, write_ada_pickle
from _nvidia_layout import Generator as NvidiaLayoutGenerator
from _sessions import demo_session
from PIL import Image

from engine import atomic, export, export_nvidia
from engine.errors import ExportError
from engine.generator_files import load_generator
from engine.sampling import seed_latents, to_pil
from engine.stylegan2 import Generator, GeneratorConfig
from nada_tui.__main__ import main

TESTS = Path(__file__).parent


@pytest.fixture
def session_id(small_demo, one_thread) -> str:
    return demo_session(iterations=3)


def nvidia_render(data: dict, z: torch.Tensor, psi: float) -> torch.Tensor:
    g = NvidiaLayoutGenerator(**data["init_kwargs"])
    g.load_state_dict(data["state_dict"], strict=True)
    with torch.no_grad():
        return g.eval()(z, None, truncation_psi=psi, noise_mode="const")


def assert_same_pixels(a: np.ndarray, b: np.ndarray) -> None:
    """Two renders of the same weights by different float code: 8-bit pixels equal but for the odd value
    that sits on a rounding boundary (the float outputs agree to about 1e-5)."""
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.002, (diff.max(), (diff > 0).mean())


def test_the_state_dict_has_nvidias_names_and_shapes():
    g = busy_generator(1, size=8)
    data = export_nvidia.nvidia_dict(g)
    layer = ["affine.weight", "affine.bias", "weight", "bias", "noise_strength", "noise_const", "resample_filter"]
    torgb = ["affine.weight", "affine.bias", "weight", "bias"]
    expected = {"mapping.fc0.weight", "mapping.fc0.bias", "mapping.fc1.weight", "mapping.fc1.bias", "mapping.w_avg",
                "synthesis.b4.const", "synthesis.b4.resample_filter", "synthesis.b8.resample_filter",
                *(f"synthesis.b4.conv1.{k}" for k in layer), *(f"synthesis.b4.torgb.{k}" for k in torgb),
                *(f"synthesis.b8.{c}.{k}" for c in ("conv0", "conv1") for k in layer),
                *(f"synthesis.b8.torgb.{k}" for k in torgb)}
    sd = data["state_dict"]
    assert set(sd) == expected
    assert sd["synthesis.b4.const"].shape == (32, 4, 4) and sd["synthesis.b8.conv0.noise_const"].shape == (8, 8)
    assert sd["synthesis.b8.torgb.weight"].shape == (3, 32, 1, 1) and sd["synthesis.b4.conv1.noise_strength"].ndim == 0
    assert torch.equal(sd["mapping.w_avg"], g.latent_avg)
    assert data["init_kwargs"]["mapping_kwargs"] == {"num_layers": 2, "lr_multiplier": 0.01}


def test_official_channel_tables_map_to_nvidias_channel_base():
    assert export_nvidia.channel_params(GeneratorConfig(size=1024)) == (32768, 512)  # config-f
    assert export_nvidia.channel_params(GeneratorConfig(size=256, channel_multiplier=1)) == (16384, 512)
    odd = GeneratorConfig(size=16, channel_multiplier=0, channels={4: 8, 8: 32, 16: 8})
    with pytest.raises(ExportError, match="channel table"):
        export_nvidia.channel_params(odd)


@pytest.mark.parametrize("conv_clamp", [None, 0.6])
def test_nvidia_layout_renders_what_we_render(conv_clamp):
    base = busy_generator(5, size=32)
    g = Generator(GeneratorConfig(**{**base.config.__dict__, "conv_clamp": conv_clamp}))
    g.load_state_dict(base.state_dict())
    g.set_latent_avg(base.latent_avg)
    g.eval()
    z = seed_latents([0, 1, 42], g.z_dim, "nvidia")
    theirs = nvidia_render(export_nvidia.nvidia_dict(g), z, 0.7)
    with torch.no_grad():
        ours = g.render(z, truncation=0.7, noise="const")
    assert torch.allclose(theirs, ours, atol=1e-4)
    if conv_clamp is not None:  # the clamp really bites in this test, so it is checked too
        with torch.no_grad():
            assert not torch.allclose(base.render(z, truncation=0.7, noise="const"), ours, atol=1e-2)
    for a, b in zip(to_pil(theirs), to_pil(ours), strict=True):
        assert_same_pixels(np.asarray(a), np.asarray(b))


def test_cli_export_and_generate_with_nvidia_seeds_match_the_nvidia_layout(session_id, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sessions", "export", session_id, "--format", "nvidia", "--only", "pt", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    pt = out / f"{session_id}.nvidia.pt"
    assert f"wrote {pt}" in printed and "nvidia_export_script.py" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted([pt.name, "nvidia_export_script.py"])
    data = torch.load(pt, map_location="cpu", weights_only=True)
    assert set(data) == {"init_kwargs", "state_dict"}

    imgs = tmp_path / "imgs"
    assert main(["generate", session_id, "-n", "2", "--seed", "41", "--seed-convention", "nvidia",
                 "--truncation", "1", "--out", str(imgs)]) == 0
    assert sorted(p.name for p in imgs.iterdir()) == ["seed_000041.png", "seed_000042.png"]
    z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(1, 32)[0] for s in (41, 42)]))
    expected = to_pil(nvidia_render(data, z, 1.0))
    for name, want in zip(("seed_000041.png", "seed_000042.png"), expected, strict=True):
        with Image.open(imgs / name) as im:
            assert_same_pixels(np.asarray(im.convert("RGB")), np.asarray(want))
    # our own convention draws other latents: the flag is what makes seed 42 NVIDIA's seed 42
    assert main(["generate", session_id, "-n", "1", "--seed", "42", "--truncation", "1", "--out",
                 str(tmp_path / "ours")]) == 0
    with Image.open(tmp_path / "ours" / "seed_000042.png") as im, Image.open(imgs / "seed_000042.png") as nv:
        assert np.abs(np.asarray(im, dtype=int) - np.asarray(nv, dtype=int)).mean() > 1
    assert main(["generate", session_id, "--seed", str(2**32), "--seed-convention", "nvidia",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--seed must be from 0 to" in capsys.readouterr().err


def test_our_nvidia_pickle_reader_reads_the_export_back(tmp_path):
    g = busy_generator(9, size=32)
    data = export_nvidia.nvidia_dict(g)
    pkl = write_ada_pickle(tmp_path / "g.pkl", data["state_dict"])
    back, info = load_generator(pkl)
    assert info["format"] == "nvidia-ada-pkl"
    ours, theirs = g.state_dict(), back.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert torch.equal(back.latent_avg, g.latent_avg)


def test_the_script_makes_a_pickle_of_the_nvidia_generator(tmp_path, monkeypatch):
    g = busy_generator(4, size=16)
    pt, script = export_nvidia.save(g, tmp_path / "export" / "g.nvidia.pt")
    # a stand-in for the user's checkout: `training.networks` is the re-derived layout
    checkout = tmp_path / "checkout"
    (checkout / "training").mkdir(parents=True)
    (checkout / "training" / "__init__.py").write_text("")
    (checkout / "training" / "networks.py").write_text("from _nvidia_layout import Generator  # noqa: F401\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script), str(pt)], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    pkl = tmp_path / "export" / "g.pkl"
    assert f"wrote {pkl}" in done.stdout
    monkeypatch.syspath_prepend(str(checkout))
    with open(pkl, "rb") as f:
        snapshot = pickle.load(f)
    assert {"G", "G_ema", "D"} <= set(snapshot)
    z = seed_latents([3, 7], g.z_dim, "nvidia")
    with torch.no_grad():
        assert torch.allclose(snapshot["G_ema"](z, None, truncation_psi=0.5, noise_mode="const"),
                              g.render(z, truncation=0.5, noise="const"), atol=1e-4)
    # outside a checkout it says where to run it
    elsewhere = subprocess.run([sys.executable, str(script), str(pt)], cwd=tmp_path, capture_output=True,
                               text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert elsewhere.returncode == 2 and "checkout of NVIDIA's stylegan2-ada-pytorch" in elsewhere.stderr


def test_export_to_a_read_only_or_full_folder_leaves_nothing(session_id, tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    with monkeypatch.context() as m:
        m.setattr(atomic, "write_bytes", read_only_under(atomic.write_bytes, ro))
        for flags, name in ((["--format", "nvidia", "--only", "pt"], f"{session_id}.nvidia.pt"),
                            (["--only", "pt"], f"{session_id}.pt"), (["--only", "grid"], f"{session_id}-grid.png"),
                            (["--only", "csv"], f"{session_id}-metrics.csv")):
            assert main(["sessions", "export", session_id, *flags, "--out", str(ro)]) == 1
            err = capsys.readouterr().err
            assert f"could not write {ro / name}: Read-only file system" in err
            assert "choose another folder" in err.lower() and list(ro.iterdir()) == []
    full = tmp_path / "full"
    with monkeypatch.context() as m:
        m.setattr(atomic, "_write_all", half_then_full(atomic._write_all))
        with pytest.raises(OSError, match="No space left on device; no partial file was left"):
            export.export_nvidia(session_id, full / "g.nvidia.pt")
    assert list(full.iterdir()) == []  # no half file, no temp file
