"""`nada-tui resume SESSION`: continue a stopped, interrupted or extended session headless."""

from __future__ import annotations

import argparse

from nada_tui.cli._common import ProgressPrinter, add_run_options, open_run, run_and_report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "resume",
        help="continue a session from its last checkpoint",
        description="Continue a session from its last checkpoint, on the same loss curve an uninterrupted "
        "run would have followed. Steps after the last checkpoint are redone.",
    )
    p.add_argument("session", help="session id or a unique prefix of it")
    p.add_argument(
        "--iters", type=int, default=None, metavar="N", help="train to N steps in total (extends a finished session)"
    )
    add_run_options(p, "checkpoint_every", "device", "quiet")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine import runs

    printer = ProgressPrinter(quiet=args.quiet)
    session_run = open_run(runs.resume_session, args.session, cli=args, printer=printer, iterations=args.iters)
    info = session_run.info()
    if not args.quiet:
        printer.line(f"resuming {info.id} '{info.name}' at step {session_run.step}/{session_run.config.iterations}")
    return run_and_report(session_run, printer, args.quiet)
