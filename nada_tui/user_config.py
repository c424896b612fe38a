"""The user's config.toml (engine.paths.config_file()): theme, keymap, preview and chart settings.

    theme = "nada-light"
    [keymap]            # binding id = "keys" (comma separated), see the help screen (?) for ids
    "train.pause" = "p"
    [preview]
    renderer = "auto"   # auto (ask the terminal), kitty, sixel or halfblocks
    [chart]
    smoothing = 0.8
    log_scale = false

A missing file means defaults; a broken one is reported once and defaults are used, and so is each value of
the wrong type (`theme = 5`), each unknown binding id and each binding that could not work.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import paths, user_files

DEFAULT_THEME = "nada-dark"


@dataclass
class Settings:
    theme: str = DEFAULT_THEME
    keymap: dict[str, str] = field(default_factory=dict)
    preview_renderer: str = "auto"  # nada_tui.graphics.RENDERERS
    smoothing: float = 0.8
    log_scale: bool = False
    device: str | None = None
    problems: list[str] = field(default_factory=list)


def load_settings(path: Path | None = None) -> Settings:
    """The config file's settings; each value that cannot be used is skipped with a line in `problems`
    (the app shows them as a toast, the command line prints them to stderr)."""
    path = path or paths.config_file()
    s = Settings()
    if not path.exists():
        return s
    if (found := user_files.problem(path)) is not None:  # a FIFO would block the app's start for ever
        s.problems.append(f"{path} {found}; using defaults")
        return s
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        s.problems.append(f"{path}: {exc}; using defaults")
        return s

    def skip(key: str, value: Any, wanted: str, using: str) -> None:
        s.problems.append(f"{path}: {key} = {_toml(value)} is not {wanted}; using {using}")

    theme = data.get("theme")
    if isinstance(theme, str):
        s.theme = theme
    elif theme is not None:
        skip("theme", theme, "a theme name in quotes", s.theme)
    device = data.get("device")
    if isinstance(device, str):
        s.device = device
    elif device is not None:
        skip("device", device, 'a device in quotes ("auto", "cpu", "cuda" or "cuda:N")', "auto")
    keymap = _table(data, "keymap", s.problems, path)
    for key, value in keymap.items():
        if isinstance(value, str):
            s.keymap[str(key)] = value
        else:
            skip(f'[keymap] "{key}"', value, 'keys in quotes, e.g. "ctrl+p" or "f9,p"', "its default keys")
    preview = _table(data, "preview", s.problems, path)
    if "renderer" in preview:
        from nada_tui.graphics import RENDERERS

        if preview["renderer"] in RENDERERS:
            s.preview_renderer = preview["renderer"]
        else:
            skip("[preview] renderer", preview["renderer"], "one of " + ", ".join(RENDERERS), "auto")
    chart = _table(data, "chart", s.problems, path)
    smoothing = chart.get("smoothing")
    if isinstance(smoothing, int | float) and not isinstance(smoothing, bool):
        s.smoothing = max(0.0, min(0.99, float(smoothing)))
        if s.smoothing != smoothing:  # said once, at start (the app shows `problems`)
            s.problems.append(f"{path}: [chart] smoothing = {smoothing} is outside 0 to 0.99; "
                              f"using {s.smoothing:g}")
    elif smoothing is not None:
        s.problems.append(f"{path}: [chart] smoothing must be a number from 0 to 0.99; using {s.smoothing:g}")
    if isinstance(chart.get("log_scale"), bool):
        s.log_scale = chart["log_scale"]
    elif "log_scale" in chart:
        s.problems.append(f"{path}: [chart] log_scale must be true or false; using {str(s.log_scale).lower()}")
    mirror = _table(data, "models", s.problems, path).get("mirror")  # read by engine.download
    if mirror is not None and not isinstance(mirror, str):
        skip("[models] mirror", mirror, "a URL or a folder in quotes", "the official URLs")
    return s


def _toml(value: Any) -> str:
    """A value as it was written in the file (near enough): strings quoted, lists in brackets."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{...}"
    return repr(value)


def _table(data: dict[str, Any], name: str, problems: list[str], path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if isinstance(value, dict):
        return value
    problems.append(f"{path}: {name} = {_toml(value)} should be a table ([{name}] on a line of its own); "
                    "skipped")
    return {}


def nada_bindings() -> list[Any]:
    """Every binding of this package's screens and widgets imported so far (the ids [keymap] may name)."""
    from textual.binding import Binding
    from textual.dom import DOMNode

    out: list[Any] = []
    seen: set[type] = set()
    todo: list[type] = [DOMNode]
    while todo:
        for cls in todo.pop().__subclasses__():
            if cls not in seen:
                seen.add(cls)
                todo.append(cls)
                if cls.__module__.startswith("nada_tui."):
                    out.extend(b for b in cls.__dict__.get("BINDINGS", ()) if isinstance(b, Binding))
    return out


def check_keymap(keymap: dict[str, str], bindings: Iterable[Any]) -> tuple[dict[str, str], list[str]]:
    """The keymap without what cannot work, and a line for each thing dropped: binding ids that no
    binding has, and printable keys (letters, digits, signs) for priority bindings, which would fire
    while the user types in a text field (`"app.quit" = "a"` would quit on the letter a). Other bindings
    may use printable keys: a focused text field takes those keys first."""
    from textual.keys import key_to_character

    by_id = {b.id: b for b in bindings if getattr(b, "id", None)}
    kept: dict[str, str] = {}
    problems: list[str] = []
    for bid, keys in keymap.items():
        binding = by_id.get(bid)
        if binding is None:
            problems.append(f'[keymap] "{bid}" is not a binding id (the help screen, ?, lists them); skipped')
            continue
        wanted = [k.strip() for k in keys.split(",") if k.strip()]
        typed = [k for k in wanted if (ch := key_to_character(k)) is not None and ch.isprintable()]
        if binding.priority and typed:
            problems.append(f'[keymap] "{bid}" = "{keys}": {", ".join(typed)} would fire while you type in a '
                            "text field; use a key with ctrl or alt, or a function key")
            wanted = [k for k in wanted if k not in typed]
        if wanted:
            kept[bid] = ",".join(wanted)
    return kept, problems


def save_theme(name: str, path: Path | None = None) -> None:
    """Remember the chosen theme, editing only the `theme = ...` line so comments survive."""
    path = path or paths.config_file()
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    except OSError:
        return
    new = f'theme = "{name}"'
    for i, line in enumerate(lines):
        if line.lstrip().startswith("["):  # only top-level keys: stop at the first table
            lines.insert(0, new)
            break
        if line.split("=")[0].strip() == "theme":
            lines[i] = new
            break
    else:
        lines.insert(0, new)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError:
        pass
