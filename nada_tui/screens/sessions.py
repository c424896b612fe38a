"""The sessions screen: every saved session in a table that sorts and filters (widgets/sessions_table.py);
the selected one's grid and loss curves below it (widgets/session_detail.py). Open (read-only),
resume, fork, generate, export, rename and delete are requests to the app, which knows whether a
session is training; the screen asks what a request needs (a confirmation, a folder) and only reads
the store. Videos (v) only read a session, so this screen encodes them on its own thread and shows
their progress (widgets/export_progress.py).

Sessions that other processes train (sweep runs, `nada-tui train`, a second app) are followed live: a
thread worker polls the sessions folder (`nada_tui.session_rows.RowFeed`) and their step, loss and
status cells update in place. Runs of a sweep sit together under a header row. Space marks rows; `c`
compares the marked sessions, or the sweep under the cursor, side by side (screens/compare.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input

from engine import paths
from nada_tui.formatting import fmt_bytes
from nada_tui.messages import (
    DeleteRequested,
    ExportRequested,
    ForkRequested,
    GenerateRequested,
    OpenRequested,
    RenameRequested,
    ResumeRequested,
    VideosRequested,
)
from nada_tui.run_buffer import ViewState
from nada_tui.screens.compare import CompareScreen
from nada_tui.screens.dialogs import Choice, ConfirmDialog, FormDialog
from nada_tui.screens.photos import PhotosScreen
from nada_tui.session_rows import RowFeed, Update
from nada_tui.widgets.export_progress import ExportProgress
from nada_tui.widgets.session_detail import SessionDetail
from nada_tui.widgets.sessions_table import SCORE_SORTS, SORTS, SWEEP_KEY, SessionsTable
from nada_tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from engine.sessions import SessionInfo

MAX_GENERATE = 10000
VIDEO_FORMATS = (("mp4", "MP4 (H.264)"), ("webp", "animated WebP"), ("gif", "GIF"))
OPENS = (CompareScreen, PhotosScreen)  # the screens this one opens (their keys are in the help)


def generate_problem(values: dict[str, str]) -> str | None:
    """What is wrong with the generate dialog's values, or None."""
    try:
        n = int(values["n"].strip())
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_GENERATE:
        return f"How many images: type a whole number from 1 to {MAX_GENERATE}."
    if not values["folder"].strip():
        return "Into folder: type the folder the images go into."
    return None


def video_problem(values: dict[str, str]) -> str | None:
    """What is wrong with the video dialog's values, or None."""
    from engine.errors import ExportError
    from engine.video_settings import VideoSettings

    if not values["folder"].strip():
        return "Into folder: type the folder the videos go into."
    try:
        VideoSettings(float(values["seconds"].strip()), format=values["format"]).check()
    except ValueError as exc:  # ExportError too
        return str(exc).replace("--seconds", "Seconds") if isinstance(exc, ExportError) else (
            "Seconds: type a number from 0.5 to 600.")
    return None


