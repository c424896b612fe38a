"""A run's event stream to the UI: the training thread's events, batched, posted as Textual messages.

Each posted message wakes the UI thread, and on the CPU every wake-up takes a core from the trainer's
OpenMP team (see nada_tui/bench.py): there events come once a second, as often as htop redraws; on a GPU,
four times a second, each batch closed by a step's metrics. A pause, a resume and the end of the run go
at once. Of the previews made within one batch only the newest is posted: older ones would never be drawn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from textual.message import Message

from engine.events import Event, PreviewReady, StateChanged, StepMetrics, TrainingFailed, TrainingFinished
from nada_tui.messages import PreviewPixels, RunEvents

EVENT_BATCH_S = 0.25
CPU_EVENT_BATCH_S = 1.0


class RunEventStream:
    """Called with each engine event on the training thread (a Run's `on_event`); posts `RunEvents` and
    `PreviewPixels` tagged with `token` through `post` (thread-safe, e.g. App.post_message)."""

    def __init__(self, token: str, post: Callable[[Message], object]) -> None:
        self.token = token
        self._post = post
        self._lock = threading.Lock()  # the training thread appends; a flush may race with it
        self._events: list[Event] = []
        self._preview: PreviewReady | None = None
        self._flushed_at = 0.0
        self._window = EVENT_BATCH_S

    def __call__(self, event: Event) -> None:
        now = time.monotonic()
        with self._lock:
            if isinstance(event, PreviewReady):
                self._preview = event
            else:
                self._events.append(event)
            if isinstance(event, StepMetrics) and event.memory is not None:
                self._window = CPU_EVENT_BATCH_S if event.memory.device == "cpu" else EVENT_BATCH_S
            urgent = isinstance(event, StateChanged | TrainingFinished | TrainingFailed)
            # A batch closes on a step's metrics (what follows a step, its selection, preview or
            # checkpoint, rides with the next one), so batches are a window apart in training time too.
            due = isinstance(event, StepMetrics) and now - self._flushed_at >= self._window
            if not (urgent or due):
                return
            events, preview = tuple(self._events), self._preview
            self._events, self._preview, self._flushed_at = [], None, now
        if events:
            self._post(RunEvents(self.token, events))
        if preview is not None:
            self._post(PreviewPixels(self.token, preview.step, preview.frozen, preview.adapted,
                                     tuple(preview.seeds)))
