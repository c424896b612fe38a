"""Jobs on saved sessions and model files that run beside training: delete, rename, generate, export,
videos and download. Each runs on a thread worker and ends as a toast; none touches the live run. `NadaApp` derives
from `FileJobsApp` (through photo_jobs.PhotoJobsApp), so these handlers are the app's own (the app decides)
while app.py keeps the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App

from nada_tui.messages import (
    DeleteRequested,
    DownloadRequested,
    ExportRequested,
    GenerateRequested,
    LoadProgress,
    RenameRequested,
    SessionsChanged,
    VideosRequested,
)
from nada_tui.widgets.export_progress import ExportProgress

if TYPE_CHECKING:
    from textual.screen import Screen

    from engine.sessions import SessionInfo
    from nada_tui.run_buffer import ViewState


class FileJobsApp(App):
    view: ViewState  # set by NadaApp

    @on(DeleteRequested)
    def _delete(self, message: DeleteRequested) -> None:
        if self.view.is_live(message.info.id):
            self.notify("That session is training now: stop it first.", severity="warning")
            return
        self._store_operation("delete", message.info)

    @on(RenameRequested)
    def _rename(self, message: RenameRequested) -> None:
        self._store_operation("rename", message.info, message.name)

    @work(thread=True, group="store", exit_on_error=False)
    def _store_operation(self, what: str, info: SessionInfo, name: str = "") -> None:
        from engine import sessions

        try:
            if what == "delete":
                sessions.delete(info.id)
            else:
                sessions.rename(info.id, name)
        except (sessions.SessionError, OSError) as exc:  # locked by another process, bad name, permissions
            self.call_from_thread(self.notify, f"Could not {what}: {exc}", severity="error")
            return
        if what == "delete":
            self.call_from_thread(self.notify, f"Deleted {info.name}.", timeout=3)
        self.post_message(SessionsChanged())

    def _job(self, what: str, done: str, job: Callable[[], str]) -> None:
        """On a thread worker: run `job`; what it returns, or its error, becomes a toast (the app lives on)."""
        try:
            text = job()
        except Exception as exc:  # offline, a bad file, a full disk: shown to the user, whatever it is
            self.call_from_thread(self.notify, f"{type(exc).__name__}: {exc}", title=f"{what} failed",
                                  severity="error")
            return
        self.call_from_thread(self.notify, text, title=done)

    @on(GenerateRequested)
    @work(thread=True, group="generate", exit_on_error=False)
    def _generate(self, message: GenerateRequested) -> None:
        from engine import export

        self._job("Generate", "Generated", lambda: f"{len(export.generate(message.info.id, message.n, message.folder))}"
                  f" images in {message.folder}")

    @on(ExportRequested)
    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, message: ExportRequested) -> None:
        from engine import export

        self._job("Export", "Exported",
                  lambda: "\n".join(str(p) for p in export.export_all(message.info.id, message.folder).values()))

    @on(DownloadRequested)
    @work(group="download", exclusive=True, thread=True, exit_on_error=False)
    def _download(self, message: DownloadRequested) -> None:
        from engine import zoo

        def download() -> str:
            zoo.ensure_downloaded(message.model_id, progress=lambda p: self.post_message(LoadProgress(None, p)))
            return f"{message.model_id} is ready."

        self._job("Download", "Downloaded", download)

    @on(VideosRequested)
    def _videos_requested(self, message: VideosRequested) -> None:
        self._videos(self.screen, message)

    @work(thread=True, group="videos", exit_on_error=False)
    def _videos(self, screen: Screen, message: VideosRequested) -> None:
        """Encode the videos; progress and the outcome go to the screen that asked (its bar and toast)."""
        from engine import export
        from engine.video_settings import VideoSettings

        def advanced(kind: str, done: int, total: int) -> None:
            screen.post_message(ExportProgress.Advanced(kind, done, total))

        info = message.info
        try:
            settings = VideoSettings(message.seconds, format=message.video_format)
            written = export.export_videos(info, message.folder, None, settings, progress=advanced)
        except Exception as exc:  # a full disk, a read-only folder, no previews yet: said, the app lives on
            screen.post_message(ExportProgress.Finished(info.name, [], f"{type(exc).__name__}: {exc}"))
            return
        screen.post_message(ExportProgress.Finished(info.name, [str(p) for p in written.values()], None))