class SessionsScreen(Screen):
    BINDINGS = [
        Binding("enter,o", "open", "Open", id="sessions.open"),
        Binding("space", "mark", "Mark", id="sessions.mark"),
        Binding("c", "compare", "Compare", id="sessions.compare"),
        Binding("r", "resume", "Resume", id="sessions.resume"),
        Binding("f", "fork", "Fork", id="sessions.fork"),
        Binding("g", "generate", "Generate", id="sessions.generate"),
        Binding("e", "export", "Export", id="sessions.export"),
        Binding("v", "videos", "Videos", id="sessions.videos"),
        Binding("p", "photos", "Photos", id="sessions.photos"),
        Binding("n", "rename", "Rename", id="sessions.rename"),
        Binding("delete,d", "delete", "Delete", id="sessions.delete"),
        Binding("s", "sort", "Sort", id="sessions.sort"),
        Binding("slash", "filter", "Filter", id="sessions.filter"),
        Binding("escape", "leave_filter", "Leave filter", show=False),
        # Priority: the table would take the arrows to scroll sideways; they pass on while filtering.
        Binding("left", "timelapse(-1)", "Time-lapse: earlier preview", id="sessions.earlier", show=False,
                priority=True),
        Binding("right", "timelapse(1)", "Time-lapse: later preview", id="sessions.later", show=False,
                priority=True),
    ]

    def __init__(self, view: ViewState) -> None:
        super().__init__()
        self.view = view
        self.feed = RowFeed()
        self._seen_sessions = -1
        self._live_version = -1

    def compose(self) -> ComposeResult:
        yield StatusBar(id="sessions-status", classes="status-bar")
        yield Input(placeholder="filter: name, prompt, model, status  (/)", id="filter", compact=True)
        yield SessionsTable(self.view, id="sessions")
        yield SessionDetail(id="session-detail")
        yield ExportProgress(id="export-progress")
        yield Footer()

    @property
    def table(self) -> SessionsTable:
        return self.query_one(SessionsTable)

    @property
    def detail(self) -> SessionDetail:
        return self.query_one(SessionDetail)

    def on_mount(self) -> None:
        self.table.sweep_runs = self.feed.sweep_runs
        self.reload()
        self.set_interval(0.25, self.tick)
        self.table.focus()

    def on_screen_resume(self) -> None:
        self.reload()
        self.table.focus()

    # ----- data: a full read, then polls that report only what changed ------------------------
    def reload(self) -> None:
        self._seen_sessions = self.view.sessions_version
        self.feed.want_full()
        self._poll_if_due()

    def _poll_if_due(self) -> None:
        full = self.feed.due()
        if full is not None:
            self._read_rows(full)

    @work(thread=True, group="sessions-list", exit_on_error=False)
    def _read_rows(self, full: bool) -> None:
        update = self.feed.read(full)
        self.app.call_from_thread(self._rows_read, update)

    def _rows_read(self, update: Update) -> None:
        self.feed.done(update)
        if update.error:
            self.notify(update.error, severity="error")
        if update.full:
            self.table.replace(update.rows)
            return
        self.table.merge(update.rows, update.removed)
        changed = {r.id: r for r in update.rows}
        shown = self.detail.shown
        if shown in changed and not self.view.is_live(shown):
            self.detail.follow(changed[shown].info)

    def tick(self) -> None:
        """Live: the session training now updates its row and, when selected, its curve."""
        if self.app.screen is not self:
            return
        if self.view.sessions_version != self._seen_sessions:
            self.reload()
            return
        self._poll_if_due()  # sessions other processes train
        buf = self.view.buffer
        if buf is None or buf.session_id is None or buf.version == self._live_version:
            return
        self._live_version = buf.version
        row = next((r for r in self.table.sessions if r.id == buf.session_id), None)
        if row is not None:
            self.table.update_rows([row])
        if self.detail.shown == buf.session_id:
            self.detail.feed_live(buf.records)

    @on(SessionsTable.Shown)
    def _draw_header(self) -> None:
        table = self.table
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" nada-tui ", style="bold reverse")
        if self.view.demo:
            t.append(" DEMO ", style="bold black on yellow")
        t.append(f" Sessions: {len(table.listed())}/{len(table.sessions)}  sort: {table.sort_key}")
        running = table.running()
        if running:
            t.append(f"  ● {running} training", style="green")
        if table.marked:
            t.append(f"  marked: {len(table.marked)} (c compares)", style="bold")
        if table.filter_text:
            t.append(f"  filter: {table.filter_text!r}")
        self.query_one("#sessions-status", StatusBar).set_text(t)

    def select_session(self, session_id: str) -> None:
        """Put the cursor on a session (the command palette's search uses it); clears a filter that
        hides it."""
        if not self.table.move_to(session_id):
            self.table.filter_text = ""
            self.query_one("#filter", Input).value = ""
            self.table.select_later(session_id)
            self.reload()

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        key = self.table.cursor_key()
        if key is not None and key.startswith(SWEEP_KEY):
            if key != self.detail.shown:
                name = key.removeprefix(SWEEP_KEY)
                self.detail.show_sweep(key, name, sum(1 for r in self.table.sessions if r.sweep == name))
            return
        r = self.table.selected()
        if r is not None:
            self.detail.show(r.info)

    # ----- filter and sort ------------------------------------------------------------------
    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.filter_text = event.value.strip()
        self.table.refill()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.table.focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "timelapse":  # the arrows move the cursor in the filter field
            return not isinstance(self.focused, Input) and len(self.detail.timelapse.frames) > 1
        return True

    def action_timelapse(self, delta: int) -> None:
        self.detail.timelapse.step(delta)

    def action_sort(self) -> None:
        table = self.table
        table.sort_key = SORTS[(SORTS.index(table.sort_key) + 1) % len(SORTS)]
        table.refill()
        what = "loss (the mean total loss of the last 20 logged steps)" if table.sort_key == "loss" else table.sort_key
        if table.sort_key in SCORE_SORTS:
            what += " score, best first (sessions without scores last: `nada-tui eval` measures them)"
        self.notify(f"Sorted by {what}", timeout=2)

    # ----- actions: dialogs here, decisions in the app --------------------------------------
    def _usable(self) -> SessionInfo | None:
        r = self.table.selected()
        if r is None:
            self.notify("No session selected.", severity="warning", timeout=3)
            return None
        if r.info.damaged:
            self.notify(f"{r.id} is damaged: {r.info.damaged}", severity="error")
            return None
        return r.info

    def action_open(self) -> None:
        info = self._usable()
        if info is not None:
            self.post_message(OpenRequested(info))

    def action_mark(self) -> None:
        """Space: mark or unmark the session under the cursor for comparison; on a sweep's header, all
        of its runs that the table shows."""
        self.table.toggle_mark()

    def action_compare(self) -> None:
        """c: the marked sessions side by side; with none marked, the sweep under the cursor."""
        rows, title = self.table.to_compare()
        if not rows:
            self.notify("Mark sessions with Space (or put the cursor on a sweep), then press c to compare them.",
                        severity="warning", timeout=5)
            return
        self.app.push_screen(CompareScreen([r.info for r in rows], title))

    def action_resume(self) -> None:
        info = self._usable()
        if info is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.post_message(ResumeRequested(info))

        self.app.push_screen(ConfirmDialog(
            f"Resume {info.name!r} from step {info.step}? It trains on in this same session (f forks a copy "
            "instead).", yes="Resume", no="Cancel"), done)

    def action_fork(self) -> None:
        info = self._usable()
        if info is None:
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                adapted = values["start"] == "adapted"
                self.post_message(ForkRequested(info, values["source"], values["target"], adapted))

        start = Choice("start", "Start from", (
            ("base", "base: the original model"),
            ("adapted", "adapted: this session's weights (then the source should describe the adapted domain)"),
        ), "base")
        self.app.push_screen(FormDialog(
            f"Fork {info.name}: edit the prompts; a new session trains them",
            [("source", "Source", info.source), ("target", "Target", info.target), start],
            ok="Fork and train"), done)

    def action_generate(self) -> None:
        info = self._usable()
        if info is None:
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                folder = Path(values["folder"].strip()).expanduser()
                self.post_message(GenerateRequested(info, int(values["n"].strip()), folder))

        default = paths.data_dir() / "generated" / info.id
        self.app.push_screen(FormDialog(f"Generate images from {info.name}",
                                        [("n", "How many images", "8"), ("folder", "Into folder", str(default))],
                                        ok="Generate", check=generate_problem), done)

    def action_export(self) -> None:
        info = self._usable()
        if info is None:
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                self.post_message(ExportRequested(info, Path(values["folder"]).expanduser()))

        self.app.push_screen(FormDialog(f"Export {info.name}: <id>.pt (rosinality g_ema + latent_avg), grid PNG, "
                                        "metrics CSV", [("folder", "Into folder", str(paths.data_dir() / "exports"))],
                                        ok="Export"), done)

    def action_videos(self) -> None:
        """v: the session's three videos (latent walk, strength sweep, time-lapse) into a folder; the app
        encodes them on a worker and reports the frames to the bar here."""
        info = self._usable()
        if info is None:
            return
        progress = self.query_one(ExportProgress)
        if progress.busy:
            self.notify("A video export is running: wait for it to finish.", severity="warning", timeout=4)
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                progress.begin(f"Exporting the videos of {info.name}: loading the generators")
                folder = Path(values["folder"].strip()).expanduser()
                self.post_message(VideosRequested(info, folder, float(values["seconds"]), values["format"]))

        default = paths.data_dir() / "exports"
        self.app.push_screen(FormDialog(
            f"Videos of {info.name}: a latent walk (frozen | adapted), a strength sweep 0 -> 1 and the "
            "training time-lapse", [("folder", "Into folder", str(default)), ("seconds", "Seconds each", "8"),
                                    Choice("format", "Format", VIDEO_FORMATS, "mp4")],
            ok="Export videos", check=video_problem), done)

    @on(ExportProgress.Advanced)
    def _video_advanced(self, message: ExportProgress.Advanced) -> None:
        self.query_one(ExportProgress).advance(message.kind, message.done, message.total)

    @on(ExportProgress.Finished)
    def _videos_finished(self, message: ExportProgress.Finished) -> None:
        self.query_one(ExportProgress).end()
        if message.error is not None:
            self.notify(message.error, title="Video export failed", severity="error")
        else:
            self.notify("\n".join(message.paths), title=f"Exported the videos of {message.session_name}")

    def action_photos(self) -> None:
        """p: your own photos through the selected session (inverted, then frozen | adapted)."""
        info = self._usable()
        if info is not None:
            self.app.push_screen(PhotosScreen(info))

    def action_rename(self) -> None:
        info = self._usable()
        if info is None:
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                self.post_message(RenameRequested(info, values["name"]))

        self.app.push_screen(FormDialog("Rename session", [("name", "Name", info.name)], ok="Rename"), done)

    def action_delete(self) -> None:
        r = self.table.selected()
        if r is None:
            return
        if self.view.is_live(r.id):
            self.notify("That session is training now: stop it first (F8 on the train screen).", severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.detail.forget()
                self.post_message(DeleteRequested(r.info))

        self.app.push_screen(ConfirmDialog(f"Delete session {r.info.name!r} ({fmt_bytes(r.size_bytes)})? This cannot "
                                           "be undone.", yes="Delete", no="Keep", danger=True), done)
