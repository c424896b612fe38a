"""`nada-tui photos` end to end on the demo models: a photo the demo generator made (so an exact latent
exists) comes back at >= 22 dB and turns blue through a red -> blue session; a folder mixing good and bad
files; the session keeps its photos; `generate --latents`; batching; a damaged session; LPIPS' weights."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from _home import use_home
from _sessions import demo_session
from PIL import Image

from engine import paths
from engine.events import InversionProgress, PhotoDone, PhotoFailed
from engine.photos import invert_photos, load_latent, load_session_models, render_latent
from engine.sampling import render_seeds, to_pil
from nada_tui.__main__ import main

ROUND_TRIP_STEPS = 100  # enough for >= 22 dB on the 64 px demo generator, about 10 s on one idle core


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One red -> blue demo session for the module (training is the slow part): its folder."""
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, tmp_path_factory.mktemp("home"))
        torch.set_num_threads(1)
        sid = demo_session(iterations=4)
        return paths.sessions_dir() / sid


@pytest.fixture
def session(trained, one_thread):
    """The trained session, copied into this test's private home; its id."""
    shutil.copytree(trained, paths.sessions_dir() / trained.name)
    return trained.name


def _demo_photos(sid: str, folder: Path, seeds: list[int]) -> list[Path]:
    """PNGs the session's frozen generator made (seed s -> seed_s.png)."""
    models = load_session_models(sid, "cpu")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for s, img in zip(seeds, to_pil(render_seeds(models.start, seeds, 0.7)), strict=True):
        img.save(folder / f"seed_{s}.png")
        out.append(folder / f"seed_{s}.png")
    return out


def _psnr(a: Path, b: Path) -> float:
    x = np.asarray(Image.open(a), dtype=np.float64)
    y = np.asarray(Image.open(b), dtype=np.float64)
    return float(10 * np.log10(255.0**2 / np.mean((x - y) ** 2)))


def _blueness(path: Path) -> float:
    rgb = np.asarray(Image.open(path), dtype=np.float64)
    return float(rgb[..., 2].mean() - rgb[..., 0].mean())


def test_round_trip_reaches_22_db_and_the_adapted_render_carries_the_edit(session, tmp_path):
    (photo,) = _demo_photos(session, tmp_path / "in", [0])
    events: list[object] = []
    (result,) = invert_photos(session, [photo], tmp_path / "out", steps=ROUND_TRIP_STEPS, align=False,
                              on_event=events.append, device="cpu")
    assert result.psnr_db >= 22
    assert _psnr(result.aligned, result.inverted) >= 22  # what the files show, 8-bit
    # --no-align at the generator's size: what was inverted is the photo itself
    assert np.array_equal(np.asarray(Image.open(photo)), np.asarray(Image.open(result.aligned)))
    assert _blueness(result.adapted) > _blueness(result.inverted) + 10  # red -> blue
    progress = [e for e in events if isinstance(e, InversionProgress)]
    assert [e.step for e in progress] == list(range(1, ROUND_TRIP_STEPS + 1))
    assert progress[-1].loss < progress[0].loss / 2
    assert sum(e.image is not None for e in progress) == ROUND_TRIP_STEPS // 10  # the live view's pictures
    assert isinstance(events[-1], PhotoDone) and events[-1].result == result
    w, meta = load_latent(result.latent)
    assert meta["session"] == session and meta["steps"] == ROUND_TRIP_STEPS and meta["align"] is False
    assert "stand-in" in meta["perceptual"] and meta["pti"] == 0
    # The strength blend of the app: 0 is the inverted render, 1 the adapted one, exactly.
    models = load_session_models(session, "cpu")
    assert np.array_equal(np.asarray(render_latent(models, w, 0.0)), np.asarray(Image.open(result.inverted)))
    assert np.array_equal(np.asarray(render_latent(models, w, 1.0)), np.asarray(Image.open(result.adapted)))
    half = _blueness_of(render_latent(models, w, 0.5))
    assert _blueness(result.inverted) < half < _blueness(result.adapted)


def _blueness_of(image: Image.Image) -> float:
    rgb = np.asarray(image, dtype=np.float64)
    return float(rgb[..., 2].mean() - rgb[..., 0].mean())


