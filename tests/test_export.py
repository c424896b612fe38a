"""Exports: rosinality .pt that loads strictly and renders the same images, N images, strength blending."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from engine import export, runs, sessions
from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, TrainConfig
from engine.demo import tiny_generator
from engine.sampling import render_seeds, to_pil
from engine.stylegan2 import Generator, GeneratorConfig
from nada_tui.__main__ import main

pytestmark = pytest.mark.usefixtures("small_demo", "one_thread")


@pytest.fixture
def session_id() -> str:
    cfg = TrainConfig(
        source="a red image",
        target="a blue image",
        clip_models=((DEMO_CLIP_ID, 1.0),),
        iterations=5,
        batch=1,
        auto_layer_k=0,
        preview_every=0,
        preview_seeds=(0, 1),
        lr=0.02,
    )
    run = runs.start_session(cfg, DEMO_GENERATOR_ID, device="cpu")
    with run:
        runs.train_session(run, handle_signals=False)
    return run.session_id


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def test_exported_pt_loads_strictly_and_renders_the_same_images(session_id, tmp_path):
    out = export.export_rosinality(session_id, tmp_path / "g.pt")
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert set(ckpt) == {"g_ema", "latent_avg"}
    fresh = Generator(GeneratorConfig.from_state_dict(ckpt["g_ema"]))
    fresh.load_state_dict(ckpt["g_ema"], strict=True)
    fresh.set_latent_avg(ckpt["latent_avg"])
    fresh.eval()
    _, g = export.session_generator(session_id)
    seeds = [0, 1, 2, 3, 4]
    assert torch.equal(render_seeds(fresh, seeds, 0.7), render_seeds(g, seeds, 0.7))
    # ... and it is really the adapted generator, not the base one.
    base = tiny_generator(size=32, seed=0)
    assert not torch.equal(render_seeds(base, seeds, 0.7), render_seeds(fresh, seeds, 0.7))


def test_generate_64_distinct_images(session_id, tmp_path, capsys):
    out = tmp_path / "imgs"
    assert main(["generate", session_id[:12], "-n", "64", "--out", str(out), "--device", "cpu"]) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == 64 and files[0].name == "seed_000000.png" and files[-1].name == "seed_000063.png"
    assert len({hashlib.sha256(pixels(f).tobytes()).hexdigest() for f in files}) == 64
    assert "wrote 64 images" in capsys.readouterr().out
    # Nothing is overwritten without --overwrite.
    assert main(["generate", session_id, "-n", "2", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_strength_zero_is_the_base_generator_exactly(session_id, tmp_path):
    paths = export.generate(session_id, 4, tmp_path / "s0", seed=10, truncation=0.5, strength=0.0)
    expected = to_pil(render_seeds(tiny_generator(size=32, seed=0), range(10, 14), 0.5))
    for p, img in zip(paths, expected, strict=True):
        assert np.array_equal(pixels(p), np.asarray(img))
    full = export.generate(session_id, 4, tmp_path / "s1", seed=10, truncation=0.5, strength=1.0)
    half = export.generate(session_id, 4, tmp_path / "s5", seed=10, truncation=0.5, strength=0.5)
    assert not np.array_equal(pixels(full[0]), pixels(paths[0]))
    assert not np.array_equal(pixels(half[0]), pixels(full[0]))


def test_blend_is_a_lerp_of_the_weights():
    a, b = tiny_generator(size=32, seed=0), tiny_generator(size=32, seed=1)
    mid = export.blend(a, b, 0.25)
    for (name, p), q, r in zip(mid.named_parameters(), a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q + 0.25 * (r - q), atol=1e-6), name
    assert all(torch.equal(p, q) for p, q in zip(export.blend(a, b, 1.0).parameters(), b.parameters(), strict=True))
    with pytest.raises(export.ExportError, match="strength"):
        export.blend(a, b, 1.5)


def test_export_all_and_metrics_csv(session_id, tmp_path, capsys):
    tmp_path = tmp_path / "out"
    assert main(["sessions", "export", session_id, "--out", str(tmp_path)]) == 0
    files = {p.name for p in tmp_path.iterdir()}
    assert files == {f"{session_id}.pt", f"{session_id}-grid.png", f"{session_id}-metrics.csv"}
    rows = (tmp_path / f"{session_id}-metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,total,") and len(rows) == 6 and rows[-1].startswith("5,")
    with Image.open(tmp_path / f"{session_id}-grid.png") as im:
        assert im.size == (64, 64)  # 2 seeds x 32 px, frozen row over adapted row
    assert main(["sessions", "export", session_id, "--strength", "2"]) == 2


def test_generate_bad_arguments_exit_2(session_id, tmp_path, capsys):
    for extra in (["-n", "0"], ["--strength", "-0.1"], ["--truncation", "3"]):
        assert main(["generate", session_id, "--out", str(tmp_path / "x"), *extra]) == 2
    assert main(["generate", "no-such-session", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "strength" in err and "truncation" in err and "No session" in err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    assert sessions.load(session_id).ok


def test_export_all_loads_the_generators_once(session_id, tmp_path, monkeypatch):
    calls = []
    real = runs.session_generators

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "session_generators", counting)
    files = export.export_all(session_id, tmp_path / "all", strength=0.5)
    assert len(calls) == 1 and set(files) == {"pt", "grid", "csv"} and all(p.is_file() for p in files.values())
    assert files["csv"].read_text().startswith("step,total,")
