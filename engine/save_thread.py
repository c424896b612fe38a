"""`SaveThread`: the one thread per run that writes its checkpoints and sample pictures, so a slow or full
disk never holds up a training step.

The training thread copies what a write needs off the device first (a checkpoint's state as CPU tensors,
a preview as rendered PIL images), then hands the write over with `submit`. Writes run in the order they
were handed over. Their results come back to the training thread: `deliver()` (called between steps, and
while paused) runs each finished write's `on_done(result, error)` there, so every event of a run still
comes from one thread, in order, and a run is reported saved only once its file is on disk.

Bounds, so memory stays in check:
- at most one checkpoint is in flight. When the next one is due while the previous is still being
  written, the training thread waits for it (`wait_for_checkpoint`): every checkpoint is written, at most
  one copy of the state is held besides the weights being trained, and training waits only when one
  write takes longer than the steps between two checkpoints (the disk is then the bottleneck anyway);
- other writes (a preview's PNG) queue up to `max_queued`; beyond that `submit` waits.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

Job = Callable[[], Any]
OnDone = Callable[[Any, Exception | None], None]
_CLOSE = object()


class SaveThread:
    """One writer thread; `submit` from the training thread, `deliver`/`wait` there too."""

    def __init__(self, name: str = "nada-save", max_queued: int = 8) -> None:
        self._name = name
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=max_queued)
        self._done: queue.SimpleQueue[tuple[OnDone, Any, Exception | None, bool]] = queue.SimpleQueue()
        self._changed = threading.Condition()
        self._pending = 0  # submitted and not yet finished
        self._checkpoints = 0  # of which checkpoints
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Writes handed over and not finished yet."""
        return self._pending

    def submit(self, job: Job, on_done: OnDone, checkpoint: bool = False) -> None:
        """Run `job()` on the writer thread; `on_done(result, None)` or `on_done(None, exception)` follows
        on the thread that calls `deliver`. A checkpoint first waits for the previous one (see above)."""
        if checkpoint:
            self.wait_for_checkpoint()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()
        with self._changed:
            self._pending += 1
            self._checkpoints += checkpoint
        self._jobs.put((job, on_done, checkpoint))

    def deliver(self) -> int:
        """Run the `on_done` of every finished write, here; how many ran."""
        n = 0
        while True:
            try:
                on_done, result, error, _ = self._done.get_nowait()
            except queue.Empty:
                return n
            n += 1
            on_done(result, error)

    def wait_for_checkpoint(self) -> None:
        """Until no checkpoint is being written, then `deliver()`."""
        self._wait(lambda: self._checkpoints == 0)

    def wait(self) -> None:
        """Until every write handed over has finished, then `deliver()` (a run's stop and finish)."""
        self._wait(lambda: self._pending == 0)

    def _wait(self, ready: Callable[[], bool]) -> None:
        with self._changed:
            self._changed.wait_for(ready)
        self.deliver()

    def close(self) -> None:
        """Finish the writes handed over (their results are not delivered) and end the thread."""
        if self._thread is not None:
            self._jobs.put(_CLOSE)
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is _CLOSE:
                return
            job, on_done, checkpoint = item
            result, error = None, None
            try:
                result = job()
            except Exception as exc:  # reported on the training thread; the writer goes on
                error = exc
            self._done.put((on_done, result, error, checkpoint))
            with self._changed:
                self._pending -= 1
                self._checkpoints -= checkpoint
                self._changed.notify_all()
