"""Subcommands. Each module here exposes `register(subparsers)` and sets `handler` on its parsers."""

from __future__ import annotations

import argparse
import importlib
import pkgutil


class CliError(Exception):
    """A failure to report as one line on stderr; exit code 1 (failure) or 2 (usage)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def register_all(sub: argparse._SubParsersAction) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
