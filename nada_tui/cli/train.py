"""`nada-tui train`: adapt a generator headless, with a progress bar, into a new session."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import Any, TextIO

from nada_tui.cli import CliError

SIGNAL_EXIT = {"SIGINT": 130, "SIGHUP": 129, "SIGTERM": 143}


# ----- flags shared by train (and the settings part of resume) --------------------------------------
def _clip_spec(text: str) -> tuple[str, float]:
    """MODEL or MODEL:WEIGHT (a name may itself hold '/', as in ViT-B/32)."""
    name, sep, weight = text.rpartition(":")
    if sep and name:
        try:
            return name, float(weight)
        except ValueError:
            pass
    return text, 1.0


def _k(text: str) -> int | None:
    if text.lower() == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer, got {text!r}") from None


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2,3, got {text!r}") from None


# (flag, TrainConfig field, type, help)
CONFIG_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--iters", "iterations", int, "training steps (default 300)"),
    ("--batch", "batch", int, "images per step (default 2)"),
    ("--lr", "lr", float, "learning rate; Adam runs at lr x 0.8 (default 0.002)"),
    ("--global-weight", "global_weight", float, "g in (1-g)*directional + g*global, 0..1 (default 0)"),
    ("--k", "auto_layer_k", _k, "W+ layers trained at a time: auto (2/3 of them), 0 = all, or a number"),
    ("--interval", "auto_layer_interval", int, "steps between layer selections (default 10; 1 = every step)"),
    ("--falloff", "auto_layer_falloff", int, "k drops by one every this many steps; 0 = never (default 50)"),
    ("--min-k", "auto_layer_min_k", int, "k never drops below this (default 1)"),
    ("--layer-iters", "auto_layer_iters", int, "optimisation steps of each layer selection (default 1)"),
    ("--layer-batch", "auto_layer_batch", int, "latents scored in each layer selection (default 8)"),
    ("--mixing", "mixing", float, "style-mixing probability in training batches, 0..1 (default 0)"),
    ("--truncation", "sample_truncation", float, "truncation of previews and samples, 0..1 (default 0.7)"),
    ("--preview-every", "preview_every", int, "save a preview grid every N steps; 0 = only at the end (default 25)"),
    ("--preview-seeds", "preview_seeds", _seeds, "seeds of the preview grid (default 0,1,2,3)"),
    ("--seed", "seed", int, "random seed of the run (default 0)"),
]


def add_config_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training settings")
    for flag, dest, typ, help_text in CONFIG_FLAGS:
        g.add_argument(
            flag,
            dest=f"cfg_{dest}",
            type=typ,
            default=None,
            help=help_text,
            metavar=dest.split("_")[-1].upper() if typ is not _k else "K",
        )
    g.add_argument(
        "--templates",
        dest="cfg_templates",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the text direction over 79 ImageNet prompt templates (suits short class "
        "names such as 'dog', not sentences)",
    )
    g.add_argument(
        "--clip",
        dest="cfg_clip",
        action="append",
        type=_clip_spec,
        metavar="MODEL[:WEIGHT]",
        help="a CLIP model and its loss weight; repeat for several (default ViT-B/32, or the "
        "colour oracle with --demo)",
    )


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (absent flags keep their defaults)."""
    out = {dest: getattr(args, f"cfg_{dest}") for _f, dest, _t, _h in CONFIG_FLAGS}
    out["templates"] = args.cfg_templates
    out["clip_models"] = tuple(args.cfg_clip) if args.cfg_clip else None
    return {k: v for k, v in out.items() if v is not None}


def device_of(args: argparse.Namespace) -> str:
    return getattr(args, "run_device", None) or getattr(args, "device", None) or "auto"


def _gone(stream: TextIO) -> TextIO:
    """The terminal went away (SIGHUP, closed pipe): send the rest to /dev/null, so that Python's final
    flush at exit does not fail and turn the exit code into 120."""
    sink = open(os.devnull, "w")  # noqa: SIM115 (lives until exit)
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is stream:
            setattr(sys, name, sink)
    return sink


