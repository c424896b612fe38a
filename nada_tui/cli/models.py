"""`nada-tui models list|download|import`: the pretrained registry and the local model cache."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from nada_tui.cli import CliError


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
    im.add_argument("--name", required=True, help="name to list and load it by (letters, digits, . _ -)")
    im.add_argument("--description", default="", help="one line shown in the list")
    im.add_argument("--source-prompt", default="", help="default source prompt for its domain")
    im.set_defaults(handler=run_import)


def _need_action(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    raise CliError("models needs an action: list, download or import", exit_code=2)


def human_size(n: int | float | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def run_list(args: argparse.Namespace) -> int:
    from engine import zoo

    rows = zoo.list_models()
    if args.json:
        out = [{**r, "path": str(r["path"]) if r["path"] is not None else None} for r in rows]
        print(json.dumps(out, indent=2))
        return 0
    header = f"{'NAME':<20} {'KIND':<9} {'RES':>5} {'SIZE':>10}  {'STATUS':<15} WHERE"
    print(header)
    for r in rows:
        if r["demo"]:
            status, where = "demo (built in)", "built in, no download; DEMO model, not real weights"
        elif r["downloaded"]:
            status, where = "downloaded", str(r["path"])
        else:
            status, where = "not downloaded", f"-> {r['path']}"
        res = str(r["resolution"]) if r["resolution"] else "-"
        kind = "generator" if r["kind"] == "generator" else "clip"
        size = "-" if r["demo"] else human_size(r["size_bytes"])
        print(f"{r['name']:<20} {kind:<9} {res:>5} {size:>10}  {status:<15} {where}")
    print(f"\ncache: {zoo.generators_dir().parent}   download with: nada-tui models download NAME")
    return 0


class ProgressBar:
    """A one-line progress bar on stderr, redrawn in place on a terminal, sparse lines otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self.last_line = 0.0
        self.drawn = False

    def __call__(self, p: Any) -> None:
        total, done = p.total_bytes, p.done_bytes
        finished = total is not None and done >= total
        if not self.tty:  # logs: one line every 5 s and at the end
            now = time.monotonic()
            if not finished and now - self.last_line < 5:
                return
            self.last_line = now
        if total:
            filled = int(self.width * done / total)
            bar = "#" * filled + "." * (self.width - filled)
            amount = f"{100 * done / total:5.1f}%  {human_size(done)} / {human_size(total)}"
        else:
            bar, amount = "?" * self.width, human_size(done)
        line = f"{p.name:<12} [{bar}] {amount}  {human_size(p.bytes_per_s)}/s"
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
        self.drawn = False


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
        bar = None if args.quiet else ProgressBar()
        try:
            path = zoo.ensure_downloaded(name, bar)
        except (DownloadError, CheckpointError) as exc:
            if bar:
                bar.close()
            print(f"nada-tui: {name}: {exc}", file=sys.stderr)
            failures.append(name)
            continue
        if bar:
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
