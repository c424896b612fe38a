"""Issue 11, section 3: what the command line and the engine say about full disks, broken pipes, capped or
odd settings, truncated files and forks. Each test failed before its fix."""

from __future__ import annotations

import pytest
from _sessions import FAST, cli_train, fill_disk_after

from engine import events, sessions
from nada_tui.__main__ import main
from nada_tui.run_buffer import RunBuffer

pytestmark = pytest.mark.usefixtures("small_demo", "one_thread")








# ----- 2. a failed final save is not reported as finished ------------------------------------------
def test_failed_final_save_says_what_the_session_holds(capsys, monkeypatch):
    fill_disk_after(monkeypatch, 2)  # creation (step 0) and the interval checkpoint at step 2
    assert main(["train", "--demo", "--iters", "4", "--checkpoint-every", "2", *FAST]) == 1
    out, err = capsys.readouterr()
    assert "Finished" not in out and "Sample it with" not in out
    assert "Trained to step 4/4" in out and "the session holds step 2/4" in out
    assert "continue from step 2 with: nada-tui resume" in out
    assert "previous checkpoint (step 2) is intact" in err
    for line in err.splitlines():  # said once per line, no "intact.. The previous checkpoint is intact."
        assert line.count("intact") <= 1 and "intact.." not in line, line
    [info] = sessions.list_sessions()
    assert (info.status, info.step) == ("interrupted", 2)  # what the summary said


def test_the_worker_event_carries_the_step_saved(monkeypatch):
    from engine import runs
    from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, TrainConfig

    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=((DEMO_CLIP_ID, 1.0),),
                      iterations=4, batch=1, auto_layer_batch=2, preview_every=0)
    fill_disk_after(monkeypatch, 2)
    got: list = []
    with runs.start_session(cfg, DEMO_GENERATOR_ID, device="cpu", checkpoint_every=2) as run:
        res = runs.train_session(run, on_event=got.append, handle_signals=False)
    end = got[-1]
    assert isinstance(end, events.TrainingFinished) and end.step == 4
    assert end.saved_step == 2 and not end.saved
    assert res.saved_step == 2 and not res.saved
    [log] = [e.text for e in got if isinstance(e, events.LogMessage) and e.level == "error"]
    assert "step 4 failed: The disk is full (No space left on device)." in log
    assert "intact (step 2)" in log and "resume" in log and log.count("intact") == 1


def test_the_app_buffer_says_not_saved() -> None:
    buf = RunBuffer("run-1", None, "demo-tiny", session_id="s1", state="running")
    notice = buf.apply(events.TrainingFinished(300, {"total": 0.5}, saved_step=50))
    assert buf.state == "not saved" and not buf.active
    assert notice is not None and notice.severity == "error" and notice.title == "Not saved"
    assert "finished" not in notice.text.lower() and "holds step 50" in notice.text
    assert buf.log[-1][1] == "error" and "Session saved" not in buf.log[-1][2]
    saved = buf.apply(events.TrainingFinished(300, {"total": 0.5}, saved_step=300))
    assert saved is not None and saved.text.endswith("Session saved.") and buf.state == "finished"


# ----- 6. the command line ---------------------------------------------------------------------------
def bare_session() -> str:
    """A session at step 0, made without training (cheap)."""
    import torch

    from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, TrainConfig

    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=((DEMO_CLIP_ID, 1.0),))
    state = dict(step=0, config=cfg.to_dict(), weights={}, param_names=[], optimizer={}, scores=None,
                 rng=torch.Generator().manual_seed(0).get_state())
    with sessions.create(state, {"id": DEMO_GENERATOR_ID}, name="piped") as writer:
        return writer.id


