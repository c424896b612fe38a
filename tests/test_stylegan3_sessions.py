"""A StyleGAN3 session (`--model demo-sg3`) goes through everything a StyleGAN2 one does, by the same
commands: `nada-tui photos` (a round trip on an image the generator made itself), `generate --latents`,
`sessions export --only video`, resume (the same curve as an uninterrupted run) and `sessions fork`; and a
StyleGAN3 file whose z is narrower than its w trains, scores, samples and films."""

from __future__ import annotations

import shutil
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from _home import use_home
from PIL import Image

from engine import paths, runs, sessions
from engine.config import demo_config
from engine.generator_files import save_rosinality
from engine.official_models import DEMO_SG3_ID
from engine.photos import load_latent, load_session_models, render_latent
from engine.sampling import render_seeds, to_pil
from engine.stylegan3 import fresh_generator
from nada_tui.__main__ import main

ROUND_TRIP_STEPS = 20  # 39 dB on the 32 px demo-sg3 (whose images are low in contrast: see the test)


def sg3_session(iterations: int, **changes) -> str:
    """demo-sg3 trained red -> blue with adaptive selection, a preview every 2 steps; its id."""
    cfg = demo_config(iterations=iterations, batch=1, auto_layer_k=3, auto_layer_batch=2, auto_layer_interval=2,
                      preview_every=2, preview_seeds=(0, 1), lr=0.05, **changes)
    run = runs.start_session(cfg, DEMO_SG3_ID, device="cpu")
    with run:
        runs.train_session(run, handle_signals=False)
    return run.session_id


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One 4-step demo-sg3 session for the module: its folder."""
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, tmp_path_factory.mktemp("home"))
        torch.set_num_threads(1)
        return paths.sessions_dir() / sg3_session(4)


@pytest.fixture
def session(trained, one_thread) -> str:
    """The trained session, copied into this test's private home; its id."""
    shutil.copytree(trained, paths.sessions_dir() / trained.name)
    return trained.name


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _blueness(path: Path) -> float:
    rgb = np.asarray(Image.open(path), dtype=np.float64)
    return float(rgb[..., 2].mean() - rgb[..., 0].mean())


def test_photos_round_trip_and_generate_latents_through_an_sg3_session(session, tmp_path, capsys):
    start = load_session_models(session, "cpu").start
    seed0, seed1 = to_pil(render_seeds(start, [0, 1], 0.7))
    folder = tmp_path / "in"
    folder.mkdir()
    # The 32 px render enlarged 2x: photos need 64 px; --no-align brings it back to 32 px.
    seed0.resize((64, 64), Image.Resampling.NEAREST).save(folder / "seed_0.png")
    out = tmp_path / "out"
    assert main(["photos", session, str(folder), "--out", str(out), "--steps", str(ROUND_TRIP_STEPS),
                 "--no-align"]) == 0
    assert "inverted 1 of 1 photos" in capsys.readouterr().out
    aligned, inverted, adapted = (_pixels(out / f"seed_0.{k}.png") for k in ("aligned", "inverted", "adapted"))
    assert _psnr(aligned, np.asarray(seed0)) > 40  # what was inverted is the render itself
    # This tiny generator's images are low in contrast: another seed's render is already 24 dB away; the
    # inversion gets 39 dB, 10 dB closer than the nearest wrong answer.
    assert _psnr(aligned, inverted) >= 35
    assert _psnr(aligned, inverted) >= _psnr(aligned, np.asarray(seed1)) + 10
    assert _blueness(out / "seed_0.adapted.png") > _blueness(out / "seed_0.inverted.png") + 10  # red -> blue
    w, meta = load_latent(out / "seed_0.latent.npz")
    assert w.shape == (start.n_latent, start.style_dim) and meta["session"] == session

    renders = tmp_path / "renders"
    assert main(["generate", session, "--latents", str(out / "seed_0.latent.npz"), "--out", str(renders)]) == 0
    (made,) = renders.iterdir()
    assert np.array_equal(_pixels(made), adapted)
    assert np.array_equal(np.asarray(render_latent(session, w, 0.0, device="cpu")), inverted)


