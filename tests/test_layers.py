"""The layering rules of docs/architecture.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_the_engine_never_imports_textual_or_the_app() -> None:
    # No exception, the benchmark included: the TUI's is `python -m nada_tui.bench`.
    for path in (ROOT / "engine").rglob("*.py"):
        bad = {m for m in imports(path) if m.split(".")[0] in ("textual", "nada_tui")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_screens_and_widgets_never_import_the_app() -> None:
    for folder in ("screens", "widgets"):
        for path in (ROOT / "nada_tui" / folder).glob("*.py"):
            assert "nada_tui.app" not in imports(path), f"{path.relative_to(ROOT)} imports nada_tui.app"


def test_no_widget_imports_a_screen() -> None:
    # A screen a widget needs (the target-image picker) lives among the widgets.
    for path in (ROOT / "nada_tui" / "widgets").glob("*.py"):
        bad = {m for m in imports(path) if m == "nada_tui.screens" or m.startswith("nada_tui.screens.")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_every_module_opens_with_a_docstring_saying_its_job() -> None:
    for folder in ("engine", "nada_tui"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "__init__.py" and not path.read_text(encoding="utf-8").strip():
                continue
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            assert doc, f"{path.relative_to(ROOT)} has no opening docstring"


def test_the_app_and_the_cli_hold_only_the_run_handle() -> None:
    # engine.live_run.Run is the one thing they hold of a live run: never its trainer, worker or writer.
    for path in [ROOT / "nada_tui" / "app.py", *(ROOT / "nada_tui" / "cli").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        reached = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        inside = reached & {"trainer", "worker", "writer", "make_worker"}
        assert not inside, f"{path.relative_to(ROOT)} reaches into the run: {inside}"
        assert "engine.trainer" not in imports(path), f"{path.relative_to(ROOT)} imports engine.trainer"
