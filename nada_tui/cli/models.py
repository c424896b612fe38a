"""`nada-tui models list|download|import`: the pretrained registry and the local model cache."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from nada_tui.cli import CliError
from nada_tui.cli._common import ProgressPrinter
from nada_tui.formatting import fmt_bytes


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list, download and import generators and CLIP models",
        description="Pretrained generators and CLIP models. Files live in the cache directory "
        "(`nada-tui locate cache`); set NADA_TUI_MIRROR to download from your own mirror.",
    )
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    p.set_defaults(handler=lambda args: _need_action(p))

    ls = msub.add_parser("list", help="show every model, its resolution, size and whether it is downloaded")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=run_list)

    dl = msub.add_parser("download", help="download (and convert) models by name")
    dl.add_argument("names", nargs="+", metavar="NAME", help="model names from `nada-tui models list`")
    dl.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    dl.set_defaults(handler=run_download)

    im = msub.add_parser("import", help="add your own generator checkpoint (.pt or NVIDIA .pkl) to the list")
    im.add_argument("path", metavar="PATH", help="checkpoint file")
    im.add_argument("--name", required=True, metavar="NAME",
                    help="name to list and load it by (letters, digits, . _ -)")
    im.add_argument("--description", default="", metavar="TEXT", help="one line shown in the list")
    im.add_argument("--source-prompt", default="", metavar="TEXT", help="default source prompt for its domain")
    im.set_defaults(handler=run_import)


def _need_action(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    raise CliError("models needs an action: list, download or import", exit_code=2)


def run_list(args: argparse.Namespace) -> int:
    from engine import zoo

    rows = zoo.list_models()
    if args.json:
        out = [{**asdict(r), "path": None if r.path is None else str(r.path)} for r in rows]
        print(json.dumps(out, indent=2))
        return 0
    header = f"{'NAME':<20} {'KIND':<9} {'RES':>5} {'SIZE':>10}  {'STATUS':<15} WHERE"
    print(header)
    for r in rows:
        if r.demo:
            status, where = "demo (built in)", "built in, no download; DEMO model, not real weights"
        elif r.downloaded:
            status, where = "downloaded", str(r.path)
        else:
            status, where = "not downloaded", f"-> {r.path}"
        res = str(r.resolution) if r.resolution else "-"
        kind = "generator" if r.kind == "generator" else "clip"
        size = "-" if r.demo else fmt_bytes(r.size_bytes)
        print(f"{r.name:<20} {kind:<9} {res:>5} {size:>10}  {status:<15} {where}")
    print(f"\ncache: {zoo.generators_dir().parent}   download with: nada-tui models download NAME")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from engine import zoo
    from engine.download import DownloadError
    from engine.generator_files import CheckpointError

    unknown = [n for n in args.names if n not in zoo.GENERATORS and n not in zoo.CLIP_MODELS]
    if unknown:
        raise CliError(zoo.unknown_model_message(unknown[0]), exit_code=2)
    failures: list[str] = []
    for name in args.names:
        entry = zoo.GENERATORS.get(name) or zoo.CLIP_MODELS[name]
        if entry.demo:
            print(f"{name}: demo model, built in: nothing to download")
            continue
        bar = ProgressPrinter(quiet=args.quiet)
        try:
            path = zoo.ensure_downloaded(name, bar.download)
        except (DownloadError, CheckpointError) as exc:
            bar.close()
            print(f"nada-tui: {name}: {exc}", file=sys.stderr)
            failures.append(name)
            continue
        bar.close()
        print(f"{name}: ready at {path}")
    if failures:
        raise CliError(f"could not get {', '.join(failures)} (see above)")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from engine import zoo
    from engine.generator_files import CheckpointError

    try:
        info = zoo.import_checkpoint(args.path, args.name, args.description, args.source_prompt)
    except CheckpointError as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:
        raise CliError(str(exc), exit_code=2) from None
    print(
        f"imported {args.path} ({info['format']}, {info['size']} px) as {info['name']!r}: {info['path']}\n"
        f"it is now listed by `nada-tui models list` and loads by the name {info['name']!r}"
    )
    return 0
