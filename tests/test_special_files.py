"""Files a user names that are not plain image or weight files: a FIFO (or a link to one) is refused
before it is opened, instead of hanging for ever; a symlink loop is called one; Ctrl-C ends a load that
is stuck on the network; a checkpoint or session with a NaN or inf in any tensor is refused, naming the
file and the tensor; an animated target image is used as its first frame, and the user is told."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
from _models_fakes import ada_tensors_from_tf, tf_variables, write_ada_pickle
from _models_server import silent_server
from _sessions import demo_session
from PIL import Image
from safetensors import safe_open

from engine import runs, sessions, zoo
from engine.demo import tiny_generator
from engine.errors import CheckpointError
from engine.generator_files import load_generator, save_rosinality
from engine.target_images import TargetImageError, find_image_files, load_image, load_target_images
from nada_tui.__main__ import main

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nada_tui", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# ----- special files ------------------------------------------------------------------------------
def test_a_fifo_as_target_image_is_refused_not_waited_on(tmp_path):
    pipe = fifo(tmp_path / "x.png")
    # Before the fix the process blocked opening the FIFO: the timeout fails the test.
    done = cli("train", "--demo", "--target-images", str(pipe), "--iters", "1", "--device", "cpu", timeout=90)
    assert done.returncode == 2, done.stderr
    assert f"{pipe} is a FIFO (named pipe), not a regular file" in done.stderr
    link = tmp_path / "link.png"
    link.symlink_to(pipe)
    for call in (lambda: find_image_files([link]), lambda: load_image(link)):
        with pytest.raises(TargetImageError, match="FIFO"):
            call()


def test_a_fifo_as_checkpoint_is_refused_not_waited_on(tmp_path):
    pipe = fifo(tmp_path / "g.pt")
    done = cli("train", "--checkpoint", str(pipe), "--source", "a", "--target", "b", "--device", "cpu", timeout=90)
    assert done.returncode == 2, done.stderr
    assert f"{pipe} is a FIFO (named pipe), not a regular file" in done.stderr
    with pytest.raises(CheckpointError, match="FIFO"):
        load_generator(pipe)
    with pytest.raises(CheckpointError, match="FIFO"):
        zoo.import_checkpoint(pipe, "mine")
    with pytest.raises(CheckpointError, match="FIFO"):
        zoo.load_clip_by_name(str(pipe))


def test_a_symlink_loop_is_called_one(tmp_path, capsys):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(TargetImageError, match="is a symlink loop"):
        find_image_files([loop])
    with pytest.raises(CheckpointError, match="is a symlink loop"):
        load_generator(loop)
    assert main(["train", "--demo", "--target-images", str(loop), "--iters", "1"]) == 2
    assert "is a symlink loop" in capsys.readouterr().err


def test_ctrl_c_ends_a_load_stuck_on_the_network(tmp_path):
    with silent_server() as server:
        out = tmp_path / "out.txt"
        with open(out, "w") as f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nada_tui", "train", "--model", "church", "--source", "a photo of a church",
                 "--target", "a sketch of a church", "--device", "cpu"],
                cwd=REPO, stdout=f, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, "NADA_TUI_MIRROR": server.url, "OMP_NUM_THREADS": "1"},
            )
        try:
            # Interrupt only once the download has asked for the file and waits for an answer that never
            # comes (a fixed sleep after "loading church" guessed at that moment; a busy machine can take
            # longer than any such guess to start Python and import torch).
            request = server.wait_for_request(timeout=300, still_waiting=lambda: proc.poll() is None,
                                              describe=out.read_text)
            assert "church" in request, request
            assert "loading church" in out.read_text()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=20)  # well before the download's own 30 s timeout would end it
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 130, out.read_text()
    assert "interrupted" in out.read_text() and "Traceback" not in out.read_text()


# ----- non-finite tensors -------------------------------------------------------------------------
def test_checkpoint_with_inf_latent_avg_is_refused(tmp_path):
    g = tiny_generator(32)
    torch.save({"g_ema": g.state_dict(), "latent_avg": torch.full((g.style_dim,), float("inf"))}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"a\.pt: tensor 'latent_avg' contains NaN or inf"):
        load_generator(tmp_path / "a.pt")


def test_checkpoint_with_a_nan_buffer_is_refused(tmp_path):
    g = tiny_generator(32)
    sd = g.state_dict()
    sd["noises.noise_1"] = torch.full_like(sd["noises.noise_1"], float("nan"))
    torch.save({"g_ema": sd, "latent_avg": g.latent_avg}, tmp_path / "n.pt")
    with pytest.raises(CheckpointError, match="tensor 'noises.noise_1' contains NaN or inf"):
        load_generator(tmp_path / "n.pt")


def test_nvidia_pickle_with_nan_w_avg_is_refused(tmp_path):
    g = tiny_generator(32)
    mapping, syn, own = tf_variables(g)
    tensors = ada_tensors_from_tf(mapping, syn, own, g.config.n_mlp)
    tensors["mapping.w_avg"] = torch.full_like(tensors["mapping.w_avg"], float("nan"))
    path = write_ada_pickle(tmp_path / "g.pkl", tensors)
    with pytest.raises(CheckpointError, match=r"g\.pkl: tensor 'latent_avg' contains NaN or inf"):
        load_generator(path)


def test_cached_converted_file_with_nan_is_refused():
    g = tiny_generator(32)
    g.latent_avg.fill_(float("nan"))
    cached = save_rosinality(g, zoo.converted_path("church"))
    with pytest.raises(CheckpointError, match=f"{cached}: tensor 'latent_avg' contains NaN or inf"):
        zoo.load_generator_by_id("church")


@pytest.mark.usefixtures("small_demo")
def test_session_weights_with_nan_are_refused():
    sid = demo_session(iterations=2)
    info = sessions.load(sid)
    ckpt = info.path / sessions.CHECKPOINT_FILE
    name = next(iter(sessions.read_state(ckpt)["weights"]))
    # Damaged on disk (the writer itself refuses non-finite weights): rewrite one tensor in the file.
    with safe_open(ckpt, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    tensors[f"weights/{name}"] = torch.full_like(tensors[f"weights/{name}"], float("inf"))
    ckpt.write_bytes(safetensors.torch.save(tensors, metadata=meta))
    with pytest.raises(sessions.DamagedSession, match=f"tensor 'weights/{name}' contains NaN or inf"):
        sessions.checkpoint_weights(info)
    with pytest.raises(sessions.DamagedSession, match="contains NaN or inf"):
        runs.resume_session(sid, iterations=4, device="cpu")


# ----- animated targets ---------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".webp", ".png"])
def test_an_animated_target_is_used_as_its_first_frame_and_said(tmp_path, suffix):
    frames = [Image.new("RGB", (20, 20), (0, 0, 80 * i + 40)) for i in range(3)]
    path = tmp_path / f"anim{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    [target] = load_target_images([path])
    assert target.note is not None and f"{path} is animated (3 frames)" in target.note
    assert "only its first frame is used" in target.note
    assert target.image.getpixel((5, 5)) == (0, 0, 40)
    still = tmp_path / "still.png"
    frames[0].save(still)
    assert load_target_images([still])[0].note is None


@pytest.mark.usefixtures("small_demo")
def test_the_cli_warns_about_an_animated_target(tmp_path, capsys):
    frames = [Image.new("RGB", (20, 20), (0, 0, 80 * i + 40)) for i in range(2)]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    assert main(["train", "--demo", "--target-images", str(path), "--iters", "1", "--batch", "1",
                 "--preview-every", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().err  # progress and warnings go to stderr
    assert f"warning: {path} is animated (2 frames): only its first frame is used" in out


def _within(seconds: float, call):
    """`call()`'s result, or a failure when it is still blocked after `seconds` (a daemon thread: a FIFO
    open that never returns must not keep the test process alive)."""
    import threading

    out: list = []
    t = threading.Thread(target=lambda: out.append(call()), daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"still blocked after {seconds} s"
    return out[0]


def test_a_fifo_as_config_or_theme_file_is_refused(tmp_path):
    from engine import paths
    from nada_tui.themes import load_dir
    from nada_tui.user_config import load_settings

    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    fifo(config)
    settings = _within(20, load_settings)
    assert [p for p in settings.problems if f"{config} is a FIFO (named pipe), not a regular file" in p]
    fifo(tmp_path / "dark.toml")
    themes, failures = _within(20, lambda: load_dir(tmp_path))
    assert themes == [] and failures == ["dark.toml is a FIFO (named pipe), not a regular file"]
