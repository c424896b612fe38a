"""`nada-tui locate`: where sessions, downloaded models, config and themes live."""

from __future__ import annotations

import argparse

from engine import paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("locate", help="print the data, cache and config paths")
    p.add_argument(
        "what",
        nargs="?",
        choices=["data", "sessions", "cache", "config", "themes"],
        help="print just this path",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    table = {
        "data": paths.data_dir(),
        "sessions": paths.sessions_dir(),
        "cache": paths.cache_dir(),
        "config": paths.config_dir(),
        "themes": paths.themes_dir(),
    }
    if args.what:
        print(table[args.what])
    else:
        for key, value in table.items():
            print(f"{key:<9} {value}")
    return 0
