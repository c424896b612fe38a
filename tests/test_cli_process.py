"""The command line as separate processes: a new user's first run, signals, and SIGKILL at random moments.

Each test starts `python -m nada_tui` with the XDG dirs of the test's private home (the autouse fixture
sets them in os.environ, which the child inherits)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import paths, runs, sessions
from nada_tui.__main__ import main

REPO = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """The test's XDG dirs (read now: the fixture sets them per test), and one OpenMP thread: two spin
    against the other jobs on a shared 2-core machine and run 10x slower."""
    assert "XDG_DATA_HOME" in os.environ
    return {**os.environ, "OMP_NUM_THREADS": "1"}


FAST = ["--batch", "1", "--layer-batch", "2", "--interval", "3", "--device", "cpu"]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nada_tui", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
    )


class Child:
    """A CLI process whose output goes to files (a full pipe would stall it)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.err_path = tmp / f"stderr-{time.monotonic_ns()}.txt"
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nada_tui", *args],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=child_env(),
            )

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()[-3000:]

    def wait_for(self, predicate, timeout: float = 600.0) -> None:
        # A guard against a hang, not a speed check: it ends as soon as `predicate` holds, and a busy machine
        # can take minutes to start Python and import torch (120 s was not always enough).
        end = time.monotonic() + timeout
        while not predicate():
            if self.proc.poll() is not None:
                pytest.fail(f"the process ended early ({self.proc.returncode}): {self.stderr}")
            if time.monotonic() > end:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"timed out waiting for the run to get going: {self.stderr}")
            time.sleep(0.02)


def metric_lines(path: Path) -> int:
    try:
        return (path / "metrics.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def only_session() -> Path | None:
    root = paths.sessions_dir()
    found = [p for p in root.iterdir() if not p.name.startswith(".")] if root.exists() else []
    return found[0] if len(found) == 1 else None


def test_a_new_user_trains_lists_and_generates(tmp_path):
    res = cli("train", "--demo", "--source", "a red image", "--target", "a blue image", "--iters", "50")
    assert res.returncode == 0, res.stderr
    assert "Finished at step 50/50" in res.stdout
    sid = next(line.split()[1] for line in res.stdout.splitlines() if line.startswith("session "))
    assert "step 50/50" in res.stderr  # plain progress lines: stderr is not a terminal here
    listed = cli("sessions", "list")
    assert listed.returncode == 0 and sid in listed.stdout and "finished" in listed.stdout
    out = tmp_path / "x"
    gen = cli("generate", sid, "-n", "8", "--out", str(out))
    assert gen.returncode == 0, gen.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"seed_{i:06d}.png" for i in range(8)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_and_exit_within_5_s(sig, tmp_path):
    child = Child(
        tmp_path, "train", "--demo", "--iters", "100000", "--checkpoint-every", "0", "--preview-every", "0", *FAST
    )
    child.wait_for(lambda: (p := only_session()) is not None and metric_lines(p) >= 3)
    t0 = time.monotonic()
    child.proc.send_signal(sig)
    try:
        child.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.proc.kill()
        child.proc.wait()
        pytest.fail(f"{sig.name}: still running 5 s after the signal")
    took = time.monotonic() - t0
    assert child.proc.returncode == 128 + sig, child.stderr
    [info] = sessions.list_sessions()
    assert info.ok and info.status == "stopped" and info.step >= 3, info
    assert info.data["stop_reason"] == sig.name and info.data["checkpoint"]["reason"] == "signal"
    assert sessions.read_state(info.path / "checkpoint.safetensors")["step"] == info.step
    assert (info.path / "grid.png").is_file()
    print(f"{sig.name}: saved and exited in {took:.2f} s at step {info.step}")


def test_sigkill_at_random_moments_always_leaves_a_resumable_session(tmp_path):
    """Checkpoint and preview every step, so kills land in the middle of writes too."""
    rng = random.Random()
    path: Path | None = None
    delays = []
    for trial in range(4):
        if trial == 0:
            child = Child(
                tmp_path,
                "train",
                "--demo",
                "--iters",
                "100000",
                "--checkpoint-every",
                "1",
                "--preview-every",
                "1",
                *FAST,
            )
            child.wait_for(lambda: only_session() is not None)
            path = only_session()
        else:
            assert path is not None
            before, where = metric_lines(path), path
            child = Child(tmp_path, "resume", path.name, "--checkpoint-every", "1", "--device", "cpu")
            child.wait_for(lambda where=where, before=before: metric_lines(where) > before)
        delays.append(round(rng.uniform(0, 1.0), 3))
        time.sleep(delays[-1])
        child.proc.kill()
        child.proc.wait()
        [info] = sessions.list_sessions()
        assert info.ok, f"trial {trial} (delays {delays}): {info.damaged}"
        assert info.status in ("interrupted", "running"), info.status
        ckpt_step = sessions.read_state(info.path / "checkpoint.safetensors")["step"]
        assert info.step <= ckpt_step
        run = runs.resume_session(info.id, device="cpu")  # resumable, from the file's step
        try:
            assert run.trainer.step_count == ckpt_step
            assert [r.step for r in sessions.read_metrics(info.path)] == list(range(1, ckpt_step + 1))
        finally:
            run.close()
    # After all that, one clean resume to a fixed end finishes normally.
    assert path is not None
    step = sessions.read_state(path / "checkpoint.safetensors")["step"]
    # In this process: the kills are over, and a fifth Python start with torch's import adds nothing.
    assert main(["resume", path.name, "--iters", str(step + 2), "--device", "cpu"]) == 0
    assert sessions.load(path.name).status == "finished"