# ----- progress ---------------------------------------------------------------------------------------
def _clock(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class ProgressPrinter:
    """Events -> a one-line bar on a terminal, or a plain line every ~10% when stderr is a file/pipe.
    Output errors (a closed terminal after SIGHUP) are ignored: training and saving must go on."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        try:
            self.tty = self.stream.isatty()
        except (OSError, ValueError):
            self.tty = False
        self._drawn = False
        self._last_draw = 0.0
        self._last_line_step = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.stream = _gone(self.stream)

    def line(self, text: str) -> None:
        """A message on its own line (clears the bar first)."""
        if self._drawn:
            self._write("\r\x1b[2K")
            self._drawn = False
        self._write(text + "\n")

    def status(self, m: Any) -> str:
        loss = m.losses.get("total", float("nan"))
        eta = (m.total_steps - m.step) / m.it_per_s if m.it_per_s > 0 else 0
        return f"{m.it_per_s:5.1f} it/s  loss {loss:.4f}  ETA {_clock(eta)}"

    def __call__(self, event: Any) -> None:
        from engine.events import CheckpointSaved, LogMessage, StepMetrics, TrainingFailed

        if isinstance(event, StepMetrics):
            if self.quiet:
                return
            if self.tty:
                now = time.monotonic()
                if now - self._last_draw < 0.1 and event.step < event.total_steps:
                    return
                self._last_draw = now
                counter = f"step {event.step}/{event.total_steps} "
                tail = f" {100 * event.step / event.total_steps:3.0f}%  {self.status(event)}"
                width = max(10, shutil.get_terminal_size((100, 24)).columns - len(counter) - len(tail) - 3)
                filled = int(width * event.step / event.total_steps)
                self._write(f"\r\x1b[2K{counter}[{'#' * filled}{'-' * (width - filled)}]{tail}")
                self._drawn = True
            else:
                every = max(1, event.total_steps // 10)
                if event.step % every == 0 or event.step == event.total_steps or event.step == 1:
                    self.line(f"step {event.step}/{event.total_steps}  {self.status(event)}")
        elif isinstance(event, LogMessage):
            if event.level != "info" or not self.quiet:
                self.line(f"{event.level}: {event.text}")
        elif isinstance(event, CheckpointSaved):
            if not self.tty and not self.quiet:
                self.line(f"checkpoint at step {event.step} ({event.reason})")
        elif isinstance(event, TrainingFailed):
            self.line(f"error: {event.message}")

    def download(self, p: Any) -> None:
        """zoo/download progress callback."""
        if self.quiet:
            return
        mb = p.done_bytes / 1e6
        total = f"/{p.total_bytes / 1e6:.0f}" if p.total_bytes else ""
        text = f"downloading {p.name}: {mb:.0f}{total} MB at {p.bytes_per_s / 1e6:.1f} MB/s"
        if self.tty:
            self._write(f"\r\x1b[2K{text}")
            self._drawn = True
        elif time.monotonic() - self._last_draw > 5:
            self._last_draw = time.monotonic()
            self.line(text)

    def close(self) -> None:
        if self._drawn:
            self._write("\n")
            self._drawn = False


# ----- shared by train and resume ---------------------------------------------------------------------
def engine_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(usage errors -> exit 2, failures -> exit 1) raised while setting up a run."""
    from engine import sessions
    from engine.clip_loss import PromptError
    from engine.export import ExportError
    from engine.trainer import ConfigError

    usage: list[type[BaseException]] = [
        ConfigError,
        PromptError,
        ExportError,
        sessions.SessionNotFound,
        sessions.AmbiguousSession,
        sessions.InvalidName,
        sessions.AlreadyFinished,
    ]
    try:
        from engine.generator_files import CheckpointError

        usage.append(CheckpointError)
    except ImportError:
        pass
    return tuple(usage), (sessions.SessionError, RuntimeError, OSError, KeyError, ValueError)


def setup_or_exit(fn: Any, *a: Any, **kw: Any) -> Any:
    """Call `fn`; turn engine errors into CliError with the right exit code."""
    usage, failure = engine_errors()
    try:
        return fn(*a, **kw)
    except usage as exc:
        raise CliError(str(exc), 2) from None
    except KeyError as exc:  # the zoo says "unknown model" with a KeyError
        raise CliError(str(exc.args[0]) if exc.args else str(exc), 2) from None
    except failure as exc:
        raise CliError(str(exc) or type(exc).__name__, 1) from None


def run_and_report(run: Any, printer: ProgressPrinter, quiet: bool) -> int:
    """Train headless, print the summary; the exit code: 0 finished, 1 failed, 128+N after signal N."""
    from engine import runs

    if not quiet:
        printer.line(f"session {run.session_id} at {run.path}")
    try:
        result = runs.train_session(run, on_event=printer)
    finally:
        printer.close()
        run.close()
    out = sys.stdout

    def say(text: str) -> None:
        nonlocal out
        try:
            print(text, file=out, flush=True)
        except (OSError, ValueError):
            out = _gone(out)

    if quiet:
        say(result.session_id)
    else:
        loss = result.losses.get("total")
        parts = [f"{k} {v:.4f}" for k, v in result.losses.items() if k in ("directional", "global")]
        loss_text = f", loss {loss:.4f}" + (f" ({', '.join(parts)})" if parts else "") if loss is not None else ""
        head = {"finished": "Finished", "stopped": "Stopped", "failed": "Failed"}[result.status]
        why = f" by {result.signal}" if result.signal else ""
        say(f"{head}{why} at step {result.step}/{result.total_steps}{loss_text}.")
        say(f"session {result.session_id}")
        say(f"  {result.path}")
        if result.status == "stopped":
            say(f"Continue it with: nada-tui resume {result.session_id}")
        if result.status != "failed":
            say(f"Sample it with:   nada-tui generate {result.session_id} -n 8 --out DIR")
    if result.checkpoint_error:
        printer.line(f"error: {result.checkpoint_error}")
    if result.status == "failed":
        printer.line(f"error: {result.message}")
        return 1
    if result.signal:
        return SIGNAL_EXIT.get(result.signal, 1)
    return 1 if result.checkpoint_error else 0


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
    p.add_argument("--source", help="what the generator makes now, e.g. 'a photo of a dog'")
    p.add_argument("--target", help="what it should make, e.g. 'a pencil drawing of a dog'")
    add_config_flags(p)
    r = p.add_argument_group("run")
    r.add_argument(
        "--checkpoint-every",
        type=int,
        default=50,
        metavar="N",
        help="save a checkpoint every N steps (default 50; 0 = only at the end or on a signal)",
    )
    r.add_argument(
        "--device", dest="run_device", default=None, metavar="DEVICE", help="auto (default), cpu, cuda or cuda:N"
    )
    r.add_argument("--name", help="a display name for the session (default: 'source -> target')")
    r.add_argument("--quiet", action="store_true", help="no progress; print only the session id")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine import runs
    from engine.demo import DEMO_CLIP_ID, DEMO_GENERATOR_ID, DEMO_SOURCE, DEMO_TARGET
    from engine.trainer import TrainConfig

    demo = args.train_demo or getattr(args, "demo", False)
    if args.checkpoint_every < 0:
        raise CliError("--checkpoint-every must be 0 or more", 2)
    changes = config_changes(args)
    source, target = args.source, args.target
    if demo:
        model_id = DEMO_GENERATOR_ID
        source = DEMO_SOURCE if source is None else source
        target = DEMO_TARGET if target is None else target
        changes.setdefault("clip_models", ((DEMO_CLIP_ID, 1.0),))
    elif args.model:
        model_id = args.model
        try:
            from engine import zoo
        except ImportError:
            zoo = None
        if zoo is not None:
            entry = zoo.GENERATORS.get(args.model)
            imported = zoo.read_records().get(args.model, {}) if args.model in zoo.imported_names() else None
            if entry is None and imported is None:
                raise CliError(zoo.unknown_model_message(args.model), 2)
            if source is None:
                source = entry.source_prompt if entry is not None else (imported or {}).get("source_prompt")
    elif args.checkpoint:
        from pathlib import Path

        path = Path(args.checkpoint).expanduser()
        if not path.is_file():
            raise CliError(f"--checkpoint {args.checkpoint}: no such file", 2)
        model_id = str(path.resolve())
    else:
        raise CliError("choose a generator: --model NAME, --checkpoint PATH, or --demo (offline demo models)", 2)
    if source is None:
        raise CliError("--source is required: describe what the generator makes now, e.g. 'a photo of a dog'", 2)
    if target is None:
        raise CliError("--target is required: describe what it should make, e.g. 'a sketch of a dog'", 2)

    printer = ProgressPrinter(quiet=args.quiet)
    config = setup_or_exit(TrainConfig, source=source, target=target, **changes)
    # Prompts are checked before any model loads: nobody should wait for a download to hear that.
    from engine.clip_loss import validate_prompts

    setup_or_exit(validate_prompts, config.source, config.target, config.templates)
    if not args.quiet:
        printer.line(f"loading {model_id} and {', '.join(n for n, _ in config.clip_models)} ...")
    session_run = setup_or_exit(
        runs.start_session,
        config,
        model_id,
        name=args.name,
        device=device_of(args),
        checkpoint_every=args.checkpoint_every,
        progress=printer.download,
    )
    printer.close()
    return run_and_report(session_run, printer, args.quiet)
