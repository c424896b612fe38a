"""Themes from TOML files: the built-in ones (themes/*.toml, packaged as nada_tui/themes) and the
user's (engine.paths.themes_dir()/*.toml). A file maps 1:1 onto textual.theme.Theme fields, plus a
[variables] table for our own colours (loss-total, layer-active, ...). A bad file is collected as a
failure for one notification, never raised."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from engine import paths, user_files

if TYPE_CHECKING:
    from textual.app import App

COLOUR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background",
                 "surface", "panel", "boost")
THEME_FIELDS = {f.name for f in fields(Theme)}

# Our CSS uses these; a theme may override any of them in [variables].
VARIABLE_DEFAULTS = {
    "loss-total": "#f7768e",
    "loss-directional": "#7aa2f7",
    "loss-global": "#9ece6a",
    "loss-extra": "#bb9af7",
    "layer-active": "#ff9e64",
    "layer-idle": "#565f89",
    # Panel borders: a colour of its own, so a light theme can keep them visible in a 256-colour xterm
    # ($panel-lighten-2 turned white on light grey there).
    "panel-border": "#45495e",
}


class ThemeFileError(ValueError):
    pass


def theme_from_dict(data: dict[str, Any], origin: str) -> Theme:
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise ThemeFileError(f"{origin}: needs a name = \"...\"")
    if "primary" not in data:
        raise ThemeFileError(f"{origin}: needs at least primary = \"#rrggbb\"")
    unknown = set(data) - THEME_FIELDS
    if unknown:
        raise ThemeFileError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in COLOUR_FIELDS:
            try:
                Color.parse(str(value))
            except ColorParseError as exc:
                raise ThemeFileError(f"{origin}: {key} = {value!r} is not a colour") from exc
        if key == "variables":
            if not isinstance(value, dict):
                raise ThemeFileError(f"{origin}: [variables] must be a table")
            value = {str(k): str(v) for k, v in value.items()}
        kwargs[key] = value
    try:
        return Theme(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ThemeFileError(f"{origin}: {exc}") from exc


def load_theme_file(path: Path) -> Theme:
    if (found := user_files.problem(path)) is not None:  # a FIFO would block the app's start for ever
        raise ThemeFileError(f"{path.name} {found}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThemeFileError(f"{path.name}: {exc}") from exc
    return theme_from_dict(data, path.name)


def builtin_theme_dir() -> Path | None:
    """nada_tui/themes inside an installed wheel; the repository's themes/ in a dev checkout."""
    try:
        packaged = resources.files("nada_tui") / "themes"
        if packaged.is_dir():
            return Path(str(packaged))
    except (ModuleNotFoundError, TypeError):
        pass
    repo = Path(__file__).resolve().parent.parent / "themes"
    return repo if repo.is_dir() else None


def load_dir(folder: Path | None) -> tuple[list[Theme], list[str]]:
    themes: list[Theme] = []
    failures: list[str] = []
    if folder is None or not folder.is_dir():
        return themes, failures
    for path in sorted(folder.glob("*.toml")):
        try:
            themes.append(load_theme_file(path))
        except ThemeFileError as exc:
            failures.append(str(exc))
    return themes, failures


def load_all() -> tuple[list[Theme], list[str]]:
    """Built-in themes, then the user's (which may replace a built-in by using its name)."""
    builtin, bad_builtin = load_dir(builtin_theme_dir())
    user, bad_user = load_dir(paths.themes_dir())
    return builtin + user, bad_builtin + bad_user


def install(app: App, wanted: str, default: str) -> list[str]:
    """Register every theme file with `app` and select `wanted` (else `default`, else Textual's dark);
    returns what could not be loaded or selected, for the start-up toast."""
    loaded, failures = load_all()
    for theme in loaded:
        app.register_theme(theme)
    if wanted in app.available_themes:
        app.theme = wanted
    else:
        app.theme = default if default in {t.name for t in loaded} else "textual-dark"
        failures.append(f"theme {wanted!r} from config.toml is not installed")
    return failures
