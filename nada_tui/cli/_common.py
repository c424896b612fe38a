"""What the subcommands share: the training-settings flags and the run options (generated from their
tables), the progress printer for training and downloads, engine errors as exit codes, and the end-of-run
report."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from engine.config import SETTINGS
from engine.run_options import RUN_OPTIONS
from nada_tui.cli import CliError
from nada_tui.formatting import fmt_bytes, fmt_clock

if TYPE_CHECKING:
    from engine.live_run import Run

SIGNAL_EXIT = {"SIGINT": 130, "SIGHUP": 129, "SIGTERM": 143}
DOWNLOAD_BAR = 28  # characters


# ----- training settings and run options as flags ---------------------------------------------------------
# The app's own `--device` (dest "device") shares the namespace with a subcommand's, so theirs is stored
# apart: `nada-tui --device cpu train ...` keeps working.
RUN_DESTS = {"device": "run_device"}


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per setting of engine.config.SETTINGS (dest `cfg_<field>`, default None = not given),
    prompts and target images in a group of their own."""
    prompt_group = p.add_argument_group("prompts")
    g = p.add_argument_group("training settings")
    for s in SETTINGS.values():
        s.add_flag(prompt_group if s.prompt else g, dest=f"cfg_{s.name}")


def add_run_options(p: argparse.ArgumentParser, *names: str) -> None:
    """The run options `names` (engine.run_options.RUN_OPTIONS), with their defaults, in a "run" group."""
    g = p.add_argument_group("run")
    for name in names:
        option = RUN_OPTIONS[name]
        option.add_flag(g, dest=RUN_DESTS.get(name, name), default=option.default, checked=True)


def config_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (absent flags keep their defaults)."""
    given = {s: getattr(args, f"cfg_{s.name}", None) for s in SETTINGS.values()}
    return {s.name: s.from_flag(v) for s, v in given.items() if v is not None}


def device_of(args: argparse.Namespace) -> str:
    """The subcommand's --device, else the one given before the subcommand, else auto."""
    given = [getattr(args, dest, None) for dest in ("run_device", "device")]
    return next((d for d in given if d and d != "auto"), "auto")


def _gone(stream: TextIO) -> TextIO:
    """The terminal went away (SIGHUP, closed pipe): send the rest to /dev/null, so that Python's final
    flush at exit does not fail and turn the exit code into 120."""
    sink = open(os.devnull, "w")  # noqa: SIM115 (lives until exit)
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is stream:
            setattr(sys, name, sink)
    return sink


# ----- progress ---------------------------------------------------------------------------------------
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
        return f"{m.it_per_s:5.1f} it/s  loss {loss:.4f}  ETA {fmt_clock(eta)}"

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
        """engine.download progress callback: a bar redrawn in place on a terminal, a line every 5 s
        (and at the end) in a log."""
        if self.quiet:
            return
        total, done = p.total_bytes, p.done_bytes
        finished = total is not None and done >= total
        if not self.tty:
            now = time.monotonic()
            if not finished and now - self._last_draw < 5:
                return
            self._last_draw = now
        if total:
            filled = int(DOWNLOAD_BAR * done / total)
            bar = "#" * filled + "." * (DOWNLOAD_BAR - filled)
            amount = f"{100 * done / total:5.1f}%  {fmt_bytes(done)} / {fmt_bytes(total)}"
        else:
            bar, amount = "?" * DOWNLOAD_BAR, fmt_bytes(done)
        text = f"{p.name:<12} [{bar}] {amount}  {fmt_bytes(p.bytes_per_s)}/s"
        if self.tty:
            self._write(f"\r\x1b[2K{text}")
            self._drawn = True
        else:
            self.line(text)

    def close(self) -> None:
        if self._drawn:
            self._write("\n")
            self._drawn = False


# ----- errors and the end-of-run report ----------------------------------------------------------------
def engine_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(usage errors -> exit 2, failures -> exit 1) raised while setting up a run."""
    from engine import sessions
    from engine.config import ConfigError
    from engine.errors import CheckpointError, ExportError, PromptError  # torch-free: `sessions show` stays quick

    usage: tuple[type[BaseException], ...] = (
        ConfigError,
        PromptError,
        ExportError,
        CheckpointError,  # UnknownModel too
        sessions.SessionNotFound,
        sessions.AmbiguousSession,
        sessions.InvalidName,
        sessions.AlreadyFinished,
    )
    return usage, (sessions.SessionError, RuntimeError, OSError, KeyError, ValueError)


def setup_or_exit(fn: Any, *a: Any, **kw: Any) -> Any:
    """Call `fn`; turn engine errors into CliError with the right exit code."""
    usage, failure = engine_errors()
    try:
        return fn(*a, **kw)
    except usage as exc:
        raise CliError(str(exc), 2) from None
    except failure as exc:
        raise CliError(str(exc) or type(exc).__name__, 1) from None


def open_run(build: Callable[..., Run], *args: Any, cli: argparse.Namespace, printer: ProgressPrinter,
             **kw: Any) -> Run:
    """Build a run with `build` (runs.start_session, resume_session or fork_session) on the device and
    checkpoint interval the command line gives, showing download progress; errors become exit codes."""
    run = setup_or_exit(build, *args, device=device_of(cli), checkpoint_every=cli.checkpoint_every,
                        progress=printer.download, **kw)
    printer.close()
    return run


def run_and_report(run: Run, printer: ProgressPrinter, quiet: bool) -> int:
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
        unsaved = result.status != "failed" and not result.saved
        head = {"finished": "Finished", "stopped": "Stopped", "failed": "Failed"}[result.status]
        if unsaved and result.status == "finished":
            head = "Trained"  # not finished on disk: the session holds an earlier step
        why = f" by {result.signal}" if result.signal else ""
        at = "to step" if head == "Trained" else "at step"
        if unsaved:
            say(
                f"{head}{why} {at} {result.step}/{result.total_steps}{loss_text}, but saving it failed: "
                f"the session holds step {result.saved_step}/{result.total_steps}."
            )
        else:
            say(f"{head}{why} {at} {result.step}/{result.total_steps}{loss_text}.")
        say(f"session {result.session_id}")
        say(f"  {result.path}")
        if unsaved:
            say(f"Free some disk space, then continue from step {result.saved_step} with: "
                f"nada-tui resume {result.session_id}")
        elif result.status == "stopped":
            say(f"Continue it with: nada-tui resume {result.session_id}")
        if result.status != "failed" and not unsaved:
            say(f"Sample it with:   nada-tui generate {result.session_id} -n 8 --out DIR")
            from engine.sessions.scores import brief, read_scores

            scores = read_scores(result.path)
            if scores and scores.get("step") == result.step:
                say(f"Scores ({scores.get('samples')} samples): {brief(scores)}; "
                    f"more: nada-tui eval {result.session_id}")
    if result.checkpoint_error:
        printer.line(f"error: {result.checkpoint_error}")
    if result.status == "failed":
        printer.line(f"error: {result.message}")
        return 1
    if result.signal:
        return SIGNAL_EXIT.get(result.signal, 1)
    return 1 if result.checkpoint_error else 0


