"""Sweeps as Slurm job arrays (issue 12, 18), on a real Slurm (`.ci/slurm-up.sh`): three runs as one array,
a run cancelled with `scancel` that reads as interrupted and resumes, the cluster's MaxArraySize read and
obeyed (several arrays), and a submission sbatch refuses leaving nothing behind. Splitting runs into arrays
needs no cluster.

The runs are separate processes; they find the test's private data dir through the XDG variables the
sweep passes to every job explicitly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from _sweeps import check_three_finished, demo_file, finished_sessions, write

from engine import sweeps
from nada_tui.__main__ import main

SBATCH = shutil.which("sbatch")
needs_slurm = pytest.mark.skipif(SBATCH is None, reason="no `sbatch`: Slurm is not installed (.ci/slurm-up.sh)")


def slurm_ids(name: str) -> list[str]:
    record = sweeps.read_record(name)
    return [j for sub in record.submissions for j in sub["jobs"].values()]


def wait_for_slurm(name: str, timeout_s: float = 240) -> None:
    from engine.sweeps.execute import cancel_slurm, wait_slurm

    ids = slurm_ids(name)
    if not wait_slurm(ids, poll_s=0.5, timeout_s=timeout_s):
        cancel_slurm(ids)
        queue = subprocess.run(["squeue"], capture_output=True, text=True).stdout
        pytest.fail(f"Slurm jobs {ids} did not end within {timeout_s} s:\n{queue}")


@pytest.mark.slow
@needs_slurm
def test_demo_sweep_as_a_slurm_job_array(tmp_path, capsys):
    p = demo_file(tmp_path, "slurm colours")
    assert main(["sweep", str(p), "--executor", "slurm"]) == 0
    out = capsys.readouterr().out
    assert "as Slurm job" in out and "scancel" in out
    ids = slurm_ids("slurm colours")
    assert len(ids) == 3 and all("_" in j for j in ids)  # one array
    wait_for_slurm("slurm colours")
    check_three_finished("slurm colours", capsys)
    script = next((sweeps.sweep_dir("slurm colours") / sweeps.LOGS_DIR).glob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-2" in script and "gpus" not in script  # demo runs ask for no GPU


@pytest.mark.slow
@needs_slurm
def test_a_run_cancelled_with_scancel_is_interrupted_and_resumes(tmp_path, capsys):
    from engine import sessions

    p = demo_file(tmp_path, "cancel me", iters=40, grid=False)
    assert main(["sweep", str(p), "--executor", "slurm"]) == 0
    (job,) = slurm_ids("cancel me")
    record = sweeps.read_record("cancel me")
    # Cancel it once it has trained a few steps (metrics.jsonl gets a line per step).
    deadline = time.monotonic() + 180
    while True:
        sid = sweeps.run_session_id(record, 0)
        metrics = sessions.session_path(sid) / sessions.METRICS_FILE if sid else None
        if metrics is not None and metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    subprocess.run(["scancel", job], check=True)
    wait_for_slurm("cancel me")
    info = sessions.read_info(sessions.session_path(sid))
    assert info.status == "interrupted"
    assert 0 < info.step < 40
    (row,) = sweeps.run_statuses(sweeps.read_record("cancel me"))
    assert (row.status, row.session_id) == ("interrupted", sid)
    capsys.readouterr()
    assert main(["sweep", "status", "cancel me"]) == 0
    assert "interrupted" in capsys.readouterr().out

    assert main(["sweep", str(p), "--executor", "slurm", "--resume"]) == 0
    assert "resuming 1 run(s)" in capsys.readouterr().out
    wait_for_slurm("cancel me")
    info = sessions.read_info(sessions.session_path(sid))
    assert (info.status, info.step) == ("finished", 40)
    steps = [json.loads(line)["step"] for line in (info.path / sessions.METRICS_FILE).read_text().splitlines()]
    assert steps == list(range(1, 41))  # one curve: the resumed run went on where the cancelled one saved
    assert [i.id for i in finished_sessions("cancel me")] == [sid]


def test_job_arrays_split_to_the_clusters_max_array_size():
    from engine.sweeps import execute, plan

    assert [list(c) for c in plan.chunks(list(range(5)), 2)] == [[0, 1], [2, 3], [4]]
    assert [list(c) for c in plan.chunks(list(range(3)), 1001)] == [[0, 1, 2]]
    text = "MaxArraySize            = 1001\nMaxJobCount             = 10000\n"
    assert execute.parse_max_array_size(text) == 1001
    assert execute.parse_max_array_size("MaxJobCount = 5\n") is None


@needs_slurm
def test_dry_run_reads_max_array_size_from_the_cluster(tmp_path, capsys):
    from engine.sweeps import execute

    limit = execute.max_array_size()
    assert limit is not None  # read from `scontrol show config`
    seeds = ", ".join(str(i) for i in range(limit + 1))
    p = write(tmp_path, f'name = "wide"\n[defaults]\ndemo = true\n[grid]\nseed = [{seeds}]\n')
    assert main(["sweep", str(p), "--executor", "slurm", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would submit: 2 Slurm job arrays of at most {limit} (the cluster's MaxArraySize), {limit + 1} runs" in out


@needs_slurm
def test_a_refused_submission_leaves_no_sweep_behind(tmp_path, capsys):
    from engine.sweeps import submit

    p = demo_file(tmp_path, "refused")
    assert main(["sweep", str(p), "--executor", "slurm", "--partition", "no-such-partition"]) == 1
    err = capsys.readouterr().err
    assert "sbatch refused the sweep" in err and "partition" in err.lower()
    assert sweeps.list_sweeps() == [] and not sweeps.sweep_dir("refused").exists()
    assert submit.prepare(sweeps.load_sweep(p), False, str(p)).new  # nothing blocks running it again


@pytest.mark.slow
@needs_slurm
def test_a_sweep_over_max_array_size_goes_as_several_arrays(tmp_path, capsys, monkeypatch):
    from engine.sweeps import execute

    monkeypatch.setattr(execute, "max_array_size", lambda: 2)
    p = demo_file(tmp_path, "split colours")
    assert main(["sweep", str(p), "--executor", "slurm"]) == 0
    assert "2 Slurm job arrays of at most 2 (the cluster's MaxArraySize), 3 runs" in capsys.readouterr().out
    ids = slurm_ids("split colours")
    assert len(ids) == 3 and len({j.split("_")[0] for j in ids}) == 2
    wait_for_slurm("split colours")
    check_three_finished("split colours", capsys)
