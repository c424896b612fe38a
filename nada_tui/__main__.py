"""`nada-tui`: the app with no subcommand, scripted use through subcommands (see `nada-tui --help`)."""

from __future__ import annotations

import argparse
import sys

from nada_tui import cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nada-tui",
        description="Adapt StyleGAN2 generators with text (StyleGAN-NADA) and watch them train in your terminal.",
        epilog="Run `nada-tui` alone for the app, `nada-tui --demo` to try it with tiny offline demo models.",
    )
    parser.add_argument("--demo", action="store_true", help="open the app with tiny offline demo models")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    cli.register_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            from nada_tui.app import run_app

            return run_app(demo=args.demo, device=args.device)
        return int(args.handler(args) or 0)
    except cli.CliError as exc:
        print(f"nada-tui: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nada-tui: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
