"""The model registry, cache and `nada-tui models` command line, offline or against 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings

import pytest
import torch
from _models_fakes import write_ada_pickle_from_generator, write_tf_pickle
from _models_server import Behaviour, free_port, serve

from engine import official_models, weight_files, zoo
from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID
from engine.demo import tiny_generator
from engine.download import DownloadError
from engine.generator_files import CheckpointError, save_rosinality
from nada_tui.__main__ import main


def _entry(name: str, filename: str, fmt: str = "nvidia-tf-pkl", resolution: int = 32) -> zoo.GeneratorEntry:
    return zoo.GeneratorEntry(
        name,
        f"tiny test model {name}",
        resolution,
        f"https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/{filename}",
        None,
        None,
        "a photo of a church",
        fmt,
    )


@pytest.fixture
def tiny_registry(tmp_path, monkeypatch):
    """Two tiny 'official' generators served from a local mirror (TF and ada-pytorch pickles)."""
    g = tiny_generator(32, seed=11)
    files = {
        "stylegan2-tiny-config-f.pkl": write_tf_pickle(tmp_path / "tf.pkl", g).read_bytes(),
        "tinyada.pkl": write_ada_pickle_from_generator(tmp_path / "ada.pkl", g).read_bytes(),
    }
    monkeypatch.setitem(zoo.GENERATORS, "tinychurch", _entry("tinychurch", "stylegan2-tiny-config-f.pkl"))
    monkeypatch.setitem(zoo.GENERATORS, "tinyada", _entry("tinyada", "tinyada.pkl", "nvidia-ada-pkl"))
    behaviour = Behaviour(files=files)
    with serve(behaviour) as base:
        monkeypatch.setenv("NADA_TUI_MIRROR", base)
        yield g, behaviour, files


def _same(a, b):
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(a.render(z, truncation=0.7), b.render(z, truncation=0.7), atol=1e-4, rtol=0)


def test_registry_covers_the_seed_domains_and_clip():
    for name, prompt in [("ffhq", "person"), ("afhqdog", "dog"), ("church", "church")]:
        e = zoo.GENERATORS[name]
        assert prompt in e.source_prompt and e.url.startswith("https://nvlabs-fi-cdn.nvidia.com/")
        assert not e.demo and e.size_bytes is None  # unknown until the first download records it
    assert {"afhqcat", "afhqwild", "metfaces", "car", "cat", "horse"} <= set(zoo.GENERATORS)
    assert zoo.GENERATORS["ffhq"].resolution == 1024 and zoo.GENERATORS["church"].resolution == 256
    assert zoo.GENERATORS["afhqdog"].format == "nvidia-ada-pkl" and zoo.GENERATORS["afhqdog"].resolution == 512
    assert zoo.GENERATORS[DEMO_GENERATOR_ID].demo and zoo.CLIP_MODELS[DEMO_CLIP_ID].demo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from clip.clip import _MODELS
    for name in ("ViT-B/32", "ViT-B/16"):
        c = zoo.CLIP_MODELS[name]
        assert c.url == _MODELS[name] and c.sha256 == c.url.split("/")[-2]


def test_demo_models_load_offline():
    g, info = zoo.load_generator_by_id(DEMO_GENERATOR_ID)
    assert info["demo"] and info["format"] == "demo" and "DEMO" in info["description"]
    assert info["size"] == g.size == 64
    enc = zoo.load_clip_by_name(DEMO_CLIP_ID)
    assert enc.name == DEMO_CLIP_ID
    assert zoo.is_downloaded(DEMO_GENERATOR_ID) and zoo.is_downloaded(DEMO_CLIP_ID)
    assert not zoo.is_downloaded("ffhq") and not zoo.is_downloaded("ViT-B/32")


def test_registry_model_downloads_converts_and_caches(tiny_registry):
    g, behaviour, files = tiny_registry
    events = []
    h, info = zoo.load_generator_by_id("tinychurch", progress=events.append)
    _same(g, h)
    assert info["name"] == "tinychurch" and info["source_format"] == "nvidia-tf-pkl"
    assert info["path"] == str(zoo.converted_path("tinychurch")) and events
    rec = zoo.read_records()["tinychurch"]
    assert rec["sha256"] == hashlib.sha256(files["stylegan2-tiny-config-f.pkl"]).hexdigest()
    assert rec["size_bytes"] == len(files["stylegan2-tiny-config-f.pkl"])
    assert zoo.is_downloaded("tinychurch")
    # Second use: from the converted cache, no request.
    n = len(behaviour.requests)
    h2, _ = zoo.load_generator_by_id("tinychurch")
    assert len(behaviour.requests) == n
    _same(g, h2)
    h3, info3 = zoo.load_generator_by_id("tinyada")
    assert info3["source_format"] == "nvidia-ada-pkl"
    _same(g, h3)


def test_a_later_download_must_match_the_first(tiny_registry):
    _, behaviour, files = tiny_registry
    zoo.load_generator_by_id("tinychurch")
    zoo.converted_path("tinychurch").unlink()
    zoo.raw_path(zoo.GENERATORS["tinychurch"]).unlink()
    behaviour.files["stylegan2-tiny-config-f.pkl"] = files["tinyada.pkl"]  # the mirror now serves another file
    with pytest.raises(DownloadError, match="removed"):
        zoo.load_generator_by_id("tinychurch")
    assert not zoo.is_downloaded("tinychurch")


def test_wrong_resolution_from_a_mirror_is_refused(tiny_registry, monkeypatch):
    monkeypatch.setitem(zoo.GENERATORS, "tinychurch", dataclasses.replace(zoo.GENERATORS["tinychurch"], resolution=256))
    with pytest.raises(CheckpointError, match="is a 32 px generator, but tinychurch should be 256 px"):
        zoo.load_generator_by_id("tinychurch")
    assert not zoo.converted_path("tinychurch").exists()


def test_file_put_in_place_by_hand_is_used_offline(tmp_path, monkeypatch):
    g = tiny_generator(32, seed=11)
    monkeypatch.setitem(zoo.GENERATORS, "tinychurch", _entry("tinychurch", "stylegan2-tiny-config-f.pkl"))
    monkeypatch.setenv("NADA_TUI_MIRROR", f"http://127.0.0.1:{free_port()}/")
    with pytest.raises(DownloadError) as err:
        zoo.load_generator_by_id("tinychurch")
    dest = zoo.raw_path(zoo.GENERATORS["tinychurch"])
    assert f"put it at {dest}" in str(err.value)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_tf_pickle(dest, g)
    h, _ = zoo.load_generator_by_id("tinychurch")
    _same(g, h)


def test_clip_download_is_verified(tmp_path, monkeypatch):
    payload = b"not really clip" * 1000
    sha = hashlib.sha256(payload).hexdigest()
    with serve(Behaviour(files={"Tiny.pt": payload, "Bad.pt": payload})) as base:
        monkeypatch.setenv("NADA_TUI_MIRROR", base)
        base_url = official_models.CLIP_BASE
        monkeypatch.setitem(zoo.CLIP_MODELS, "Tiny", zoo.ClipEntry("Tiny", f"{base_url}{sha}/Tiny.pt", sha))
        path = zoo.download_clip_file("Tiny")
        assert path.read_bytes() == payload and zoo.is_downloaded("Tiny")
        bad = "1" * 64
        monkeypatch.setitem(zoo.CLIP_MODELS, "Bad", zoo.ClipEntry("Bad", f"{base_url}{bad}/Bad.pt", bad))
        with pytest.raises(DownloadError, match="corrupt"):
            zoo.download_clip_file("Bad")
        assert not zoo.is_downloaded("Bad") and not any(zoo.clip_dir().glob("Bad.pt*"))


def test_unknown_names_and_local_paths(tmp_path):
    with pytest.raises(CheckpointError, match="unknown model 'nope'.*ffhq"):
        zoo.load_generator_by_id("nope")
    g = tiny_generator(32, seed=1)
    save_rosinality(g, tmp_path / "mine.pt")
    h, info = zoo.load_generator_by_id(str(tmp_path / "mine.pt"))
    assert info["format"] == "rosinality"
    _same(g, h)
    with pytest.raises(KeyError, match="unknown CLIP model"):
        zoo.load_clip_by_name("ViT-Z/99")


def test_import_checkpoint(tmp_path):
    g = tiny_generator(32, seed=1)
    src = write_ada_pickle_from_generator(tmp_path / "network-snapshot-000100.pkl", g)
    info = zoo.import_checkpoint(src, "my-dogs", source_prompt="a photo of a dog")
    assert info["format"] == "nvidia-ada-pkl"
    assert "my-dogs" in zoo.imported_names() and zoo.is_downloaded("my-dogs")
    h, info2 = zoo.load_generator_by_id("my-dogs")
    assert info2["source_prompt"] == "a photo of a dog"
    _same(g, h)
    for bad in ("../evil", "a/b", "", "ffhq"):
        with pytest.raises(ValueError):
            zoo.import_checkpoint(src, bad)
    with pytest.raises(ValueError, match="already exists"):
        zoo.import_checkpoint(src, "my-dogs")


# ----- command line -------------------------------------------------------------------------------------
def test_models_list_offline_on_a_fresh_install(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("ffhq", "afhqdog", "church", "ViT-B/32", "ViT-B/16"):
        assert f"\n{name} " in out
    assert "demo-tiny" in out and "DEMO" in out and "not downloaded" in out
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"ffhq", "afhqdog", "church", DEMO_GENERATOR_ID}


def test_models_download_and_import_cli(tiny_registry, tmp_path, capsys):
    g, _, _ = tiny_registry
    assert main(["models", "download", "tinychurch", DEMO_CLIP_ID]) == 0
    captured = capsys.readouterr()
    assert "tinychurch: ready at" in captured.out and "nothing to download" in captured.out
    assert "tinychurch" in captured.err and "100.0%" in captured.err  # progress bar on stderr
    save_rosinality(g, tmp_path / "ckpt.pt")
    assert main(["models", "import", str(tmp_path / "ckpt.pt"), "--name", "mine"]) == 0
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "\nmine " in out and "\ntinychurch " in out
    assert main(["models", "import", str(tmp_path / "nothing.pt"), "--name", "x"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["models", "import", str(tmp_path / "ckpt.pt"), "--name", "a/b"]) == 2


def test_models_download_offline_and_unknown(monkeypatch, capsys):
    monkeypatch.setenv("NADA_TUI_MIRROR", f"http://127.0.0.1:{free_port()}/")
    assert main(["models", "download", "church", "-q"]) == 1
    err = capsys.readouterr().err
    assert "put it at" in err and str(zoo.raw_path(zoo.GENERATORS["church"])) in err
    assert main(["models", "download", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["models"]) == 2


def test_two_threads_share_one_download_and_conversion(tiny_registry):
    import threading

    g, behaviour, _ = tiny_registry
    results, errors = [], []

    def load():
        try:
            results.append(zoo.load_generator_by_id("tinychurch")[0])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 2
    assert len([r for r in behaviour.requests if r[0].endswith("stylegan2-tiny-config-f.pkl")]) == 1
    assert [p.name for p in zoo.generators_dir().iterdir() if ".tmp" in p.name or ".part" in p.name] == []
    for h in results:
        _same(g, h)


def test_weight_files_download_once_verified_and_refuse_a_corrupt_copy(tmp_path, monkeypatch):
    payload = b"tiny landmark weights" * 500
    good = weight_files.WeightFile("tiny", "https://example.org/w/tiny.pth", hashlib.sha256(payload).hexdigest(),
                                   len(payload), "the tiny test model")
    bad = dataclasses.replace(good, name="bad", url="https://example.org/w/bad.pth", sha256="0" * 64)
    with serve(Behaviour(files={"tiny.pth": payload, "bad.pth": payload})) as base:
        monkeypatch.setenv("NADA_TUI_MIRROR", base)
        monkeypatch.setitem(weight_files.WEIGHT_FILES, "tiny", good)
        monkeypatch.setitem(weight_files.WEIGHT_FILES, "bad", bad)
        path = weight_files.ensure_weight_file("tiny")
        assert path == weight_files.weights_dir() / "tiny.pth" and path.read_bytes() == payload
        with pytest.raises(DownloadError, match="corrupt"):
            weight_files.ensure_weight_file("bad")
        assert not any(weight_files.weights_dir().glob("bad.pth*"))
    assert weight_files.ensure_weight_file("tiny") == path  # cached: no server needed any more
