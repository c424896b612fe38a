"""Sweeps (issue 12): sweep files and their errors, `--dry-run`, a demo sweep through submitit's local
executor, and on a real Slurm (`.ci/slurm-up.sh`): a job array of three runs, and a run cancelled with
`scancel` that reads as interrupted and resumes.

The runs are separate processes; they find the test's private data dir through the XDG variables the
sweep passes to every job explicitly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine import sweeps
from engine.config import DEMO_GENERATOR_ID, TrainConfig
from engine.sweeps import SweepError, key_lines, parse_sweep
from nada_tui.__main__ import main

SBATCH = shutil.which("sbatch")
needs_slurm = pytest.mark.skipif(SBATCH is None, reason="no `sbatch`: Slurm is not installed (.ci/slurm-up.sh)")


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip())
    return p


def parse(text: str) -> sweeps.Sweep:
    return parse_sweep(textwrap.dedent(text).lstrip(), "/s/sweep.toml")


def error_of(text: str) -> SweepError:
    with pytest.raises(SweepError) as info:
        parse(text)
    return info.value


# ----- the file -------------------------------------------------------------------------------------
def test_grid_product_with_flag_aliases():
    s = parse("""
        name = "faces to art"
        [defaults]
        model = "ffhq"
        source = "a photo of a person"
        iters = 300
        [grid]
        target = ["a pencil sketch of a person", "a Pixar character", "a marble statue"]
        global-weight = [0.0, 0.2]
    """)
    assert s.name == "faces to art" and s.id == "faces-to-art"
    assert s.keys == ("target", "global_weight")
    assert len(s.runs) == 6
    assert [r.index for r in s.runs] == list(range(6))
    assert s.runs[1].values == {"target": "a pencil sketch of a person", "global_weight": 0.2}
    assert s.runs[4].config.target == "a marble statue" and s.runs[4].config.global_weight == 0.0
    assert all(r.config.iterations == 300 and r.model_id == "ffhq" and not r.demo for r in s.runs)
    assert s.runs[0].name == "faces to art #1: target=a pencil sketch of a person, global_weight=0"


def test_runs_crossed_with_grid_and_name_template():
    s = parse("""
        [defaults]
        demo = true
        iterations = 5
        name = "{target} g={global_weight} k={k}"
        [grid]
        global_weight = [0, 0.5]
        [[runs]]
        target = "a green image"
        [[runs]]
        seed = 4
        iters = 7
    """)
    assert s.name == "sweep"  # the file's stem
    assert [(r.config.target, r.config.global_weight, r.config.iterations) for r in s.runs] == [
        ("a green image", 0.0, 5),
        ("a green image", 0.5, 5),
        ("a blue image", 0.0, 7),
        ("a blue image", 0.5, 7),
    ]
    assert s.runs[0].name == "a green image g=0.0 k=None"
    assert s.runs[2].values == {"seed": 4, "iterations": 7, "global_weight": 0.0}
    # demo = true is `--demo`: the demo generator, colour oracle and red -> blue prompts by default
    assert all(r.demo and r.model_id == DEMO_GENERATOR_ID for r in s.runs)
    assert s.runs[3].config.clip_models == (("demo-colour-oracle", 1.0),)
    assert s.runs[3].config.source == "a red image"


def test_inline_runs_slurm_table_and_checkpoint_relative_to_the_file(tmp_path):
    (tmp_path / "g.pt").write_bytes(b"not read while parsing")
    p = write(
        tmp_path,
        """
        runs = [{checkpoint = "g.pt", target = "a"}, {demo = true}]
        [defaults]
        source = "b"
        [slurm]
        partition = "gpu"
        time = 30
        gpus-per-job = 2
        mem_gb = 8
    """,
    )
    s = sweeps.load_sweep(p)
    assert s.runs[0].model_id == str((tmp_path / "g.pt").resolve())
    assert s.runs[1].demo and s.runs[1].config.source == "b"
    assert s.slurm == {"partition": "gpu", "time": 30, "gpus_per_job": 2, "mem_gb": 8.0}


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("[defaults]\ndemo = true\nitres = 3\n", 3, "itres", "unknown setting"),
        ("iters = 3\n", 1, "iters", "put settings under [defaults]"),
        ("[defaults]\ndemo = true\n\n[grid]\n", 4, "grid", "empty grid"),
        ("[defaults]\ndemo = true\n[grid]\ntarget = []\n", 4, "target", "empty grid"),
        ("[defaults]\ndemo = true\n[grid]\nseed = 3\n", 4, "seed", "needs a list"),
        ("[defaults]\ndemo = true\n[grid]\nglobal_weight = [0.1,\n  1.5]\n", 4, "global_weight", "0 to 1"),
        ('[defaults]\ndemo = true\n[grid]\niters = [3, "many"]\n', 4, "iters", "'many' is not valid"),
        ("[defaults]\ndemo = true\niters = 3\niterations = 4\n", 4, "iterations", "given twice"),
        ('[defaults]\niters = 3\n[[runs]]\ndemo = true\n[[runs]]\ntarget = "x"\n', 5, None, "run 2 has no generator"),
        ('runs = [{demo = true}, {demo = true, "global-weight" = 7}]\n', 1, "global-weight", "0 to 1"),
        ("[defaults]\ndemo = true\n[grid]\nseed = [1, 2]\n[[runs]]\nseed = 3\n", 4, "seed", "both in [grid]"),
        ('[defaults]\ndemo = true\nmodel = "ffhq"\n', 3, "model", "not both"),
        ("[defaults]\ndemo = 1\n", 2, "demo", "true or false"),
        ('[defaults]\ndemo = true\nname = "{nope}"\n', 3, "name", "cannot fill in 'nope'"),
        ('[defaults]\ndemo = true\n[slurm]\ntime = "1h"\n', 4, "time", "whole number"),
        ("[defaults]\ndemo = true\n[slurm]\nnodes = 2\n", 4, "nodes", "unknown [slurm] option"),
        ('[defaults]\ncheckpoint = "missing.pt"\n', 2, "checkpoint", "no such generator file"),
        ("[defaults\n", 1, None, "not valid TOML"),
    ],
)
def test_errors_name_the_line_and_key(text, line, key, words):
    err = error_of(text)
    assert err.line == line, str(err)
    assert err.key == key, str(err)
    assert words in str(err)
    assert str(err).startswith(f"/s/sweep.toml:{line}: ")


def test_key_lines_survive_strings_comments_and_inline_tables():
    text = textwrap.dedent('''
        name = "a [b] = c" # [grid]
        [defaults]
        source = """two
        lines = no key"""
        'quoted key' = 1
        runs = [
          {target = "x, y = z"},  # not a key
          {seed = 2, target = "w"},
        ]
        [[more]]
        k = 1
        [[more]]
        k = 2
    ''').lstrip()
    lines = key_lines(text)
    assert lines[("name",)] == 1
    assert lines[("defaults", "source")] == 3
    assert ("defaults", "lines") not in lines
    assert lines[("defaults", "quoted key")] == 5
    assert lines[("defaults", "runs", 0, "target")] == 7
    assert lines[("defaults", "runs", 1, "seed")] == 8
    assert lines[("defaults", "runs", 1, "target")] == 8
    assert lines[("more", 0, "k")] == 11
    assert lines[("more", 1, "k")] == 13


def test_check_sweep_needs_known_models_and_usable_prompts(tmp_path):
    p = write(
        tmp_path,
        """
        [defaults]
        model = "no-such-model"
        target = "a sketch"
    """,
    )
    with pytest.raises(SweepError, match=r"sweep.toml:2: model: .*no-such-model"):
        sweeps.check_sweep(sweeps.load_sweep(p))
    p = write(
        tmp_path,
        """
        [defaults]
        demo = true
        [grid]
        target = ["a green image", "a red image"]
    """,
    )
    with pytest.raises(SweepError, match=r"sweep.toml:4: target: run 2: Source and target prompts are the same"):
        sweeps.check_sweep(sweeps.load_sweep(p))


def test_engine_modules_are_torch_free_at_import():
    code = (
        "import sys, engine.sweeps, nada_tui.cli.sweep; "
        "from engine.sweeps import checks, execute, fileformat, job, locator, plan, record, status, submit; "
        "print(sorted({'torch', 'submitit', 'textual'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_spec_round_trips_through_json():
    s = parse("[defaults]\ndemo = true\n[grid]\nclip = [['demo-colour-oracle:0.5'], ['demo-colour-oracle']]\n")
    for r in s.runs:
        again = sweeps.RunSpec.from_dict(json.loads(json.dumps(r.to_dict())))
        assert again == r and isinstance(again.config, TrainConfig)
    assert s.runs[0].values == {"clip_models": [["demo-colour-oracle", 0.5]]}


# ----- the command line -----------------------------------------------------------------------------
DEMO = """
    name = "{name}"
    [defaults]
    demo = true
    iters = {iters}
    preview_every = 0
    [grid]
    target = ["a blue image", "a green image", "a yellow image"]
