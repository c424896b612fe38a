"""`nada-tui eval SESSION [--samples N] [--json] [--fid FOLDER]`: measure a session's scores and keep them."""

from __future__ import annotations

import argparse
import json

from engine.sessions.scores import EVAL_SAMPLES
from nada_tui.cli import CliError
from nada_tui.cli._common import ProgressPrinter, add_run_options, device_of, engine_errors, setup_or_exit

MEANINGS = (
    ("clip_direction", "mean cosine between each sample's CLIP edit (adapted - frozen) and the run's direction"),
    ("clip_target", "mean CLIP similarity of the adapted samples to the target (prompt and/or images)"),
    ("diversity", "mean pairwise CLIP distance (1 - cos) of the adapted samples"),
    ("diversity_frozen", "the same for the frozen generator: diversity well below it means mode collapse"),
    ("fid", "Frechet Inception Distance to the --fid folder (lower is better)"),
    ("kid", "Kernel Inception Distance to the --fid folder (lower is better)"),
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score a session: CLIP direction and target agreement, diversity (and FID/KID with --fid)",
        description="Render seeds 0..N-1 (truncation 0.7) from a session's frozen and adapted generators and "
        "score them with the session's main CLIP model (the one with the largest weight). The scores are "
        "kept in the session (scores.json) and shown by `sessions show`, the sessions table and `sweep "
        "status`. Every run already measures them with 16 samples when it ends.",
        epilog="Scores: " + "; ".join(f"{k}: {v}" for k, v in MEANINGS),
    )
    p.add_argument("session", help="session id, name, or a unique prefix of the id")
    p.add_argument("--samples", type=int, default=EVAL_SAMPLES, metavar="N",
                   help=f"samples to score, at least 2 (default {EVAL_SAMPLES}); compare sessions at the same N")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("--fid", default=None, metavar="FOLDER",
                   help="also FID and KID against the real images in FOLDER (png/jpg/jpeg/webp, at least 2; "
                        "hundreds for a meaningful FID); Inception weights download on first use")
    add_run_options(p, "device")
    p.set_defaults(handler=run)


def report(record: dict) -> str:
    """The scores as lines for people."""
    from engine.sessions.scores import describe, format_score

    lines = [f"scores of {record.get('session', '?')} ({describe(record)}):"]
    for key, meaning in MEANINGS:
        if record.get(key) is not None:
            lines.append(f"  {key:<17}{format_score(record[key], key):>8}   {meaning}")
    if record.get("fid_features"):
        lines.append(f"  FID/KID features: {record['fid_features']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from engine import device as devices
    from engine import scores
    from engine.errors import FidError

    device = setup_or_exit(devices.resolve_device, device_of(args))
    printer = ProgressPrinter(quiet=args.json)
    usage, failure = engine_errors()
    try:
        record = scores.evaluate_session(args.session, args.samples, device=device, fid_folder=args.fid,
                                         progress=printer.download)
    except (scores.ScoreError, FidError, *usage) as exc:  # what to change in the command: exit 2
        raise CliError(str(exc), 2) from None
    except failure as exc:
        raise CliError(str(exc) or type(exc).__name__, 1) from None
    finally:
        printer.close()
    print(json.dumps(record) if args.json else report(record))
    return 0
