"""`python -m engine.gpucheck` where no GPU is: its refusal, its time limits, its JSON summary; and the
test suite's own promise that TF32/cuDNN flags changed by a test are put back."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from _backend_flags import backend_flags_kept

from engine import gpucheck
from engine.gpucheck_parts import _busy_us


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_it_exits_2_and_says_what_to_do(capsys):
    assert gpucheck.main([]) == 2
    err = capsys.readouterr().err
    assert "gpucheck needs a CUDA GPU, and PyTorch sees none here" in err
    assert "--device cpu --dry" in err
    assert gpucheck.main(["--device", "cpu"]) == 2
    assert "add --dry" in capsys.readouterr().err


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_a_part_over_its_limit_is_killed_with_what_it_started():
    code = textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print("child", child.pid, flush=True)
        time.sleep(120)
    """)
    res = gpucheck.run_part([sys.executable, "-c", code], timeout_s=3)
    assert not res.ok and res.timed_out and res.error == "timed out after 3 s and was killed"
    assert res.seconds < 60
    [line] = [x for x in res.result["output_tail"] if x.startswith("child ")]
    # SIGKILL was sent to the group; on a busy machine the child may still show as running for a moment
    # before the kernel schedules its exit. It must be gone (a zombie at most) well inside 30 s.
    pid, end = int(line.split()[1]), time.monotonic() + 30
    while _state(pid) not in ("gone", "Z", "X") and time.monotonic() < end:
        time.sleep(0.05)
    assert _state(pid) in ("gone", "Z", "X")


def test_a_part_reports_through_its_tagged_line():
    ok = gpucheck.run_part([sys.executable, "-c", f"print({gpucheck.RESULT_TAG!r} + '{{\"ok\": true, \"x\": 1}}')"], 30)
    assert ok.ok and ok.result == {"ok": True, "x": 1} and ok.error is None
    bad = f"print('noise'); print({gpucheck.RESULT_TAG!r} + '{{\"ok\": false, \"error\": \"RuntimeError: boom\"}}')"
    failed = gpucheck.run_part([sys.executable, "-c", bad], 30)
    assert not failed.ok and failed.error == "RuntimeError: boom"
    crashed = gpucheck.run_part([sys.executable, "-c", "import sys; print('Traceback: x'); sys.exit(3)"], 30)
    assert not crashed.ok and crashed.error == "exited with status 3" and crashed.result["output"] == ["Traceback: x"]


def test_the_summary_is_one_json_object_that_fails_when_a_part_does():
    parts = {
        "session": gpucheck.PartResult(True, 41.0, 60, result={"steps": 100}),
        "bench": gpucheck.PartResult(False, 100.2, 100, timed_out=True, error="timed out after 100 s and was killed"),
    }
    out = gpucheck.summary({"device": "cuda", "name": "H200"}, parts, 301.5, dry=False, skipped=["tests"])
    back = json.loads(json.dumps(out))
    assert set(back) == {
        "gpucheck", "note", "dry", "device", "ok", "total_s", "budget_s", "over_budget", "skipped", "parts"
    }
    assert back["ok"] is False and back["over_budget"] is True and back["note"] is None
    assert back["parts"]["bench"]["timed_out"] is True and back["parts"]["session"]["result"] == {"steps": 100}
    dry = gpucheck.summary({"device": "cpu"}, {"session": parts["session"]}, 10.0, dry=True, skipped=[])
    assert dry["ok"] is True and "not a GPU check" in dry["note"]


def test_the_part_limits_fit_the_five_minute_budget():
    assert sum(gpucheck.TIMEOUTS.values()) <= gpucheck.BUDGET_S


def test_gpu_busy_time_is_the_union_of_kernel_intervals():
    assert _busy_us([]) == 0
    assert _busy_us([(0, 10), (5, 15), (20, 30)]) == 25  # overlapping streams count once
    assert _busy_us([(20, 30), (0, 10), (2, 3)]) == 20


def test_flags_a_test_changes_are_put_back():
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark, torch.get_float32_matmul_precision())
    with backend_flags_kept():
        matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark = not before[0], not before[1], not before[2]
        torch.set_float32_matmul_precision("medium" if before[3] != "medium" else "high")
    assert (matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark, torch.get_float32_matmul_precision()) == before
