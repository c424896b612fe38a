"""`nada-tui sessions list|show|delete|rename|export|fork`: the saved training runs."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nada_tui.cli import CliError
from nada_tui.cli._common import (
    ProgressPrinter,
    add_config_flags,
    add_run_options,
    config_changes,
    device_of,
    open_run,
    run_and_report,
    setup_or_exit,
)
from nada_tui.formatting import fmt_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sessions",
        help="list, show, delete, rename, export or fork saved sessions",
        description="Sessions live in the directory `nada-tui locate sessions` prints; "
        "name one by its id or a unique prefix of it.",
    )

    def usage(_args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(handler=usage)
    ss = p.add_subparsers(dest="sessions_command", metavar="ACTION")

    q = ss.add_parser("list", help="all sessions, newest first (damaged ones with the reason); MEAN LOSS is the "
                      "mean total loss of the last 20 logged steps")
    q.add_argument("--json", action="store_true", help="one JSON object per session, for scripts")
    q.set_defaults(handler=cmd_list)

    q = ss.add_parser("show", help="one session's settings, progress and files")
    q.add_argument("session")
    q.add_argument("--json", action="store_true", help="print session.json")
    q.set_defaults(handler=cmd_show)

    q = ss.add_parser("delete", help="remove sessions (damaged ones too)")
    q.add_argument("session", nargs="+")
    q.add_argument("-y", "--yes", action="store_true", help="do not ask (needed when stdin is not a terminal)")
    q.set_defaults(handler=cmd_delete)

    q = ss.add_parser("rename", help="change a session's display name (its id stays)")
    q.add_argument("session")
    q.add_argument("name", nargs="+", help="the new name")
    q.set_defaults(handler=cmd_rename)

    q = ss.add_parser("export", help="write a rosinality .pt, a PNG grid and the metrics as CSV; videos; NVIDIA's "
                      "layout")
    q.add_argument("session")
    q.add_argument("--out", default=".", metavar="DIR", help="directory for the files (default: here)")
    q.add_argument(
        "--only",
        action="append",
        choices=["pt", "grid", "csv", "video", "walk", "strength", "timelapse"],
        help="just this file; repeatable (default: pt, grid and csv). video: all three videos, <id>-walk (a loop "
        "through the preview seeds, frozen | adapted), <id>-strength (strength 0 -> 1) and <id>-timelapse (the "
        "saved previews in step order, each labelled with its step); or name one of them",
    )
    q.add_argument(
        "--format",
        dest="pt_format",
        choices=["rosinality", "nvidia"],
        default="rosinality",
        help="the generator file: rosinality (<id>.pt, default) or nvidia (<id>.nvidia.pt for NVIDIA's "
        "stylegan2-ada-pytorch, with nvidia_export_script.py beside it to make their .pkl)",
    )
    q.add_argument("--video-format", choices=["mp4", "webp", "gif"], default="mp4",
                   help="videos as MP4 (H.264, default), animated WebP or GIF")
    q.add_argument("--seconds", type=float, default=8.0, metavar="S", help="length of each video (default 8)")
    q.add_argument("--fps", type=int, default=24, metavar="N", help="video frames per second (default 24)")
    q.add_argument("--size", type=int, default=None, metavar="PX",
                   help="side of each image in the videos (default: the model's, at least 256; the time-lapse: "
                   "the saved previews at full size, enlarged to at least 1024 px across)")
    q.add_argument(
        "--strength",
        type=float,
        default=1.0,
        metavar="A",
        help="blend of the starting (0) and adapted (1) weights (default 1)",
    )
    add_run_options(q, "device")  # where the videos' frames render
    q.set_defaults(handler=cmd_export)

    q = ss.add_parser(
        "fork",
        help="train a new session from a session's weights or its base model, with new prompts or settings",
        description="Train a new session headless (like `train`: a progress bar; Ctrl-C, SIGTERM or SIGHUP save "
        "and stop it) with changed prompts or settings. --from base (the default) starts from the model the "
        "session started from; --from adapted starts from the session's latest weights, which also become the "
        "fork's frozen reference (chaining domains), so --source should then describe the adapted domain. "
        "The session is only read: it may still be training.",
    )
    q.add_argument("session", help="session id or a unique prefix of it")
    q.add_argument(
        "--from",
        dest="fork_from",
        choices=["base", "adapted"],
        default="base",
        help="base: the model the session started from (default); adapted: the session's latest weights",
    )
    add_config_flags(q)
    add_run_options(q, "checkpoint_every", "device", "name", "quiet")
    q.set_defaults(handler=cmd_fork)


def _loss(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _mean_loss(info: Any) -> float | None:
    """The loss lists show: the mean total loss of the last logged steps up to the saved step."""
    from engine.sessions.loss import recent_loss

    return None if info.damaged else recent_loss(info.path, info.step)


def scores_summary(scores: Any) -> dict[str, Any] | None:
    """The figures of a scores record, for --json lists (None before any)."""
    from engine.sessions.scores import SCORE_KEYS

    if not scores:
        return None
    return {**{k: scores.get(k) for k in SCORE_KEYS}, "samples": scores.get("samples"),
            "clip_model": scores.get("clip_model"), "step": scores.get("step")}


def scores_line(info: Any) -> str:
    """`sessions show`'s scores line: the figures and how they were measured, or how to measure them."""
    from engine.sessions.scores import SCORE_KEYS, describe, format_score

    sc = info.scores
    if not sc:
        return f"none yet: nada-tui eval {info.id}"
    figures = ", ".join(f"{k} {format_score(sc[k], k)}" for k in SCORE_KEYS if sc.get(k) is not None)
    stale = f"; the session is at step {info.step} now" if sc.get("step") != info.step else ""
    return f"{figures} ({describe(sc)}{stale})"