def test_cli_does_the_good_photos_lists_the_bad_and_keeps_them_with_the_session(session, tmp_path, capsys):
    folder = tmp_path / "mixed"
    _demo_photos(session, folder, [1])
    (folder / "notes.png").write_text("not a picture")
    Image.new("RGB", (20, 20)).save(folder / "icon.png")
    out = tmp_path / "out"
    assert main(["photos", session, str(folder), "--out", str(out), "--steps", "3", "--no-align"]) == 1
    captured = capsys.readouterr()
    assert "inverted 1 of 3 photos" in captured.out
    assert "2 could not be used" in captured.err and "notes.png is not an image" in captured.err
    assert "icon.png is 20 x 20 px" in captured.err and "stand-in" in captured.err
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in out.iterdir()) == [
        "seed_1.adapted.png", "seed_1.aligned.png", "seed_1.inverted.png", "seed_1.latent.npz"]
    kept = paths.sessions_dir() / session / "photos"
    assert sorted(p.name for p in kept.iterdir()) == sorted(p.name for p in out.iterdir())
    assert main(["sessions", "show", session]) == 0
    assert "photos     1 in photos/: seed_1" in capsys.readouterr().out
    # The saved latent through the session again, at half strength.
    renders = tmp_path / "renders"
    assert main(["generate", session, "--latents", str(out / "seed_1.latent.npz"), "--out", str(renders),
                 "--strength", "0.5"]) == 0
    (made,) = renders.iterdir()
    assert made.name == f"seed_1.{session}.strength-0.5.png"
    w, _ = load_latent(out / "seed_1.latent.npz")
    expected = render_latent(session, w, 0.5, device="cpu")
    assert np.array_equal(np.asarray(Image.open(made)), np.asarray(expected))


def test_generate_latents_refuses_a_latent_of_another_generator(session, tmp_path, capsys):
    bad = tmp_path / "other.latent.npz"
    np.savez(bad, w_plus=np.zeros((18, 512), np.float32), meta=np.array("{}"))
    assert main(["generate", session, "--latents", str(bad), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "another size" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_batched_inversion_matches_one_at_a_time(session, tmp_path):
    photos = _demo_photos(session, tmp_path / "in", [2, 3])
    together = invert_photos(session, photos, None, steps=8, align=False, batch=2, device="cpu")
    alone = [invert_photos(session, [p], None, steps=8, align=False, batch=1, device="cpu")[0] for p in photos]
    for a, b in zip(together, alone, strict=True):
        wa, wb = load_latent(a.latent)[0], load_latent(b.latent)[0]
        assert np.allclose(wa, wb, atol=1e-3), np.abs(wa - wb).max()
        assert abs(a.psnr_db - b.psnr_db) < 0.05


def test_stop_keeps_nothing_half_done(session, tmp_path):
    (photo,) = _demo_photos(session, tmp_path / "in", [4])
    stop = threading.Event()
    results = invert_photos(session, [photo], tmp_path / "out", steps=50, align=False, device="cpu",
                            on_event=lambda e: stop.set() if isinstance(e, InversionProgress) else None, stop=stop)
    assert results == [] and not (tmp_path / "out").exists()


def test_a_session_with_damaged_weights_gets_a_message_not_a_traceback(session, tmp_path, capsys):
    weights = paths.sessions_dir() / session / "checkpoint.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 64), "red").save(photo)
    assert main(["photos", session, str(photo), "--out", str(tmp_path / "out"), "--no-align"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint.safetensors is truncated" in err and "Traceback" not in err


def test_each_bad_photo_is_a_failed_event_and_the_rest_go_on(session, tmp_path):
    (good,) = _demo_photos(session, tmp_path / "in", [5])
    missing = tmp_path / "gone.png"
    events: list[object] = []
    results = invert_photos(session, [missing, good], None, steps=2, align=False, on_event=events.append,
                            device="cpu")
    assert [r.photo for r in results] == [good]
    failed = [e for e in events if isinstance(e, PhotoFailed)]
    assert [e.photo for e in failed] == [missing] and "does not exist" in failed[0].message


def test_pivotal_tuning_reconstructs_closer_and_still_carries_the_edit(session, tmp_path):
    (photo,) = _demo_photos(session, tmp_path / "in", [6])
    plain = invert_photos(session, [photo], tmp_path / "plain", steps=10, align=False, device="cpu")[0]
    tuned = invert_photos(session, [photo], tmp_path / "pti", steps=10, align=False, pti_steps=10, device="cpu")[0]
    assert tuned.psnr_db > plain.psnr_db + 0.5
    assert load_latent(tuned.latent)[1]["pti"] == 10
    assert _blueness(tuned.adapted) > _blueness(tuned.inverted) + 10


def test_a_batch_too_large_for_the_device_is_split_not_failed(session, tmp_path, monkeypatch):
    from engine.photos import invert as pipeline

    real = pipeline.invert_batch

    def small_device(generator, targets, *a, **kw):
        if targets.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(generator, targets, *a, **kw)

    monkeypatch.setattr(pipeline, "invert_batch", small_device)
    photos = _demo_photos(session, tmp_path / "in", [7, 8])
    events: list[object] = []
    results = invert_photos(session, photos, None, steps=2, align=False, batch=2, device="cpu",
                            on_event=events.append)
    assert [r.photo for r in results] == photos
    assert not [e for e in events if isinstance(e, PhotoFailed)]
