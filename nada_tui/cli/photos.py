"""`nada-tui photos SESSION PHOTO... --out DIR`: invert photos through a session (engine.photos), a
progress bar per photo; bad photos are listed at the end and make the exit code 1."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from nada_tui.cli import CliError
from nada_tui.cli._common import add_run_options, device_of, setup_or_exit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "photos",
        help="invert your photos and render them through a session",
        description="Find each photo's W+ code in the session's original generator, then render it through "
        "the adapted one. Writes DIR/<name>.aligned.png (what was inverted), .inverted.png (the original "
        "generator's render), .adapted.png and .latent.npz (render it again with `generate --latents`); "
        "the session keeps a copy in its photos/ folder. Folders are expanded to their files.",
    )
    p.add_argument("session", help="session id or a unique prefix of it")
    p.add_argument("photos", nargs="+", metavar="PHOTO", help="image files or folders of them")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the results (created if missing)")
    p.add_argument("--steps", type=int, default=500, metavar="N", help="optimisation steps per photo (default 500)")
    p.add_argument("--no-align", dest="align", action="store_false", default=None,
                   help="resize and centre-crop instead of aligning faces (the default for non-face models)")
    p.add_argument("--pti", type=int, default=0, metavar="N",
                   help="pivotal tuning: tune a copy of the generator around each latent for N steps (default 0)")
    p.add_argument("--batch", type=int, default=None, metavar="B",
                   help="photos optimised together (default: by free memory, at most 16 on a GPU, 4 on a CPU)")
    add_run_options(p, "device")
    p.set_defaults(handler=run)


class PhotoBars:
    """Photo events -> one bar per photo of the batch being inverted (a terminal redraws them in place,
    at most 10 times a second), or a plain line every 10% of the steps when stderr is a file or a pipe."""

    WIDTH = 24

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (OSError, ValueError):
            self.tty = False
        self.failed: list[str] = []
        self.rows: dict[int, str] = {}  # photo index -> its line, for the photos of the current batch
        self.open: set[int] = set()  # those still being inverted
        self.index_of: dict[Path, int] = {}
        self._drawn = 0  # lines of bars on the screen below the last message
        self._last = 0.0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def __call__(self, event: Any) -> None:
        from engine.events import InversionProgress, PhotoDone, PhotoFailed

        if isinstance(event, InversionProgress):
            self._progress(event)
        elif isinstance(event, PhotoDone):
            r = event.result
            self._finish(event.photo, f"{event.photo}: done, {r.psnr_db:.1f} dB -> {r.adapted}")
        elif isinstance(event, PhotoFailed):
            self.failed.append(event.message)

    def _progress(self, e: Any) -> None:
        label = f"[{e.index + 1}/{e.count}] {Path(e.photo).name}"
        if not self.tty:
            if e.step == e.steps or e.step % max(1, e.steps // 10) == 0:
                self._write(f"{label} step {e.step}/{e.steps} loss {e.loss:.4f}\n")
            return
        if e.index not in self.open:
            if not self.open:  # a new batch: the finished bars stay on the screen above it
                self.rows, self._drawn = {}, 0
            self.open.add(e.index)
            self.index_of[Path(e.photo)] = e.index
        filled = int(self.WIDTH * e.step / max(1, e.steps))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.rows[e.index] = f"{label} [{bar}] {e.step}/{e.steps} loss {e.loss:.4f}"
        now = time.monotonic()
        if now - self._last >= 0.1 or e.step == e.steps:
            self._last = now
            self._redraw()

    def _finish(self, photo: Path, text: str) -> None:
        index = self.index_of.get(Path(photo))
        if not self.tty or index not in self.open:
            self._write(text + "\n")
            return
        self.rows[index] = text
        self.open.discard(index)
        self._redraw()

    def _redraw(self) -> None:
        up = f"\x1b[{self._drawn}F" if self._drawn else "\r"
        self._write(up + "".join(f"\x1b[2K{row}\n" for _, row in sorted(self.rows.items())))
        self._drawn = len(self.rows)


def run(args: argparse.Namespace) -> int:
    from engine.photos import invert_photos, load_session_models
    from engine.photos.loading import find_photos

    photos = setup_or_exit(find_photos, args.photos)
    if not photos:
        raise CliError("no photos found in the folders given: give image files", 2)
    if args.batch is not None and args.batch < 1:
        raise CliError(f"--batch must be 1 or more; got {args.batch}", 2)
    models = setup_or_exit(load_session_models, args.session, device_of(args) or "auto")
    bars = PhotoBars()
    if models.is_demo:
        print("demo models: the perceptual distance is a weight-free stand-in (multi-scale pixel/gradient "
              "distance), not LPIPS", file=sys.stderr)
    results = setup_or_exit(invert_photos, models, photos, args.out, steps=args.steps, align=args.align,
                            pti_steps=args.pti, on_event=bars, batch=args.batch)
    print(f"inverted {len(results)} of {len(photos)} photos into {args.out} "
          f"(copies kept in the session's photos/ folder)")
    if bars.failed:
        print(f"{len(bars.failed)} could not be used:", file=sys.stderr)
        for message in bars.failed:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0
