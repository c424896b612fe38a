"""`nada-tui train`: adapt a generator headless, with a progress bar, into a new session."""

from __future__ import annotations

import argparse
import os

from nada_tui.cli import CliError
from nada_tui.cli._common import (
    ProgressPrinter,
    add_config_flags,
    add_run_options,
    config_changes,
    open_run,
    run_and_report,
    setup_or_exit,
)


# ----- nada-tui train ---------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="adapt a generator headless (progress bar), saved as a session",
        description="Adapt a generator from --source to --target without the app. The run is saved as a "
        "session (see `nada-tui sessions list`); Ctrl-C, SIGTERM or SIGHUP save and stop it, "
        "`nada-tui resume ID` continues it.",
    )
    m = p.add_argument_group("model (one of)").add_mutually_exclusive_group()
    m.add_argument("--model", metavar="NAME", help="a pretrained generator (`nada-tui models list`)")
    m.add_argument("--checkpoint", metavar="PATH", help="your own generator file (.pt or .pkl)")
    m.add_argument(
        "--demo",
        dest="train_demo",
        action="store_true",
        help="tiny offline demo models (colour oracle; says nothing about real CLIP)",
    )
    add_config_flags(p)
    add_run_options(p, "checkpoint_every", "device", "name", "quiet")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine import runs
    from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, DEMO_SOURCE, DEMO_TARGET, TrainConfig, demo_config
    from engine.inputs import check_inputs

    demo = args.train_demo or getattr(args, "demo", False)
    changes = config_changes(args)
    source, target = changes.pop("source", None), changes.pop("target", None)
    images = bool(changes.get("target_images"))  # images alone need no target prompt (nor a source)
    if demo:
        model_id = DEMO_GENERATOR_ID
        source = DEMO_SOURCE if source is None else source
        target = DEMO_TARGET if target is None and not images else target
        changes.setdefault("clip_models", ((DEMO_CLIP_ID, 1.0),))
    elif args.model or args.checkpoint:
        from engine import zoo

        # A FIFO or another special file is refused here: opening one would block for ever.
        ref = args.model or os.path.abspath(os.path.expanduser(args.checkpoint))  # --checkpoint is always a path
        choice = setup_or_exit(zoo.resolve_model, ref)
        model_id = choice.id
        if source is None and choice.source_prompt:
            source = choice.source_prompt
    else:
        raise CliError("choose a generator: --model NAME, --checkpoint PATH, or --demo (offline demo models)", 2)
    if source is None and (target is not None or not images):
        raise CliError("--source is required: describe what the generator makes now, e.g. 'a photo of a dog'", 2)
    if target is None and not images:
        raise CliError("--target is required: describe what it should make, e.g. 'a sketch of a dog' (or give "
                       "--target-images)", 2)

    printer = ProgressPrinter(quiet=args.quiet)
    make = demo_config if demo else TrainConfig  # the demo has its own recipe (engine.config.DEMO_DEFAULTS)
    config = setup_or_exit(make, source=source or "", target=target or "", **changes)
    # Prompts and target images are checked once, before any model loads: nobody should wait for a
    # download to hear that. The images found are read before any model loads too (runs.start_session).
    files = setup_or_exit(check_inputs, config)
    if not args.quiet:
        printer.line(f"loading {model_id} and {', '.join(n for n, _ in config.clip_models)} ...")
    session_run = open_run(runs.start_session, config, model_id, cli=args, printer=printer, name=args.name,
                           image_files=files)
    return run_and_report(session_run, printer, args.quiet)
