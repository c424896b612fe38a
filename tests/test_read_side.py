"""The read side: `sessions list|show` and `models list` never import torch or textual (so they start at
once), metrics come back typed, an unknown model has its own error, sessions are found by any name, and a
broken sessions folder or session.json is reported, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _sessions import demo_session, fill_disk_after

from engine import paths, runs, sessions, zoo
from engine.config import DEMO_GENERATOR_ID, demo_config
from engine.errors import CheckpointError, UnknownModel
from nada_tui.__main__ import main

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "textual")

# Runs one command in a fresh interpreter and reports, after it, which heavy packages it imported.
PROBE = f"""
import json, sys
from nada_tui.__main__ import main
code = main(sys.argv[1:])
print("\\nIMPORTED " + json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
sys.exit(code)
"""


def probe(*argv: str) -> tuple[int, str, list[str]]:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    last = done.stdout.rstrip().rsplit("\n", 1)[-1]
    assert last.startswith("IMPORTED "), done.stdout + done.stderr
    return done.returncode, done.stdout + done.stderr, json.loads(last.removeprefix("IMPORTED "))


@pytest.mark.usefixtures("small_demo")
def test_read_commands_import_neither_torch_nor_textual():
    sid = demo_session(iterations=2, target_images=())
    sessions.rename(sid, "dogs/cats")
    for argv in (["sessions", "list"], ["sessions", "list", "--json"], ["sessions", "show", sid],
                 ["sessions", "show", "dogs/cats"], ["models", "list"], ["models", "list", "--json"]):
        code, out, heavy = probe(*argv)
        assert code == 0, out
        assert heavy == [], f"{' '.join(argv)} imported {heavy}"
    assert "dogs/cats" in probe("sessions", "show", "dogs/cats")[1]


@pytest.mark.usefixtures("small_demo")
def test_metrics_come_back_as_typed_records():
    sid = demo_session(iterations=3)
    lines = sessions.read_metrics(sessions.load(sid).path)
    assert [line.step for line in lines] == [1, 2, 3]
    first = lines[0]
    assert isinstance(first, sessions.MetricsLine)
    assert isinstance(first.total, float) and first.lr is not None and first.lr > 0
    assert isinstance(first.trained, tuple) and first.pins is None  # no pins: no "pins" in the line
    assert sessions.MetricsLine.from_json(first.to_json()) == first


def test_a_garbled_metrics_line_is_skipped(tmp_path):
    (tmp_path / sessions.METRICS_FILE).write_text(
        '{"step": 1, "losses": {"total": 0.5}}\n{"step": "x"}\n[1, 2]\n'
        '{"step": 2, "losses": {"total": null}, "k": "?"}\n'
        '{"step": 3, "losses": [1]\n'
    )
    lines = sessions.read_metrics(tmp_path)
    assert [(line.step, line.total, line.k) for line in lines] == [(1, 0.5, None), (2, None, None)]


def test_unknown_model_has_its_own_error(capsys):
    with pytest.raises(UnknownModel) as err:
        zoo.resolve_model("no-such-model")
    assert isinstance(err.value, CheckpointError) and isinstance(err.value, KeyError)  # what callers caught
    assert str(err.value).startswith("unknown model 'no-such-model'")  # not quoted, as a KeyError would be
    for call in (lambda: zoo.load_generator_by_id("no-such-model"), lambda: zoo.ensure_downloaded("nope"),
                 lambda: zoo.load_clip_by_name("nope")):
        with pytest.raises(UnknownModel):
            call()
    assert main(["train", "--model", "no-such-model", "--source", "a", "--target", "b"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_resolve_model_names_and_paths(tmp_path):
    church = zoo.resolve_model("church")
    assert (church.id, church.source_prompt, church.demo) == ("church", "a photo of a church", False)
    assert zoo.resolve_model("demo-tiny").demo
    f = tmp_path / "mine.pt"
    f.write_bytes(b"PK\x03\x04")
    assert zoo.resolve_model(str(f)) == zoo.ModelChoice(str(f.resolve()), "")
    with pytest.raises(CheckpointError, match="does not exist"):
        zoo.resolve_model(str(tmp_path / "gone.pt"))


def test_sessions_folder_that_is_a_file_is_reported(capsys):
    data = paths.sessions_dir().parent
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("not a folder")
    for argv in (["sessions", "list"], ["sessions", "show", "x"]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert f"{data} is a file, not a folder" in err and "Traceback" not in err
    assert main(["train", "--demo", "--iters", "1", "--device", "cpu"]) == 1
    assert f"Cannot save sessions in {paths.sessions_dir()}: {data} is a file, not a folder" in capsys.readouterr().err


@pytest.mark.usefixtures("small_demo")
@pytest.mark.parametrize(("field", "value", "reason"), [
    ("config", [1, 2], "session.json's 'config' is a list, not a table of settings"),
    ("base_model", "church", "session.json's 'base_model' is a string, not a table"),
    ("clip_models", None, "session.json's 'clip_models' is null, not a list"),
])
def test_session_json_fields_of_the_wrong_type_are_damage(capsys, field, value, reason):
    sid = demo_session(iterations=1)
    path = sessions.load(sid).path
    data = json.loads((path / sessions.SESSION_FILE).read_text())
    data[field] = value
    (path / sessions.SESSION_FILE).write_text(json.dumps(data))
    assert main(["sessions", "list"]) == 0
    assert f"damaged: {sid}: {reason}" in capsys.readouterr().err
    assert main(["sessions", "show", sid]) == 0
    out = capsys.readouterr().out
    assert f"status     damaged: {reason}" in out


@pytest.mark.usefixtures("small_demo")
def test_any_name_is_a_reference(capsys):
    a = demo_session(iterations=1)
    b = demo_session(iterations=1)
    sessions.rename(a, "a/b")
    sessions.rename(b, "..")
    assert sessions.resolve("a/b").name == a and sessions.resolve("A/B").name == a
    assert sessions.resolve("..").name == b  # a name, though it could never be an id
    assert main(["sessions", "show", "a/b"]) == 0
    assert capsys.readouterr().out.startswith(f"{a}  'a/b'")
    with pytest.raises(sessions.SessionNotFound, match="not a session id"):
        sessions.resolve("../etc")


@pytest.mark.usefixtures("small_demo")
def test_a_read_only_or_full_data_folder_is_named(monkeypatch):
    data = Path(os.environ["XDG_DATA_HOME"])
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if self.is_relative_to(data) and not self.exists():
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Path, "mkdir", read_only)
        with pytest.raises(sessions.SessionsFolderError, match=f"{data} is on a read-only file system"):
            runs.start_session(demo_config(iterations=1), DEMO_GENERATOR_ID, device="cpu")
    fill_disk_after(monkeypatch, 0)
    with pytest.raises(sessions.SessionsFolderError, match=f"the disk holding {paths.sessions_dir()} is full"):
        runs.start_session(demo_config(iterations=1), DEMO_GENERATOR_ID, device="cpu")
    assert sessions.list_sessions() == []
