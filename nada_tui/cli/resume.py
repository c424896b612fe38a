"""`nada-tui resume SESSION`: continue a stopped, interrupted or extended session headless."""

from __future__ import annotations

import argparse

from nada_tui.cli import CliError
from nada_tui.cli._common import ProgressPrinter, open_run, run_and_report


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
    p.add_argument(
        "--checkpoint-every", type=int, default=50, metavar="N", help="save a checkpoint every N steps (default 50)"
    )
    p.add_argument(
        "--device", dest="run_device", default=None, metavar="DEVICE", help="auto (default), cpu, cuda or cuda:N"
    )
    p.add_argument("--quiet", action="store_true", help="no progress; print only the session id")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine import runs

    if args.checkpoint_every < 0:
        raise CliError("--checkpoint-every must be 0 or more", 2)
    printer = ProgressPrinter(quiet=args.quiet)
    session_run = open_run(runs.resume_session, args.session, cli=args, printer=printer, iterations=args.iters)
    info = session_run.info()
    if not args.quiet:
        printer.line(f"resuming {info.id} '{info.name}' at step {session_run.step}/{session_run.config.iterations}")
    return run_and_report(session_run, printer, args.quiet)
