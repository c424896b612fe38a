"""Image targets: the direction they give (colour oracle), mixing with text, every bad-input rule, the
session's own copies (resume after the originals are gone) and the command line."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from engine import export, paths, runs, sessions
from engine import target_images as ti
from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, SETTINGS, ConfigError, TrainConfig
from engine.sampling import render_seeds
from engine.trainer import Trainer
from nada_tui.__main__ import main

BLUE, RED = (0, 0, 255), (255, 0, 0)
SEEDS = range(8)


def solid(folder: Path, rgb: tuple[int, int, int], n: int = 3, size: tuple[int, int] = (40, 30)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, rgb).save(folder / f"{i}.png")
    return folder


def blue_minus_red(g) -> float:
    x = render_seeds(g, SEEDS, truncation=0.7)
    return float((x[:, 2] - x[:, 0]).mean())


def oracle_config(**kw) -> TrainConfig:
    return TrainConfig(**{"clip_models": ((DEMO_CLIP_ID, 1.0),), **kw})


def trainer(generator, oracle, **kw) -> Trainer:
    return Trainer(oracle_config(**kw), generator, {oracle.name: oracle}, device="cpu")


# ----- the direction ----------------------------------------------------------------------------------
@pytest.mark.parametrize("colour,sign", [(BLUE, 1), (RED, -1)])
def test_solid_target_images_move_samples_towards_their_colour(tmp_path, generator, oracle, one_thread,
                                                                colour, sign):
    folder = solid(tmp_path / "targets", colour)
    before = blue_minus_red(generator)
    tr = trainer(generator, oracle, target_images=(str(folder),), iterations=40, batch=1, auto_layer_batch=2)
    assert tr.image_weight == 1.0  # images alone: auto = 1
    for _ in range(40):
        tr.step()
    after = blue_minus_red(tr.generator)
    print(f"blue-minus-red {before:+.3f} -> {after:+.3f} (margin {sign * (after - before):+.3f})")
    assert sign * (after - before) > 0.2, (before, after)
    assert blue_minus_red(tr.frozen) == pytest.approx(before)


def test_image_direction_is_the_mean_target_embedding_minus_the_mean_frozen_sample(tmp_path, generator, oracle):
    folder = tmp_path / "two"
    folder.mkdir()
    Image.new("RGB", (32, 32), BLUE).save(folder / "a.png")
    Image.new("RGB", (64, 48), (0, 255, 0)).save(folder / "b.png")
    tr = trainer(generator, oracle, target_images=(str(folder),), target_image_batch=6, seed=3)
    with torch.no_grad():
        targets = torch.cat([oracle.encode_images(ti.to_tensor(ti.load_image(p)))
                             for p in sorted(folder.iterdir())]).mean(0)
        z = torch.randn(6, generator.style_dim, generator=torch.Generator().manual_seed(3 + ti.SAMPLE_SEED_OFFSET))
        frozen = oracle.encode_images(generator.render(z, truncation=1.0, noise="const")).mean(0)
    want = F.normalize(targets - frozen, dim=-1)
    torch.testing.assert_close(tr.loss.direction(oracle, "", ""), want)
    torch.testing.assert_close(tr.loss.global_target(oracle, ""), F.normalize(targets, dim=-1))


def test_text_and_images_mix_by_image_weight(tmp_path, generator, oracle):
    folder = solid(tmp_path / "blue", BLUE, n=1)
    kw = dict(source="a red image", target="a green image", target_images=(str(folder),))
    text = trainer(generator, oracle, source="a red image", target="a green image")
    images = trainer(generator, oracle, target_images=(str(folder),))
    t_dir = text.loss.direction(oracle, "a red image", "a green image")
    t_glob = oracle.encode_texts(["a green image"])[0]
    i_dir, i_glob = images.loss.direction(oracle, "", ""), images.loss.global_target(oracle, "")
    both = trainer(generator, oracle, **kw)
    assert both.image_weight == 0.5  # auto with a prompt too
    torch.testing.assert_close(both.loss.direction(oracle, kw["source"], kw["target"]),
                               F.normalize(t_dir + i_dir, dim=-1))
    quarter = trainer(generator, oracle, image_weight=0.25, **kw)
    torch.testing.assert_close(quarter.loss.global_target(oracle, kw["target"]),
                               F.normalize(0.75 * t_glob + 0.25 * i_glob, dim=-1))
    one = trainer(generator, oracle, image_weight=1.0, **kw)
    assert torch.equal(one.loss.direction(oracle, kw["source"], kw["target"]), i_dir)


def test_image_weight_zero_is_the_text_alone_exactly(tmp_path, generator, oracle, one_thread):
    folder = solid(tmp_path / "blue", BLUE)
    kw = dict(source="a red image", target="a green image", iterations=6, batch=1, auto_layer_batch=2,
              auto_layer_interval=3)
    runs_ = [trainer(generator, oracle, **kw), trainer(generator, oracle, target_images=(str(folder),),
                                                       image_weight=0.0, **kw)]
    losses = [[tr.step().losses for _ in range(6)] for tr in runs_]
    assert losses[0] == losses[1]
    a, b = (tr.trainable_state() for tr in runs_)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_image_weight_rules_and_prompts(tmp_path, generator, oracle):
    from engine.inputs import check_inputs

    folder = str(solid(tmp_path / "blue", BLUE, n=1))
    with pytest.raises(ConfigError, match="image_weight: .*no target images"):
        check_inputs(TrainConfig(source="a red image", target="a blue image", image_weight=0.5))
    with pytest.raises(ConfigError, match="image_weight: .*alone") as info:
        check_inputs(TrainConfig(target_images=(folder,), image_weight=0.5))
    assert info.value.field == "image_weight"
    with pytest.raises(ConfigError, match="image_weight"):
        TrainConfig.parse({"image_weight": "1.5"})
    from engine.clip_loss import PromptError

    with pytest.raises(PromptError, match="source prompt is empty"):  # text + images: the source is needed
        check_inputs(TrainConfig(target="a blue image", target_images=(folder,)))
    assert check_inputs(TrainConfig(target_images=(folder,))) == (Path(folder) / "0.png",)  # no prompt needed
    trainer(generator, oracle, target_images=(folder,))


def test_paths_setting_parses_text_lists_and_json():
    s = SETTINGS["target_images"]
    assert s.parse("a 'my pics/' b.png") == ("a", "my pics/", "b.png")
    assert s.parse(["x y", "z"]) == ("x y", "z")
    assert s.parse(s.format(("x y", "z"))) == ("x y", "z")
    assert TrainConfig.from_dict(TrainConfig(target_images=["p"]).to_dict()).target_images == ("p",)
    assert SETTINGS["image_weight"].parse("auto") is None and SETTINGS["image_weight"].parse("0.3") == 0.3
    assert ti.describe("a sketch", 3) == "a sketch + 3 images" and ti.describe("", 1) == "1 image"


# ----- reading files ----------------------------------------------------------------------------------
def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims width x height but holds no pixel data: what a decompression bomb looks like to
    a reader before it decodes (a real 50 000 px image would take gigabytes to make)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (paths, words the message must hold)."""
    (tmp / "empty").mkdir()
    (tmp / "texts").mkdir()
    (tmp / "texts" / "notes.txt").write_text("not an image")
    (tmp / "nested" / "inner").mkdir(parents=True)
    solid(tmp / "nested" / "inner", BLUE, n=1)
    (tmp / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png at all")
    Image.new("RGB", (64, 64), BLUE).save(tmp / "whole.jpg", quality=95)
    data = (tmp / "whole.jpg").read_bytes()
    (tmp / "truncated.jpg").write_bytes(data[: len(data) // 2])
    Image.new("RGB", (64, 64), BLUE).save(tmp / "whole.png")
    png = (tmp / "whole.png").read_bytes()
    (tmp / "truncated.png").write_bytes(png[: len(png) - 30])
    png_header_only(tmp / "bomb.png", 50_000, 50_000)
    png_header_only(tmp / "big.png", 10_000, 10_000)  # PIL only warns here: we refuse it too
    solid(tmp / "many", BLUE, n=65, size=(2, 2))
    Image.new("RGB", (900, 100), BLUE).save(tmp / "sliver.png")
    (tmp / "image.gif").write_bytes(b"GIF89a")
    return {
        "missing": ([str(tmp / "nope")], "does not exist"),
        "empty folder": ([str(tmp / "empty")], "is empty"),
        "no image files": ([str(tmp / "texts")], "holds no png, jpg, jpeg or webp files"),
        "only subfolders": ([str(tmp / "nested")], "subfolders are not searched"),
        "other extension": ([str(tmp / "image.gif")], "is not a png, jpg, jpeg or webp file"),
        "corrupt": ([str(tmp / "corrupt.png")], "corrupt"),
        "truncated jpeg": ([str(tmp / "truncated.jpg")], "truncated"),
        "truncated png": ([str(tmp / "truncated.png")], "truncated"),
        "bomb": ([str(tmp / "bomb.png")], "2500 megapixels"),
        "bomb under 2x": ([str(tmp / "big.png")], "10000 x 10000 px"),
        "too many": ([str(tmp / "many")], "more than 64"),
        "sliver": ([str(tmp / "sliver.png")], "more than 8 times its shorter"),
    }


def test_every_bad_input_is_refused_with_a_message(tmp_path):
    for name, (given, words) in bad_inputs(tmp_path).items():
        with pytest.raises(ti.TargetImageError) as info:
            ti.load_target_images(given)
        assert words in str(info.value), (name, str(info.value))
        assert info.value.field == "target_images"
        assert str(info.value).startswith("target_images: ")


def test_bad_inputs_stop_a_run_before_anything_is_written_or_loaded(tmp_path, small_demo, monkeypatch):
    from engine import zoo

    def no_models(*a, **k):
        raise AssertionError("models must not load for bad target images")

    monkeypatch.setattr(zoo, "load_generator_by_id", no_models)
    for name, (given, words) in bad_inputs(tmp_path).items():
        with pytest.raises(ConfigError, match=words):
            runs.start_session(oracle_config(target_images=tuple(given)), DEMO_GENERATOR_ID, device="cpu")
        assert not paths.sessions_dir().exists() or not os.listdir(paths.sessions_dir()), name


def test_odd_modes_are_converted_not_refused(tmp_path):
    blue = np.zeros((8, 8, 3), np.uint8)
    blue[..., 2] = 255
    Image.fromarray(blue).convert("L").save(tmp_path / "gray.png")
    Image.new("RGBA", (8, 8), (0, 0, 255, 255)).save(tmp_path / "rgba.png")
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "clear.png")  # transparent: laid over white
    Image.new("RGB", (8, 8), BLUE).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    Image.new("LA", (8, 8), (100, 255)).save(tmp_path / "la.png")
    Image.fromarray(np.full((8, 8), 65535 // 2, np.uint16)).save(tmp_path / "gray16.png")
    Image.new("CMYK", (8, 8), (255, 255, 0, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("RGB", (8, 8), BLUE).save(tmp_path / "blue.webp", lossless=True)
    got = {t.source.name: t.image for t in ti.load_target_images([tmp_path])}
    assert all(im.mode == "RGB" and im.size == (8, 8) for im in got.values())
    px = {name: got[name].getpixel((4, 4)) for name in got}
    with Image.open(tmp_path / "gray16.png") as im:
        assert im.mode.startswith("I")  # PIL reads 16-bit gray as I;16 or I
    assert px["gray16.png"] == (127, 127, 127)  # scaled, not clipped to white
    assert px["rgba.png"] == BLUE and px["palette.png"] == BLUE and px["blue.webp"] == BLUE
    assert px["clear.png"] == (255, 255, 255) and px["la.png"] == (100, 100, 100)
    assert px["gray.png"][0] == px["gray.png"][2] and px["cmyk.jpg"][2] > 200 and px["cmyk.jpg"][0] < 60


def test_images_are_downscaled_to_512_px_and_listed_once_in_order(tmp_path):
    Image.new("RGB", (1000, 600), BLUE).save(tmp_path / "b.jpg")
    Image.new("RGB", (100, 60), RED).save(tmp_path / "A.png")
    found = ti.load_target_images([tmp_path, tmp_path / "b.jpg", tmp_path / ".." / tmp_path.name / "A.png"])
    assert [t.source.name for t in found] == ["A.png", "b.jpg"]
    assert found[1].image.size == (512, 307) and found[0].image.size == (100, 60)


# ----- sessions keep their targets --------------------------------------------------------------------
def session_config(folder: Path, **kw) -> TrainConfig:
    base = dict(source="a red image", target_images=(str(folder),), clip_models=((DEMO_CLIP_ID, 1.0),),
                iterations=6, preview_every=0, preview_seeds=(0, 1), batch=1, auto_layer_batch=2,
                auto_layer_interval=4)
    return TrainConfig(**{**base, **kw})


def train(config: TrainConfig, **kw) -> runs.RunResult:
    with runs.start_session(config, DEMO_GENERATOR_ID, device="cpu", **kw) as run:
        return runs.train_session(run, handle_signals=False)


def test_session_copies_survive_the_originals_resume_fork_export(tmp_path, small_demo, one_thread):
    folder = solid(tmp_path / "blue", BLUE, size=(900, 700))
    full = train(session_config(folder))
    reference = [r.losses["total"] for r in sessions.read_metrics(full.path)]
    part = train(session_config(folder, iterations=3))
    shutil.rmtree(folder)  # the originals are gone

    [info] = [i for i in sessions.list_sessions() if i.id == part.session_id]
    assert info.ok and info.target_image_count == 3 and info.target_text == "3 images"
    assert info.name == "a red image -> 3 images"
    copies = sorted((part.path / sessions.TARGETS_DIR).iterdir())
    assert [p.name for p in copies] == ["000.png", "001.png", "002.png"]
    with Image.open(copies[0]) as im:
        assert im.size == (512, 398)
    record = json.loads((part.path / "session.json").read_text())["target_images"]
    assert record["sources"][0] == str((folder / "0.png").resolve())

    with runs.resume_session(part.session_id, device="cpu", iterations=6) as run:
        res = runs.train_session(run, handle_signals=False)
    assert res.status == "finished"
    assert [r.losses["total"] for r in sessions.read_metrics(part.path)] == reference  # the same curve

    with runs.fork_session(part.session_id, {"target": "a green image", "iterations": 2}, device="cpu") as fork:
        assert fork.trainer.image_weight == 0.5
        runs.train_session(fork, handle_signals=False)
    forked = sessions.load(fork.session_id)
    assert forked.target_text == "a green image + 3 images" and forked.ok
    assert forked.name == "a red image -> a green image + 3 images (fork of a red image -> 3 images)"
    assert len(export.generate(part.session_id, 1, tmp_path / "out")) == 1

    shutil.rmtree(part.path / sessions.TARGETS_DIR)  # a session that lost its copies says so
    [broken] = [i for i in sessions.list_sessions() if i.id == part.session_id]
    assert "target image copies" in (broken.damaged or "")


def test_text_only_sessions_record_no_targets(tmp_path, small_demo, one_thread):
    res = train(session_config(tmp_path, target="a blue image", target_images=(), iterations=1))
    info = sessions.load(res.session_id)
    assert info.target_image_count == 0 and info.target_text == "a blue image"
    assert not (res.path / sessions.TARGETS_DIR).exists()


# ----- the command line -------------------------------------------------------------------------------
FAST = ["--iters", "3", "--batch", "1", "--layer-batch", "2", "--preview-every", "0", "--device", "cpu"]


def test_cli_train_demo_with_target_images(tmp_path, capsys, small_demo, one_thread):
    folder = solid(tmp_path / "blue", BLUE)
    assert main(["train", "--demo", "--target-images", str(folder), str(folder / "0.png"), *FAST]) == 0
    out = capsys.readouterr().out
    assert "Finished at step 3/3" in out
    [info] = sessions.list_sessions()
    assert info.target == "" and info.target_image_count == 3 and info.config.target_images == (
        str(folder), str(folder / "0.png"))
    assert main(["sessions", "list"]) == 0
    assert "-> 3 images" in capsys.readouterr().out
    assert main(["sessions", "show", info.id]) == 0
    assert "3 images" in capsys.readouterr().out

    assert main(["train", "--demo", "--target-images", str(tmp_path / "gone"), *FAST]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--demo", "--image-weight", "0.5", *FAST]) == 2
    assert "no target images" in capsys.readouterr().err
    assert len(sessions.list_sessions()) == 1
