"""`nada-tui sweep` (issue 12, 18): `--dry-run`, a bad file's exit, a demo sweep through submitit's local
executor (refused again, nothing to resume), a run whose final save failed, `sweep status` and
`sweep delete`, and the light imports of the sweep modules and of `sweep status`.

The runs are separate processes; they find the test's private data dir through the XDG variables the
sweep passes to every job explicitly.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _sweeps import check_three_finished, demo_file, finished_sessions, parse, write

from engine import sweeps
from nada_tui.__main__ import main


def test_dry_run_prints_the_runs_and_submits_nothing(tmp_path, capsys):
    p = demo_file(tmp_path, "dry")
    assert main(["sweep", str(p), "--dry-run", "--executor", "local", "--parallel", "2"]) == 0
    out = capsys.readouterr().out
    assert "sweep 'dry': 3 run(s), varying target" in out
    assert "a yellow image" in out and "iters=3" in out
    assert "would run here: 2 at a time on CPU" in out
    assert not sweeps.sweeps_dir().exists()


def test_dry_run_plans_one_run_per_visible_gpu(tmp_path, capsys, monkeypatch):
    from engine.sweeps import execute

    monkeypatch.setattr(execute, "visible_gpus", lambda: [3, 5])
    p = demo_file(tmp_path, "gpus")
    assert main(["sweep", str(p), "--dry-run", "--executor", "local"]) == 0
    assert "would run here: 2 at a time on GPUs 3,5" in capsys.readouterr().out
    assert main(["sweep", str(p), "--dry-run", "--executor", "local", "--device", "cpu"]) == 0
    assert "would run here: 1 at a time on CPU" in capsys.readouterr().out


def test_bad_file_exits_2_with_the_line(tmp_path, capsys):
    p = write(tmp_path, "[defaults]\ndemo = true\n[grid]\nglobal_weight = [2]\n")
    assert main(["sweep", str(p), "--dry-run"]) == 2
    assert f"{p}:4: global_weight: got 2.0" in capsys.readouterr().err
    assert main(["sweep", "status", "nothing-here"]) == 2
    assert "no sweep named 'nothing-here'" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_sweep_through_the_local_executor(tmp_path, capsys):
    p = demo_file(tmp_path, "local colours")
    assert main(["sweep", str(p), "--executor", "local", "--parallel", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 finished" in out
    check_three_finished("local colours", capsys)
    logs = sweeps.sweep_dir("local colours") / sweeps.LOGS_DIR
    assert any("finished at step 3/3" in f.read_text() for f in logs.glob("*_log.out"))
    # The same file again is refused; --resume has nothing left to do.
    assert main(["sweep", str(p), "--executor", "local"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["sweep", str(p), "--executor", "local", "--resume"]) == 0
    assert "nothing to resume" in capsys.readouterr().out


@pytest.mark.slow
def test_a_run_whose_final_save_failed_is_reported_as_train_reports_it(tmp_path, capsys, monkeypatch):
    from _sessions import fill_disk_in_children

    from engine import sessions

    fill_disk_in_children(monkeypatch, tmp_path / "site", good_checkpoints=1)  # creation's write succeeds
    p = demo_file(tmp_path, "full disk", grid=False)
    assert main(["sweep", str(p), "--executor", "local"]) == 1
    out = capsys.readouterr().out
    (info,) = finished_sessions("full disk")
    assert (info.status, info.step) == ("interrupted", 0)
    assert f"run 1/1 trained to step 3/3, but saving it failed: session {info.id} holds step 0/3" in out
    assert "The disk is full" in out and "1 not saved" in out and "finished" not in out
    assert f"Free some disk space, then continue the runs that were not saved with: nada-tui sweep {p}" in out
    # sweep status agrees with the session: the saved step, not the trainer's
    assert main(["sweep", "status", "full disk", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["status"], row["step"], row["session"]) == ("interrupted", 0, info.id)
    assert sessions.read_info(info.path).step == row["step"]


@pytest.mark.usefixtures("small_demo")  # the test needs a finished session, not the 64 px demo's
def test_sweep_status_imports_neither_torch_nor_textual(tmp_path):
    from _sessions import demo_session

    sid = demo_session(iterations=2)
    record = sweeps.new_record(parse("name = 'light'\n[defaults]\ndemo = true\n[grid]\nseed = [1, 2]\n"))
    record.save()
    sweeps.write_run_start(record.dir, 0, sid, None)
    code = (
        "import sys\n"
        "from nada_tui.__main__ import main\n"
        "assert main(['sweep', 'status']) == 0\n"
        "assert main(['sweep', 'status', 'light']) == 0\n"
        "print(sorted({'torch', 'textual'} & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"{sid}" in out and "finished" in out  # it did read the session
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.usefixtures("small_demo")  # the test needs a finished session, not the 64 px demo's
def test_sweep_delete_forgets_the_record_and_keeps_the_sessions(tmp_path, capsys, monkeypatch):
    from _sessions import demo_session

    from engine import sessions

    sid = demo_session(iterations=2)
    p = demo_file(tmp_path, "forget me", grid=False)
    record = sweeps.new_record(sweeps.load_sweep(p))
    record.save()
    sweeps.write_run_start(record.dir, 0, sid, None)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert main(["sweep", "delete", "forget me"]) == 2
    assert "deleting needs confirmation: add --yes" in capsys.readouterr().err
    assert main(["sweep", "delete", "forget me", "--yes"]) == 0
    assert "deleted sweep 'forget me'" in capsys.readouterr().out
    assert sweeps.list_sweeps() == [] and sessions.read_info(sessions.session_path(sid)).status == "finished"
    assert main(["sweep", "delete", "forget me", "--yes"]) == 2
    assert "no sweep named 'forget me'" in capsys.readouterr().err
    # a damaged record can be deleted too
    record.save()
    (record.dir / sweeps.MANIFEST).write_text("{not json")
    assert main(["sweep", "status", "forget me"]) == 2
    assert "unreadable" in capsys.readouterr().err
    assert main(["sweep", "delete", "forget me", "-y"]) == 0
    assert not record.dir.exists()


def test_engine_modules_are_torch_free_at_import():
    code = (
        "import sys, engine.sweeps, nada_tui.cli.sweep; "
        "from engine.sweeps import checks, execute, fileformat, job, locator, plan, record, status, submit; "
        "print(sorted({'torch', 'submitit', 'textual'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
