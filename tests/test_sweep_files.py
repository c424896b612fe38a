"""Sweep files (issue 12, 18): the grid and the runs, their names, the [slurm] table, errors that name the
line and key, the line finder, model and prompt checks, a grid too big to expand, and runs as JSON."""

from __future__ import annotations

import json
import textwrap

import pytest
from _sweeps import error_of, parse, write

from engine import sweeps
from engine.config import DEMO_GENERATOR_ID, TrainConfig
from engine.sweeps import SweepError, key_lines


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


def test_a_huge_grid_is_refused_before_it_is_expanded():
    # 1000^3 runs: expanding this would not end in a test's lifetime; the count is a product of lengths.
    axis = ", ".join(str(i) for i in range(1000))
    err = error_of(f"[defaults]\ndemo = true\n[grid]\nseed = [{axis}]\niters = [{axis}]\nbatch = [{axis}]\n")
    assert err.line == 3 and err.key is None, str(err)
    assert "makes 1,000,000,000 runs, over the cap of 10,000" in str(err)
    assert len(parse(f"[defaults]\ndemo = true\n[grid]\nseed = [{axis}]\n").runs) == 1000


def test_run_spec_round_trips_through_json():
    s = parse("[defaults]\ndemo = true\n[grid]\nclip = [['demo-colour-oracle:0.5'], ['demo-colour-oracle']]\n")
    for r in s.runs:
        again = sweeps.RunSpec.from_dict(json.loads(json.dumps(r.to_dict())))
        assert again == r and isinstance(again.config, TrainConfig)
    assert s.runs[0].values == {"clip_models": [["demo-colour-oracle", 0.5]]}
