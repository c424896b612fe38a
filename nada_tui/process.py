"""Process-level workarounds, each with the measurement or failure that justifies it. Nothing else in
the app touches threads pools, file descriptors or `os._exit`.

1. Thread workers on short-lived threads (`ThreadPerTaskExecutor`). Textual runs `@work(thread=True)`
   workers on asyncio's default executor, whose pool threads live on. A pool thread that ever ran torch
   keeps its OpenMP thread team; with more OpenMP threads alive than CPU cores, OpenMP throttles its
   spin-waits, and the training thread ran ~30% slower on a 2-core box (measured with
   `python -m nada_tui.bench`). One short-lived thread per task frees its team on exit.
2. Drawing on the controlling terminal when stderr is a file (`draw_on_the_terminal`). Textual draws on
   stderr; a user who runs `nada-tui 2>log` to keep warnings got a blank terminal and a log full of
   escape codes.
3. Exiting shortly after a SIGHUP/SIGTERM save (`exit_soon`). With the terminal gone, restoring it can
   block forever in a write; the process would stay alive (holding the session lock) after the session
   was saved. A daemon timer ends it one second after the app has asked to exit.
5. Skipping the interpreter's teardown once the app has exited and the session is saved (`exit_now`).
   After torch and openai-clip are imported, Python's own shutdown took 1.4-4.3 s on the 2-core box
   (`python -c "import clip"` alone: 3.5 s from its last line to the process ending), which made quitting
   take 2.3-4.2 s idle and up to 11.5 s while training (measured in tmux). Nothing is left to tear down
   that matters: the session is closed, the terminal restored, the streams are flushed first. Quitting
   while training does not wait for the step in progress: the run saves on its own thread while the
   terminal is restored, and the process ends when both are done. Commands that load torch (`train`,
   `resume`, ...) end the same way once their output is flushed (nada_tui/__main__.py).
4. No Textual timer with a delay of zero or less (`guard_timers`). In Textual 8.2.8 a timer whose
   interval is negative spins in `Timer._run` without ever awaiting (with skip=True the catch-up
   `count = int((now - start) / interval + 1)` never passes `repeat`), so the event loop stops: no keys,
   no SIGTERM, no SIGHUP, only SIGKILL ends the app (seen about 1 launch in 15 while training on a busy
   CPU). The source: `ToastRack.show` checks `notification.has_expired`, then `Toast.__init__` reads
   `notification.time_left` later (inside `mount_all`'s generator), so a toast that expires in between,
   typically when a screen switch re-shows every notification, sets a negative timer. A zero interval
   divides by zero in the same line. The guard clamps every Timer's interval to at least MIN_TIMER_S.
6. Long-lived objects frozen out of the cyclic GC while a run trains (`freeze_while_training`). A full
   collection walks every object in the process: with torch, CLIP and Textual loaded that is ~480k
   objects and a pause of ~220 ms, the GIL held and training stalled, about every 10 s of a demo run;
   frozen, the pause is ~10 ms. Unfrozen when the last run's thread ends, so that a finished trainer's
   reference cycles (and the memory they hold) are collected again.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

MIN_TIMER_S = 0.001


class ThreadPerTaskExecutor(ThreadPoolExecutor):
    """A ThreadPoolExecutor in type only (asyncio insists on one): each task gets a fresh thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # delivered to the awaiting worker, as a pool would
                future.set_exception(exc)

        threading.Thread(target=run, name="nada-task", daemon=True).start()
        return future


def draw_on_the_terminal() -> None:
    """When stderr is not a terminal, point Textual's output (sys.__stderr__) at /dev/tty."""
    err = sys.__stderr__
    if err is not None and err.isatty():
        return
    try:
        tty = open("/dev/tty", "w")  # noqa: SIM115 - lives as long as the app
    except OSError:
        return  # no terminal at all: let Textual fail with its own message
    sys.__stderr__ = tty


def exit_soon(delay_s: float = 1.0, code: int = 0, first: Callable[[], None] | None = None) -> None:
    """End the process after `delay_s` (having run `first`, e.g. finishing a save) even if restoring a
    dead terminal blocks."""

    def end() -> None:
        if first is not None:
            first()
        exit_now(code)

    timer = threading.Timer(delay_s, end)
    timer.daemon = True
    timer.start()


def exit_now(code: int = 0) -> None:
    """Flush the standard streams and end the process without the interpreter's teardown (see 5.)."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal: nothing to flush to
    os._exit(code)


def guard_timers() -> None:
    """Make every Textual Timer wait at least MIN_TIMER_S (idempotent; see 4. above)."""
    from textual.timer import Timer

    if getattr(Timer.__init__, "_nada_guarded", False):
        return
    original = Timer.__init__

    def init(self: Timer, event_target: Any, interval: float, *args: Any, **kwargs: Any) -> None:
        original(self, event_target, max(float(interval), MIN_TIMER_S), *args, **kwargs)

    init._nada_guarded = True  # type: ignore[attr-defined]
    Timer.__init__ = init  # type: ignore[method-assign]


_frozen_runs = 0
_frozen_lock = threading.Lock()


def freeze_while_training(worker: Any) -> threading.Thread:
    """Freeze what exists now out of the GC's full collections until `worker` (anything with a blocking
    `join()`: engine.training_worker.TrainingWorker) has ended and no other frozen run is left (see 6.). Returns
    the thread that waits for it."""
    global _frozen_runs
    with _frozen_lock:
        _frozen_runs += 1
        if _frozen_runs == 1:
            gc.freeze()

    def thaw_when_done() -> None:
        global _frozen_runs
        worker.join()
        with _frozen_lock:
            _frozen_runs -= 1
            if _frozen_runs == 0:
                gc.unfreeze()

    waiter = threading.Thread(target=thaw_when_done, name="nada-gc-thaw", daemon=True)
    waiter.start()
    return waiter
