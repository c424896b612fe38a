"""Thread workers that end when their work ends.

Textual runs `@work(thread=True)` workers on asyncio's default executor, whose pool threads live on.
A pool thread that ever ran torch keeps its OpenMP thread team; with more OpenMP threads alive than
CPU cores, OpenMP throttles its spin-waits, and the training thread ran ~30% slower on a 2-core box
(measured with `python -m nada_tui.bench`). One short-lived thread per task frees its team on exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


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
