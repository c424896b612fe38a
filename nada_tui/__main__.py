"""`nada-tui`: the app with no subcommand, scripted use through subcommands (see `nada-tui --help`)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from engine.run_options import RUN_OPTIONS
from nada_tui import cli, user_config

BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for `cat` cut short by `| head`


class Parser(argparse.ArgumentParser):
    """argparse, with values that start with a minus sign taken as values: `--preview-seeds -1,2` or
    `--lr -1` reach the setting's own check (which says what is allowed) instead of argparse's "expected
    one argument". Subcommand parsers are of this class too (argparse makes them with type(self))."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d[\d.,:eE+-]*$")


def _stdout_gone() -> None:
    """The reader of stdout went away (`| head`): send what is left to /dev/null, so that Python's
    flush at exit neither fails nor prints a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture it)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives until exit)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nada-tui",
        description="Adapt StyleGAN2 generators with text (StyleGAN-NADA) and watch them train in your terminal.",
        epilog="Run `nada-tui` alone for the app, `nada-tui --demo` to try it with tiny offline demo models.",
    )
    parser.add_argument("--demo", action="store_true", help="open the app with tiny offline demo models")
    RUN_OPTIONS["device"].add_flag(parser, dest="device", default="auto")
    parser.add_argument("--preview-renderer", choices=["auto", "kitty", "sixel", "halfblocks"], default=None,
                        help="how previews are drawn: auto asks the terminal (default: [preview] renderer in "
                             "config.toml, else auto)")
    parser.add_argument("--open", metavar="SESSION", default=None,
                        help="start showing this saved session read-only (id, a unique prefix, or its name)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    cli.register_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every subcommand. A closed stdout (`nada-tui sessions show ID | head -1`) ends it quietly with 141.
    Run as the program (`argv` None) by a command that loaded torch (`train` ...), the process ends once
    its output is flushed, without the interpreter's teardown (1.4-4.3 s after torch: nada_tui/process.py)."""
    try:
        code = _main(argv)
    except BrokenPipeError:
        _stdout_gone()
        code = BROKEN_PIPE_EXIT
    if argv is None and "torch" in sys.modules:
        from nada_tui.process import exit_now

        exit_now(code)  # every session is closed by now: the commands close their runs before returning
    return code


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return run_app(demo=args.demo, device=args.device, preview_renderer=args.preview_renderer,
                           open_session=args.open)
        for problem in user_config.load_settings().problems:  # the app shows them itself, as a toast
            print(f"nada-tui: skipped setting: {problem}", file=sys.stderr)
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # a reader that went away shows here, not in Python's flush at exit
        return code
    except cli.CliError as exc:
        print(f"nada-tui: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nada-tui: interrupted", file=sys.stderr)
        return 130


def run_app(demo: bool = False, device: str = "auto", preview_renderer: str | None = None,
            open_session: str | None = None) -> int:
    """`nada-tui` without a subcommand: the app, until it quits; the process ends with it."""
    from nada_tui import graphics
    from nada_tui.app import NadaApp
    from nada_tui.process import draw_on_the_terminal, exit_now

    os.environ.setdefault("TEXTUAL_ANIMATIONS", "basic")
    settings = user_config.load_settings()
    # Before Textual owns the terminal: the graphics queries read the terminal's answers from stdin.
    graphics.configure(preview_renderer or settings.preview_renderer)
    draw_on_the_terminal()
    app = NadaApp(demo=demo, device=device, settings=settings, open_session=open_session)
    for problem in app.startup_problems:  # still readable after the app has left the screen
        print(f"nada-tui: skipped setting: {problem}", file=sys.stderr)
    app.run()
    app.finish_saving()
    exit_now(app.return_code or 0)  # skips the interpreter's slow teardown: see nada_tui/process.py
    return 0


if __name__ == "__main__":
    sys.exit(main())
