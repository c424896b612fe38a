"""The user's config.toml (engine.paths.config_file()): theme, keymap, preview and chart settings.

    theme = "nada-light"
    [keymap]            # binding id = "keys" (comma separated), see the help screen (?) for ids
    "train.pause" = "p"
    [preview]
    renderer = "auto"   # auto (ask the terminal), kitty, sixel or halfblocks
    [chart]
    smoothing = 0.8
    log_scale = false

A missing file means defaults; a broken one is reported once and defaults are used.
"""

from __future__ import annotations

import tomllib
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
    if isinstance(data.get("theme"), str):
        s.theme = data["theme"]
    keymap = data.get("keymap", {})
    if isinstance(keymap, dict):
        s.keymap = {str(k): str(v) for k, v in keymap.items() if isinstance(v, str)}
    preview = data.get("preview", {})
    if isinstance(preview, dict) and "renderer" in preview:
        from nada_tui.graphics import RENDERERS

        if preview["renderer"] in RENDERERS:
            s.preview_renderer = preview["renderer"]
        else:
            s.problems.append(f"{path}: [preview] renderer must be one of {', '.join(RENDERERS)}; using auto")
    chart = data.get("chart", {})
    if isinstance(chart, dict):
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
    if isinstance(data.get("device"), str):
        s.device = data["device"]
    return s


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
