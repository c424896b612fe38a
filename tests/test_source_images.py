"""Source images (issue 21, item 5): the image direction starts from the mean embedding of the user's source
images instead of the frozen generator's samples; they follow the target images' rules, need target images,
and a session keeps copies of them (resume and fork work once the originals are gone)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from engine import paths, runs, sessions
from engine import target_images as ti
from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, ConfigError, TrainConfig
from engine.inputs import check_inputs
from engine.trainer import Trainer
from nada_tui.__main__ import main

BLUE, GREEN, RED = (0, 0, 255), (0, 255, 0), (255, 0, 0)


def solid(folder: Path, rgb: tuple[int, int, int], n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (40, 30), rgb).save(folder / f"{i}.png")
    return folder


def config(**kw) -> TrainConfig:
    base = dict(source="a red image", clip_models=((DEMO_CLIP_ID, 1.0),), iterations=3, preview_every=0,
                preview_seeds=(0, 1), batch=1, auto_layer_batch=2)
    return TrainConfig(**{**base, **kw})


def test_the_direction_starts_from_the_source_images(tmp_path, generator, oracle) -> None:
    blue, green = solid(tmp_path / "blue", BLUE), solid(tmp_path / "green", GREEN)
    cfg = config(target_images=(str(blue),), source_images=(str(green),))
    tr = Trainer(cfg, generator, {oracle.name: oracle}, device="cpu")

    def mean(folder: Path) -> torch.Tensor:
        images = [ti.to_tensor(t.image) for t in ti.load_target_images([folder])]
        with torch.no_grad():
            return torch.cat([oracle.encode_images(x) for x in images]).mean(0)

    want = F.normalize(mean(blue) - mean(green), dim=-1)
    torch.testing.assert_close(tr.loss.direction(oracle, cfg.source, cfg.target), want)
    without = Trainer(config(target_images=(str(blue),)), generator, {oracle.name: oracle}, device="cpu")
    assert not torch.allclose(without.loss.direction(oracle, cfg.source, cfg.target), want)  # it was the samples


def test_source_images_follow_the_target_images_rules(tmp_path) -> None:
    blue = str(solid(tmp_path / "blue", BLUE))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="source_images: .*add target images") as info:
        check_inputs(config(target="a blue image", source_images=(blue,)))
    assert info.value.field == "source_images"
    with pytest.raises(ti.TargetImageError, match="is empty: put the source images") as err:
        check_inputs(config(target_images=(blue,), source_images=(str(tmp_path / "empty"),)))
    assert err.value.field == "source_images"
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    with pytest.raises(ti.TargetImageError, match="corrupt") as err:
        runs.start_session(config(target_images=(blue,), source_images=(str(tmp_path / "bad.png"),)),
                           DEMO_GENERATOR_ID, device="cpu")
    assert err.value.field == "source_images"
    assert not paths.sessions_dir().exists() or not list(paths.sessions_dir().iterdir())  # nothing written


@pytest.mark.usefixtures("small_demo", "one_thread")
def test_a_session_keeps_its_source_images(tmp_path, capsys) -> None:
    blue, red = solid(tmp_path / "blue", BLUE), solid(tmp_path / "red", RED, n=3)
    assert main(["train", "--demo", "--iters", "2", "--batch", "1", "--layer-batch", "2", "--preview-every", "0",
                 "--device", "cpu", "--target-images", str(blue), "--source-images", str(red)]) == 0
    out = capsys.readouterr().out
    sid = next(line.split()[1] for line in out.splitlines() if line.startswith("session "))
    assert "Scores (16 samples): dir " in out  # measured when the run ended, said with the summary
    shutil.rmtree(red)  # the originals are gone: the session's copies serve resume and fork
    info = sessions.load(sid)
    assert [p.name for p in sorted((info.path / sessions.SOURCES_DIR).iterdir())] == ["000.png", "001.png", "002.png"]
    assert len(sessions.source_images(info)) == 3
    with runs.resume_session(sid, device="cpu", iterations=3) as run:
        assert runs.train_session(run, handle_signals=False).status == "finished"
    with runs.fork_session(sid, {"iterations": 1}, device="cpu") as fork:
        runs.train_session(fork, handle_signals=False)
    assert len(sessions.source_images(sessions.load(fork.session_id))) == 3
    shutil.rmtree(info.path / sessions.SOURCES_DIR)
    assert "source image copies" in (sessions.read_info(info.path).damaged or "")


def test_source_images_are_a_sweep_axis_as_target_images_are() -> None:
    from engine.sweeps import parse_sweep

    s = parse_sweep('[defaults]\ndemo = true\nsource = "a red image"\ntarget-images = ["blue"]\n'
                    '[grid]\nsource-images = [["red"], ["red", "pink"]]\n', "/s/sweep.toml")
    assert s.keys == ("source_images",)
    assert [r.config.source_images for r in s.runs] == [("red",), ("red", "pink")]
