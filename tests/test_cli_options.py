"""The command line's flags: run options come from one table (engine.run_options) and every flag that takes
a value shows a meaningful placeholder in `--help` (issue 18, 11: `--source CFG_SOURCE`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import re

import pytest

from engine.config import SETTINGS
from engine.run_options import RUN_OPTIONS
from nada_tui.__main__ import build_parser, main


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser by its command line, the app's own as ""."""
    out = {}
    todo = [("", build_parser())]
    while todo:
        name, p = todo.pop()
        out[name] = p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend((f"{name} {sub}".strip(), sp) for sub, sp in action.choices.items())
    return out


def help_text(command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    return out.getvalue()


@pytest.mark.parametrize("command", ["train", "sessions fork"])
def test_help_names_what_each_value_is(command: str) -> None:
    text = help_text(command)
    assert "CFG_" not in text and "RUN_" not in text
    assert "--source TEXT" in text and "--target TEXT" in text and "--iters N" in text
    assert "--checkpoint-every N" in text and "--device DEVICE" in text and "--name TEXT" in text
    assert "--precision {auto,fp32,tf32,bf16}" in text


def test_every_value_flag_names_its_placeholder() -> None:
    """argparse makes `--flag CFG_FLAG` from the destination when a flag names no metavar: every flag that
    takes a value names its placeholder (N, TEXT, PATH, DEVICE, ...) or lists its choices."""
    for command, parser in parsers().items():
        for action in parser._actions:
            if action.option_strings and action.nargs != 0 and not isinstance(action, argparse._HelpAction):
                assert action.metavar or action.choices, f"nada-tui {command} {action.option_strings[0]}"
        text = help_text(command)
        for flag, shown in re.findall(r"^\s+(?:-\w, )?(--[\w-]+) ([^\s,]+)", text, re.M):
            assert "_" not in shown, f"nada-tui {command} --help shows {flag} {shown}"


def test_each_run_option_is_declared_once_and_registered_by_every_command() -> None:
    takes = {"train": {"device", "checkpoint_every", "name", "quiet"},
             "resume": {"device", "checkpoint_every", "quiet"},
             "sessions fork": {"device", "checkpoint_every", "name", "quiet"},
             "sweep": {"device", "checkpoint_every"}, "generate": {"device"}, "": {"device"}}
    all_parsers = parsers()
    for command, names in takes.items():
        helps = {a.option_strings[0]: a.help for a in all_parsers[command]._actions if a.option_strings}
        for name in names:
            option = RUN_OPTIONS[name]
            assert helps.get(option.flag) == option.flag_help(), (command, option.flag)
    # one table: no option of one also a training setting
    assert not {o.flag for o in RUN_OPTIONS.values()} & {s.flag for s in SETTINGS.values()}


def test_checkpoint_every_is_checked_by_its_table_row(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--demo", "--checkpoint-every", "-1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--checkpoint-every" in err and "0 (only at the end) or more" in err