@pytest.mark.parametrize("argv", [["sessions", "show", "ID"], ["sessions", "list"]])
def test_a_closed_pipe_ends_quietly(argv):
    import os
    import subprocess
    import sys

    sid = bare_session()
    read, write = os.pipe()
    os.close(read)  # like `| head -1` once it has its line: every write to stdout now fails
    try:
        proc = subprocess.run([sys.executable, "-m", "nada_tui", *[sid if a == "ID" else a for a in argv]],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.stderr == "" and proc.returncode == 141


def test_k_above_the_generator_is_said_once(capsys):
    assert main(["train", "--demo", "--iters", "1", "--k", "99", *FAST]) == 0
    err = capsys.readouterr().err
    assert err.count("k=99") == 1, err
    assert "warning: k=99 is more than this generator has" in err and "is used" in err


def test_negative_values_reach_the_settings_check(capsys):
    for argv, expect in ((["--preview-seeds", "-1,2"], "seeds are whole numbers 0 or more; got -1"),
                         (["--lr", "-1"], "lr: got -1.0")):
        try:  # argparse's own check exits; the settings' check returns 2
            code = main(["train", "--demo", *argv])
        except SystemExit as exc:
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err
        assert expect in err and "expected one argument" not in err, err
    assert not sessions.list_sessions()


def test_an_unknown_device_lists_the_ones_there_are(capsys):
    assert main(["train", "--demo", "--iters", "1", "--batch", "1", "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert "'tpu' is not a device" in err and "auto, cpu, cuda or cuda:N" in err
    assert "Expected one of" not in err  # torch's list of every device type it was built to know
    assert not sessions.list_sessions()


def test_a_truncated_checkpoint_lists_as_damaged(capsys):
    sid = cli_train(capsys)
    ckpt = sessions.session_path(sid) / sessions.CHECKPOINT_FILE
    whole = ckpt.read_bytes()
    ckpt.write_bytes(whole[: len(whole) - 10])
    assert main(["sessions", "list"]) == 0
    out, err = capsys.readouterr()
    assert "damaged" in out and "finished" not in out
    assert f"{sid}: {sessions.CHECKPOINT_FILE} is truncated ({len(whole) - 10} of the {len(whole)} bytes" in err


def test_a_truncated_metrics_file_is_said_on_resume(capsys):
    sid = cli_train(capsys, "--iters", "4")
    metrics = sessions.session_path(sid) / sessions.METRICS_FILE
    metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:2]))
    assert main(["resume", sid, "--iters", "5", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "warning: metrics.jsonl has no lines for 2 of the 4 saved steps (steps 3-4)" in err
    assert err.count("metrics.jsonl") == 1


def test_out_of_range_config_values_are_reported_once(tmp_path):
    from nada_tui.user_config import load_settings

    path = tmp_path / "config.toml"
    path.write_text('[chart]\nsmoothing = 5\nlog_scale = "yes"\n')
    s = load_settings(path)
    assert s.smoothing == 0.99
    assert [p for p in s.problems if "smoothing = 5 is outside 0 to 0.99; using 0.99" in p]
    assert [p for p in s.problems if "log_scale must be true or false" in p] and len(s.problems) == 2


# ----- 7. forks from the command line -----------------------------------------------------------------
def test_sessions_fork_trains_a_new_session_while_the_parent_is_locked(capsys):
    parent = cli_train(capsys)
    writer, _ = sessions.open_writer(parent)  # another process trains it
    try:
        assert main(["resume", parent, "--iters", "5"]) == 1
        hint = capsys.readouterr().err
        assert f"nada-tui sessions fork {parent} --target" in hint
        assert main(["sessions", "fork", parent]) == 2
        assert "--target is required" in capsys.readouterr().err
        assert main(["sessions", "fork", parent, "--from", "adapted", "--source", "a blue image", "--target",
                     "a green image", "--iters", "2", "--name", "greener", *FAST]) == 0
        out = capsys.readouterr().out
        assert "Finished at step 2/2" in out
        child = next(line.split()[1] for line in out.splitlines() if line.startswith("session "))
        assert main(["sessions", "fork", parent[:-3], "--target", "a green image", "--iters", "1", "--quiet",
                     *FAST]) == 0
        from_base = capsys.readouterr().out.strip()
    finally:
        writer.close()
    info = sessions.load(child)
    assert (info.name, info.source, info.target, info.iterations) == ("greener", "a blue image", "a green image", 2)
    assert info.status == "finished" and info.data["parent"] == {"id": parent, "step": 3, "from_weights": True}
    assert sessions.start_weights(info)  # it started from the parent's adapted weights
    base = sessions.load(from_base)
    assert base.parent_id == parent and not base.data["parent"]["from_weights"] and not sessions.start_weights(base)
    assert base.source == "a red image" and base.iterations == 1