def _summary(info: Any) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "status": info.status,
        "step": info.step,
        "iterations": info.iterations,
        "model": info.model_id,
        "source": info.source,
        "target": info.target,
        "target_images": info.target_image_count,
        "scores": scores_summary(info.scores),
        "final_loss": info.final_loss,  # the last step's total loss alone
        "mean_loss": _mean_loss(info),  # the mean total loss of the last 20 logged steps
        "created": info.created,
        "updated": info.updated,
        "damaged": info.damaged,
        "path": str(info.path),
    }


def cmd_list(args: argparse.Namespace) -> int:
    from engine import paths, sessions
    from engine.sessions.loss import SMOOTH_STEPS

    infos = setup_or_exit(sessions.list_sessions)  # a file in place of the sessions folder: said, exit 1
    if args.json:
        for info in infos:
            print(json.dumps(_summary(info)))
        return 0
    if not infos:
        print(f"No sessions yet in {paths.sessions_dir()}.\nStart one: nada-tui train --demo --iters 50")
        return 0
    rows = [("ID", "STATUS", "STEP", f"MEAN LOSS ({SMOOTH_STEPS})", "MODEL", "NAME")]
    for i in infos:
        step = f"{i.step}/{i.iterations}" if i.iterations else str(i.step)
        rows.append(
            (
                i.id,
                i.status,
                step,
                _loss(_mean_loss(i)),
                i.model_id if len(i.model_id) < 24 else "..." + i.model_id[-21:],
                i.name,
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in range(5)) + "  " + r[5])
    damaged = [i for i in infos if i.damaged]
    for i in damaged:
        print(f"damaged: {i.id}: {i.damaged}", file=sys.stderr)
    if damaged:
        print("Remove a damaged session with: nada-tui sessions delete ID", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from engine import sessions
    from engine.sessions.loss import SMOOTH_STEPS

    path = setup_or_exit(sessions.resolve, args.session)
    info = sessions.read_info(path)
    if args.json:
        print(json.dumps(dict(info.data), indent=2))
        return 0
    print(f"{info.id}  '{info.name}'")
    print(f"  status     {info.status}" + (f": {info.damaged}" if info.damaged else ""))
    if info.data.get("message"):
        print(f"  message    {info.data['message']}")
    print(f"  path       {info.path}")
    print(f"  model      {info.model_id}")
    print(f"  prompts    {info.source!r} -> {info.target!r}")
    if info.target_image_count and not info.damaged:
        from engine.sessions.layout import TARGETS_DIR
        from engine.target_images import resolve_image_weight

        print(f"  images     {info.target_text} (copies in {TARGETS_DIR}/), image weight "
              f"{resolve_image_weight(info.config):g}")
    print(f"  step       {info.step}/{info.iterations}   loss {_loss(_mean_loss(info))} (mean of the last "
          f"{SMOOTH_STEPS} logged steps; the last step alone: {_loss(info.final_loss)})")
    print(f"  created    {info.created}   updated {info.updated}")
    parent = info.data.get("parent")
    if info.parent_id and isinstance(parent, dict):
        print(
            f"  forked     from {info.parent_id} at step {parent.get('step')}"
            f" ({'its weights' if parent.get('from_weights') else 'the base model'})"
        )
    if info.clip_models:
        print("  clip       " + ", ".join(f"{n} x{w:g}" for n, w in info.clip_models))
    print("  scores     " + scores_line(info))
    cfg = info.data.get("config")
    if isinstance(cfg, dict):  # a damaged session.json may hold anything here
        skip = {"source", "target", "clip_models"}
        print("  settings   " + ", ".join(f"{k}={v}" for k, v in cfg.items() if k not in skip))
    stems = sessions.photos(info.path)
    if stems:
        from engine.sessions.layout import PHOTOS_DIR

        shown = ", ".join(stems[:8]) + (f", ... ({len(stems) - 8} more)" if len(stems) > 8 else "")
        print(f"  photos     {len(stems)} in {PHOTOS_DIR}/: {shown}")
    n_metrics = len(sessions.read_metrics(info.path))
    print(
        f"  files      {n_metrics} metric lines, {len(sessions.samples(info.path))} sample grids, "
        f"{fmt_bytes(sessions.disk_usage(info.path))}"
    )
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from engine import sessions

    paths = [setup_or_exit(sessions.resolve, ref) for ref in args.session]
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("deleting needs confirmation: add --yes", 2)
        names = ", ".join(p.name for p in paths)
        answer = input(f"Delete {len(paths)} session(s): {names}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    for path in paths:
        setup_or_exit(sessions.delete, path.name)
        print(f"deleted {path.name}")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    from engine import sessions

    info = setup_or_exit(sessions.rename, args.session, " ".join(args.name))
    print(f"{info.id} is now '{info.name}'")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine import export, sessions
    from engine.video_settings import VIDEO_KINDS, VideoSettings

    if not 0 <= args.strength <= 1:
        raise CliError(f"--strength must be from 0 to 1; got {args.strength}", 2)
    settings = setup_or_exit(VideoSettings(args.seconds, args.fps, args.size, args.video_format).check)
    info = setup_or_exit(sessions.load, args.session)
    out = Path(args.out)
    want = set(args.only or ["pt", "grid", "csv"])
    if "video" in want:
        want |= set(VIDEO_KINDS)
    nvidia = args.pt_format == "nvidia"
    jobs = {
        "pt": lambda: export.export_nvidia(info, out / f"{info.id}.nvidia.pt", args.strength) if nvidia
        else [export.export_rosinality(info, out / f"{info.id}.pt", args.strength)],
        "grid": lambda: [export.export_grid(info, out / f"{info.id}-grid.png", strength=args.strength)],
        "csv": lambda: [export.export_metrics(info, out / f"{info.id}-metrics.csv")],
    }
    for kind in ("pt", "grid", "csv"):
        if kind in want:
            for path in setup_or_exit(jobs[kind]):
                print(f"wrote {path}")
    videos = [k for k in VIDEO_KINDS if k in want]
    if videos:
        tty = sys.stderr.isatty()

        def show(kind: str, done: int, total: int) -> None:  # a counter redrawn in place, on a terminal only
            if tty:
                print(f"\r\x1b[2K{kind} video: frame {done}/{total}", end="\n" if done == total else "",
                      file=sys.stderr, flush=True)

        from engine import device as devices

        device = setup_or_exit(devices.resolve_device, device_of(args))
        written = setup_or_exit(export.export_videos, info, out, videos, settings, args.strength, device,
                                progress=show)
        for path in written.values():
            print(f"wrote {path}")
    if nvidia and "pt" in want:
        where = out.resolve()  # the command runs from the user's checkout: absolute paths
        print(f"To make NVIDIA's .pkl: cd into your stylegan2-ada-pytorch checkout and run\n"
              f"  python {where / 'nvidia_export_script.py'} {where / (info.id + '.nvidia.pt')}")
    return 0


def cmd_fork(args: argparse.Namespace) -> int:
    from engine import runs, sessions
    from engine.inputs import check_inputs

    changes = config_changes(args)
    if "target" not in changes:
        raise CliError("--target is required: describe what the fork should make, e.g. --target 'a sketch of a dog'", 2)
    info = setup_or_exit(sessions.load, args.session)
    config = setup_or_exit(info.config.replace, **changes)  # checks the settings before any model loads
    # once, before any model loads; the parent's own target images are kept (copies), new ones are found
    files = setup_or_exit(check_inputs, config, find_images=config.target_images != info.config.target_images)
    adapted = args.fork_from == "adapted"
    printer = ProgressPrinter(quiet=args.quiet)
    if not args.quiet:
        start = f"its adapted weights (step {info.step})" if adapted else f"its base model {info.model_id}"
        printer.line(f"forking {info.id} '{info.name}' from {start}: {config.source!r} -> {config.target!r}")
        if adapted and "source" not in changes:
            printer.line(
                f"note: the fork starts from the adapted weights, but its source prompt is still {config.source!r}; "
                "give --source to describe what those weights make now"
            )
    run = open_run(runs.fork_session, info.id, changes, cli=args, printer=printer, from_weights=adapted,
                   name=args.name, image_files=files)
    return run_and_report(run, printer, args.quiet)
