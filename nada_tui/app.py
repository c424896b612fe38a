"""Placeholder until the TUI lands: the Textual app is built in nada_tui/app.py."""

from __future__ import annotations


def run_app(demo: bool = False, device: str = "auto") -> int:
    print("The nada-tui app is not built yet; see `nada-tui --help` for the command line.")
    return 0
