"""The command line in-process: train/resume/sessions/generate, their messages and exit codes."""

from __future__ import annotations

import json

import pytest
from _sessions import cli_train

from engine import paths, sessions
from nada_tui.__main__ import main

pytestmark = pytest.mark.usefixtures("small_demo", "one_thread")





def test_train_then_list_show_rename_resume_delete(capsys):
    sid = cli_train(capsys, "--name", "first try")
    assert main(["sessions", "list"]) == 0
    out = capsys.readouterr().out
    assert sid in out and "finished" in out and "3/3" in out and "first try" in out
    assert main(["sessions", "list", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["id"] == sid and row["status"] == "finished" and row["damaged"] is None
    assert main(["sessions", "show", sid[:10]]) == 0
    out = capsys.readouterr().out
    assert "'a red image' -> 'a blue image'" in out and "3 metric lines" in out
    assert main(["sessions", "rename", sid, "blue", "shift"]) == 0
    assert sessions.load(sid).name == "blue shift"
    capsys.readouterr()
    assert main(["resume", sid]) == 2  # finished: needs --iters
    assert "--iters" in capsys.readouterr().err
    assert main(["resume", sid, "--iters", "5", "--device", "cpu"]) == 0
    assert "Finished at step 5/5" in capsys.readouterr().out
    assert main(["sessions", "delete", sid]) == 2  # stdin is not a terminal: --yes is needed
    assert main(["sessions", "delete", sid, "--yes"]) == 0
    assert sessions.list_sessions() == []


def test_usage_errors_exit_2_and_leave_nothing(capsys):
    cases = [
        (["train", "--source", "a", "--target", "b"], "--demo"),
        (["train", "--demo", "--lr", "5"], "lr"),
        (["train", "--demo", "--source", "a blue image", "--target", "a blue image"], "same"),
        (["train", "--demo", "--target", ""], "target"),
        (["train", "--demo", "--global-weight", "2"], "global_weight"),
        (["train", "--checkpoint", "/no/such/file.pt"], "does not exist"),
        (["resume", "nothing-here"], "No session"),
        (["sessions", "show", "../etc"], "not a session id"),
        (["generate", "x", "--out", "/tmp/never"], "No session"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        assert words in capsys.readouterr().err, argv
    assert not paths.sessions_dir().exists() or sessions.list_sessions() == []


def test_ambiguous_prefix_lists_the_candidates(capsys):
    ids = [cli_train(capsys, "--name", n) for n in ("one", "two")]
    prefix = "2"  # every id starts with the year
    assert main(["sessions", "show", prefix]) == 2
    err = capsys.readouterr().err
    assert "matches 2 sessions" in err and all(i in err for i in ids)


def test_second_writer_is_refused_with_the_owner_pid(capsys):
    sid = cli_train(capsys)
    writer, _ = sessions.open_writer(sid)
    writer.set_status("running")
    try:
        assert main(["resume", sid, "--iters", "5"]) == 1
        assert "being written by process" in capsys.readouterr().err
        assert main(["sessions", "delete", sid, "--yes"]) == 1
        assert main(["sessions", "list"]) == 0
        assert "running" in capsys.readouterr().out  # the lock holder is alive
    finally:
        writer.close()
    assert main(["sessions", "list"]) == 0
    assert "interrupted" in capsys.readouterr().out  # said "running", but nobody holds it now


def test_damaged_sessions_in_the_cli_list(capsys):
    sid = cli_train(capsys)
    (sessions.session_path(sid) / "session.json").write_text("{")
    (paths.sessions_dir() / "20200101-000000-empty").mkdir()
    assert main(["sessions", "list"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("damaged") == 2
    assert "not valid JSON" in captured.err and "session.json is missing" in captured.err
    assert main(["resume", sid]) == 1
    assert "damaged" in capsys.readouterr().err
    assert main(["sessions", "delete", sid, "20200101", "--yes"]) == 0
    assert sessions.list_sessions() == []


def test_empty_list_says_how_to_start(capsys):
    assert main(["sessions", "list"]) == 0
    assert "nada-tui train --demo" in capsys.readouterr().out
    assert main(["sessions"]) == 2


def test_clip_flag_parsing():
    from engine.config import parse_clip_spec

    assert parse_clip_spec("ViT-B/32") == ("ViT-B/32", 1.0)
    assert parse_clip_spec("ViT-B/16:0.5") == ("ViT-B/16", 0.5)
    assert parse_clip_spec("ViT-B/16=0.5") == ("ViT-B/16", 0.5)
    assert parse_clip_spec("/models/my:clip.pt") == ("/models/my:clip.pt", 1.0)


def test_progress_bar_on_a_terminal_and_plain_lines_otherwise():
    import io

    from engine.events import LogMessage, StepMetrics
    from nada_tui.cli._common import ProgressPrinter

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    def metrics(step: int) -> StepMetrics:
        return StepMetrics(
            step=step,
            total_steps=20,
            losses={"total": 0.5},
            lr=0.0016,
            it_per_s=4.0,
            elapsed_s=1.0,
            trained_indices=(1,),
            k=1,
            scores=None,
            next_selection=None,
            global_weight=0.0,
        )

    tty, plain = Tty(), io.StringIO()
    for stream in (tty, plain):
        printer = ProgressPrinter(stream)
        for step in range(1, 21):
            printer(metrics(step))
        printer(LogMessage("error", "disk full"))
        printer.close()
    assert "\r" in tty.getvalue() and "step 20/20 [" in tty.getvalue() and "100%" in tty.getvalue()
    assert "4.0 it/s" in tty.getvalue() and "ETA 0:00" in tty.getvalue() and "error: disk full\n" in tty.getvalue()
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue() and lines[0].startswith("step 1/20") and "ETA 0:04" in lines[0]
    assert len(lines) == 12 and lines[-2].startswith("step 20/20") and lines[-1] == "error: disk full"