"""


def demo_file(tmp_path: Path, name: str, iters: int = 3, grid: bool = True) -> Path:
    text = DEMO.format(name=name, iters=iters)
    if not grid:
        text = text.split("[grid]")[0]
    return write(tmp_path, text, f"{name.replace(' ', '-')}.toml")


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


def finished_sessions(name: str) -> list:
    from engine import sessions

    return [i for i in sessions.list_sessions() if i.sweep and i.sweep["name"] == name]


def check_three_finished(name: str, capsys) -> None:
    infos = sorted(finished_sessions(name), key=lambda i: i.target)
    assert [(i.status, i.step, i.iterations, i.target) for i in infos] == [
        ("finished", 3, 3, t) for t in ("a blue image", "a green image", "a yellow image")
    ]
    assert all(i.model_id == DEMO_GENERATOR_ID and i.source == "a red image" for i in infos)
    assert [i.sweep["values"] for i in infos] == [
        {"target": t} for t in ("a blue image", "a green image", "a yellow image")
    ]
    capsys.readouterr()
    assert main(["sweep", "status", name, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["index"], r["status"], r["step"], r["values"]["target"]) for r in rows] == [
        (0, "finished", 3, "a blue image"),
        (1, "finished", 3, "a green image"),
        (2, "finished", 3, "a yellow image"),
    ]
    assert {r["session"] for r in rows} == {i.id for i in infos}


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


# ----- issue 18: sizes, refused submissions, delete, a failed final save ------------------------------
def test_a_huge_grid_is_refused_before_it_is_expanded():
    # 1000^3 runs: expanding this would not end in a test's lifetime; the count is a product of lengths.
    axis = ", ".join(str(i) for i in range(1000))
    err = error_of(f"[defaults]\ndemo = true\n[grid]\nseed = [{axis}]\niters = [{axis}]\nbatch = [{axis}]\n")
    assert err.line == 3 and err.key is None, str(err)
    assert "makes 1,000,000,000 runs, over the cap of 10,000" in str(err)
    assert len(parse(f"[defaults]\ndemo = true\n[grid]\nseed = [{axis}]\n").runs) == 1000


def test_job_arrays_split_to_the_clusters_max_array_size():
    from engine.sweeps import execute, plan

    assert [list(c) for c in plan.chunks(list(range(5)), 2)] == [[0, 1], [2, 3], [4]]
    assert [list(c) for c in plan.chunks(list(range(3)), 1001)] == [[0, 1, 2]]
    text = "MaxArraySize            = 1001\nMaxJobCount             = 10000\n"
    assert execute.parse_max_array_size(text) == 1001
    assert execute.parse_max_array_size("MaxJobCount = 5\n") is None


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
