"""Where nada-tui keeps things. Resolved at call time so tests can redirect them with XDG_* variables."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP = "nada-tui"


def data_dir() -> Path:
    return platformdirs.user_data_path(APP, appauthor=False)


def sessions_dir() -> Path:
    return data_dir() / "sessions"


def cache_dir() -> Path:
    """Downloaded and converted model weights."""
    return platformdirs.user_cache_path(APP, appauthor=False)


def config_dir() -> Path:
    return platformdirs.user_config_path(APP, appauthor=False)


def config_file() -> Path:
    return config_dir() / "config.toml"


def themes_dir() -> Path:
    return config_dir() / "themes"
