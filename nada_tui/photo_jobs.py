"""The app's photo jobs: invert photos into a saved session's latent space (engine.photos.invert_photos) and
render a saved latent at a strength between the frozen and the adapted generator (render_latent). Both run
on thread workers beside training and answer the photos screen that asked, with typed messages: the
worker thread never touches a widget. `NadaApp` derives from `PhotoJobsApp` (which derives from
`FileJobsApp`), so these handlers are the app's own.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from textual import on, work

from nada_tui.file_jobs import FileJobsApp
from nada_tui.messages import (
    PhotoEvents,
    PhotoRendered,
    PhotoRenderRequested,
    PhotosRequested,
    PhotosStopRequested,
    SessionsChanged,
)

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

    from engine.events import PhotoEvent

SEND_EVERY_S = 0.1  # progress goes to the screen in batches at most this often (ends and failures at once)


class PhotoJobsApp(FileJobsApp):
    device: str  # set by NadaApp: "auto", "cpu", "cuda", ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._photo_stops: dict[int, threading.Event] = {}  # the stop event of each inversion running
        self._photo_models: Any = None  # engine.photos.SessionModels of the last blend, kept for the next
        self._photo_models_lock = threading.Lock()

    @on(PhotosRequested)
    def _photos_requested(self, message: PhotosRequested) -> None:
        if self._photo_stops:
            self.notify("Photos are being inverted already: stop them first.", severity="warning")
            self.screen.post_message(PhotoEvents(message.token, (), ended=True,
                                                 error="Another inversion is running."))
            return
        stop = threading.Event()
        self._photo_stops[message.token] = stop
        self._invert(self.screen, message, stop)

    @on(PhotosStopRequested)
    def _photos_stop(self, message: PhotosStopRequested) -> None:
        stop = self._photo_stops.get(message.token)
        if stop is not None:
            stop.set()

    def _photos_ended(self, token: int) -> None:
        self._photo_stops.pop(token, None)
        self.post_message(SessionsChanged())  # the session lists its photos

    @work(thread=True, group="photos", exit_on_error=False, description="invert photos")
    def _invert(self, screen: MessagePump, message: PhotosRequested, stop: threading.Event) -> None:
        pending: list[PhotoEvent] = []
        sent = time.monotonic()

        def send(ended: bool = False, error: str | None = None) -> None:
            nonlocal sent
            screen.post_message(PhotoEvents(message.token, tuple(pending), ended, error))
            pending.clear()
            sent = time.monotonic()

        def on_event(event: PhotoEvent) -> None:
            from engine.events import InversionProgress

            pending.append(event)
            if not isinstance(event, InversionProgress) or time.monotonic() - sent >= SEND_EVERY_S:
                send()

        error = None
        try:
            from engine.photos import invert_photos

            invert_photos(message.info.id, list(message.photos), steps=message.steps, align=message.align,
                          pti_steps=message.pti_steps, on_event=on_event, stop=stop, device=self.device)
        except Exception as exc:  # a damaged session, no memory, a bug: said on the screen, the app lives on
            error = str(exc) or type(exc).__name__
        finally:
            send(ended=True, error=error)
            self.call_from_thread(self._photos_ended, message.token)

    @on(PhotoRenderRequested)
    def _render_requested(self, message: PhotoRenderRequested) -> None:
        self._render(self.screen, message)

    @work(thread=True, group="photo-render", exclusive=True, exit_on_error=False, description="render a latent")
    def _render(self, screen: MessagePump, message: PhotoRenderRequested) -> None:
        try:
            from engine.photos import load_latent, load_session_models, render_latent

            with self._photo_models_lock:  # one session's generators loaded once for all the blends
                if self._photo_models is None or self._photo_models.info.id != message.info.id:
                    self._photo_models = load_session_models(message.info.id, self.device)
                w_plus, _meta = load_latent(message.latent)
                image = render_latent(self._photo_models, w_plus, message.strength)
        except Exception as exc:  # a damaged latent or session: the screen says so
            screen.post_message(PhotoRendered(message.latent, message.strength, None, str(exc)))
            return
        screen.post_message(PhotoRendered(message.latent, message.strength, image))
