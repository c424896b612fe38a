"""config.toml values that cannot be used are reported, each once, in the app and on the command line
(issue 18, defect 8); none is dropped silently."""

from __future__ import annotations

from textual.binding import Binding

from engine import paths
from nada_tui.__main__ import main
from nada_tui.user_config import check_keymap, load_settings

WRONG_TYPES = """theme = 5
device = ["cuda"]
[keymap]
"train.pause" = 7
"train.start" = "f9"
[models]
mirror = 42
"""


def test_values_of_the_wrong_type_are_each_reported(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(WRONG_TYPES)
    s = load_settings(path)
    assert s.theme == "nada-dark" and s.device is None and s.keymap == {"train.start": "f9"}
    said = "\n".join(s.problems)
    assert "theme = 5 is not a theme name in quotes; using nada-dark" in said
    assert "device = ['cuda'] is not a device in quotes" in said
    assert '[keymap] "train.pause" = 7 is not keys in quotes' in said
    assert "[models] mirror = 42 is not a URL or a folder in quotes" in said
    assert len(s.problems) == 4


def test_a_section_that_is_not_a_table_is_reported(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('keymap = "ctrl+p"\n')
    [problem] = load_settings(path).problems
    assert "keymap = \"ctrl+p\" should be a table ([keymap] on a line of its own)" in problem


def test_unknown_ids_and_printable_keys_of_priority_bindings_are_dropped_with_a_word() -> None:
    bindings = [Binding("ctrl+q", "quit", id="app.quit", priority=True), Binding("p", "pause", id="train.pause")]
    keymap, problems = check_keymap({"app.quit": "a,ctrl+x", "train.pause": "space", "tran.pause": "p"},
                                    bindings)
    assert keymap == {"app.quit": "ctrl+x", "train.pause": "space"}
    assert any('"app.quit" = "a,ctrl+x": a would fire while you type in a text field' in p for p in problems)
    assert any('"tran.pause" is not a binding id' in p for p in problems)
    assert len(problems) == 2


def test_the_command_line_prints_the_problems_to_stderr(capsys) -> None:
    paths.config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text(WRONG_TYPES)
    assert main(["locate", "config"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("nada-tui: skipped setting: ") == 4
    assert "theme = 5" in captured.err and "theme" not in captured.out