def test_video_export_of_an_sg3_session(session, tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["sessions", "export", session, "--only", "video", "--seconds", "1", "--fps", "8", "--size", "32",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for kind, frames in (("walk", 8), ("strength", 8), ("timelapse", None)):
        path = out / f"{session}-{kind}.mp4"
        assert f"wrote {path}" in printed
        assert path.read_bytes()[4:8] == b"ftyp"  # an MP4 container
        count, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
        assert count == frames if frames else count >= 2  # the timelapse: the previews at steps 2 and 4


def _losses(sid: str) -> list[dict[str, float]]:
    return [r.losses for r in sessions.read_metrics(sessions.load(sid).path)]


def test_resume_of_an_sg3_session_continues_the_same_curve(one_thread):
    straight = sg3_session(6)
    sid = sg3_session(4)
    run = runs.resume_session(sid, device="cpu", iterations=6)
    with run:
        assert run.trainer.step_count == 4
        runs.train_session(run, handle_signals=False)
    assert _losses(sid) == _losses(straight)
    adapted = sessions.adapted_weights(sessions.load(sid))
    assert adapted.keys() == sessions.adapted_weights(sessions.load(straight)).keys()
    for k, v in sessions.adapted_weights(sessions.load(straight)).items():
        assert torch.equal(adapted[k], v), k


def test_fork_of_an_sg3_session_starts_from_its_adapted_weights(session, tmp_path, capsys):
    assert main(["sessions", "fork", session, "--from", "adapted", "--source", "a blue image", "--target",
                 "a green image", "--iters", "2", "--device", "cpu"]) == 0
    fork = next(i for i in sessions.list_sessions() if i.id != session)
    assert fork.model_id == DEMO_SG3_ID and fork.data["parent"]["id"] == session and fork.step == 2
    # the fork at strength 0 (where it started) renders what the parent renders at strength 1
    renders = {}
    for sid, strength in ((session, "1"), (fork.id, "0")):
        out = tmp_path / sid
        assert main(["generate", sid, "-n", "2", "--strength", strength, "--out", str(out)]) == 0
        renders[sid] = [_pixels(p) for p in sorted(out.iterdir())]
    assert len(renders[session]) == 2
    for a, b in zip(renders[session], renders[fork.id], strict=True):
        assert np.array_equal(a, b)


def test_an_sg3_file_whose_z_is_narrower_than_its_w_trains_scores_samples_and_films(tmp_path, one_thread, capsys):
    """z is drawn at the generator's z_dim (StyleGAN3 files may have z_dim != w_dim), never at its w width."""
    g = fresh_generator(32, "t", seed=3, z_dim=16, w_dim=32, num_layers=4, margin_size=2, channel_base=512,
                        channel_max=32)
    path = save_rosinality(g, tmp_path / "narrow-z.pt")
    assert main(["train", "--checkpoint", str(path), "--source", "a red image", "--target", "a blue image",
                 "--clip", "demo-colour-oracle=1", "--iters", "2", "--batch", "1", "--layer-batch", "2",
                 "--preview-every", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Finished at step 2/2" in out and "Scores (16 samples)" in out
    (info,) = sessions.list_sessions()
    renders, videos = tmp_path / "r", tmp_path / "v"
    assert main(["generate", info.id, "-n", "2", "--out", str(renders)]) == 0
    assert len(list(renders.iterdir())) == 2
    assert main(["sessions", "export", info.id, "--only", "walk", "--seconds", "0.5", "--fps", "8", "--size", "32",
                 "--out", str(videos)]) == 0
    assert imageio_ffmpeg.count_frames_and_secs(str(videos / f"{info.id}-walk.mp4"))[0] == 4


def test_nvidia_layout_export_of_an_sg3_session_says_what_to_use_instead(session, tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["sessions", "export", session, "--only", "pt", "--format", "nvidia", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "StyleGAN2 generators only" in err and "--format rosinality" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    assert main(["sessions", "export", session, "--only", "pt", "--out", str(out)]) == 0
    assert (out / f"{session}.pt").is_file()
