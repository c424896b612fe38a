"""Sweep files for the sweep tests (tests/test_sweep_*.py): writing and parsing one, its error, and the
three-run demo sweep with its check once it has run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from engine import sweeps
from engine.config import DEMO_GENERATOR_ID
from engine.sweeps import SweepError, parse_sweep
from nada_tui.__main__ import main


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
