"""The sessions screen: every saved session in a table that sorts and filters; the selected one's grid
and loss curves. Open (read-only), resume, fork, generate, export, rename and delete are requests to the
app, which knows whether a session is training; the screen only reads the store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
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
)
from nada_tui.run_buffer import ViewState
from nada_tui.screens.dialogs import ConfirmDialog, FormDialog
from nada_tui.widgets.loss_chart import LossChart
from nada_tui.widgets.status_bar import StatusBar
from nada_tui.widgets.timelapse import Timelapse, frames_of

COLUMNS = (("name", "Name"), ("model", "Model"), ("prompts", "Source -> target"), ("steps", "Steps"),
           ("loss", "Final loss"), ("date", "Date"), ("size", "Size"), ("status", "Status"))
SORTS = ("date", "name", "steps", "loss", "size")


@dataclass(frozen=True)
class Row:
    """A session as the table shows it: the store's SessionInfo and its size on disk."""

    info: Any  # engine.sessions.SessionInfo
    size_bytes: int

    @property
    def id(self) -> str:
        return self.info.id


def read_rows() -> list[Row]:
    """Every saved session with its size (walks each directory: call from a thread)."""
    from engine import sessions

    return [Row(i, sessions.disk_usage(i.path)) for i in sessions.list_sessions()]


def session_grid(info: Any) -> Any | None:
    """The session's latest preview (frozen row over adapted row) as a PIL image, or None."""
    from PIL import Image

    from engine import sessions

    for path in [info.path / sessions.GRID_FILE, *sessions.samples(info.path)[::-1]]:
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, ValueError):
            continue
    return None


class SessionsScreen(Screen):
    BINDINGS = [
        Binding("enter,o", "open", "Open", id="sessions.open"),
        Binding("r", "resume", "Resume", id="sessions.resume"),
        Binding("f", "fork", "Fork", id="sessions.fork"),
        Binding("g", "generate", "Generate", id="sessions.generate"),
        Binding("e", "export", "Export", id="sessions.export"),
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
        self.rows: list[Row] = []
        self.sort_key = "date"
        self.filter_text = ""
        self._seen_sessions = -1
        self._detail_id: str | None = None
        self._live_version = -1
        self._live_fed = 0
        self._want_selected: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(id="sessions-status", classes="status-bar")
        yield Input(placeholder="filter: name, prompt, model, status  (/)", id="filter", compact=True)
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="session-detail"):
            with Vertical(id="session-grid-box", classes="panel"):
                yield Timelapse(Text("select a session", style="dim"), id="session-grid")
            yield LossChart(id="session-chart", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.reload()
        self.set_interval(0.25, self.tick)
        table.focus()

    def on_screen_resume(self) -> None:
        self.reload()
        self.query_one(DataTable).focus()

    # ----- data -----------------------------------------------------------------------------
    def reload(self) -> None:
        self._seen_sessions = self.view.sessions_version
        self._read_rows()

    @work(thread=True, exclusive=True, group="sessions-list", exit_on_error=False)
    def _read_rows(self) -> None:
        try:
            rows = read_rows()
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"Could not read the sessions folder: {exc}", severity="error")
            rows = []
        self.app.call_from_thread(self._rows_read, rows)

    def _rows_read(self, rows: list[Row]) -> None:
        self.rows = rows
        self.refill()

    def visible(self) -> list[Row]:
        q = self.filter_text.lower()
        rows = [r for r in self.rows if not q or q in " ".join(
            (r.info.name, r.info.model_id, r.info.source, r.info.target, r.info.status, r.id)).lower()]
        key = {
            "date": lambda r: r.info.created or r.id,
            "name": lambda r: r.info.name.lower(),
            "steps": lambda r: r.info.step,
            "loss": lambda r: (r.info.final_loss is None, r.info.final_loss or 0.0),
            "size": lambda r: r.size_bytes,
        }[self.sort_key]
        return sorted(rows, key=key, reverse=self.sort_key in ("date", "steps", "size"))

    def _status(self, info: Any) -> Text:
        buf = self.view.buffer
        if buf is not None and self.view.is_live(info.id):
            step = buf.last.step if buf.last else 0
            return Text(f"● {buf.state} {step}", style="bold green")
        if info.damaged:
            return Text("damaged", style="bold red")
        style = {"finished": "cyan", "stopped": "yellow"}.get(info.status, "red" if "fail" in info.status else "")
        return Text(info.status or "?", style=style)

    def refill(self) -> None:
        table = self.query_one(DataTable)
        current = self._want_selected or (self.selected().id if self.selected() else None)
        self._want_selected = None
        table.clear()
        for r in self.visible():
            s = r.info
            if s.damaged:
                table.add_row(Text(s.id, style="red"), "", Text(s.damaged, style="red"), "", "", "",
                              fmt_bytes(r.size_bytes), self._status(s), key=s.id)
                continue
            loss = f"{s.final_loss:.4f}" if isinstance(s.final_loss, int | float) else "–"
            table.add_row(s.name[:32], s.model_id, f"{s.source} -> {s.target}"[:48], f"{s.step}/{s.iterations}",
                          loss, s.created.replace("T", " ")[:16], fmt_bytes(r.size_bytes), self._status(s), key=s.id)
        if current is not None:
            self._move_to(current)
        self._draw_header()

    def _draw_header(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" nada-tui ", style="bold reverse")
        if self.view.demo:
            t.append(" DEMO ", style="bold black on yellow")
        t.append(f" Sessions: {len(self.visible())}/{len(self.rows)}  sort: {self.sort_key}")
        if self.filter_text:
            t.append(f"  filter: {self.filter_text!r}")
        self.query_one("#sessions-status", StatusBar).set_text(t)

    def selected(self) -> Row | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None
        return next((r for r in self.rows if r.id == key), None)

    def select_session(self, session_id: str) -> None:
        """Put the cursor on a session (the command palette's search uses it); clears a filter that
        hides it."""
        if not self._move_to(session_id):
            self.filter_text = ""
            self.query_one("#filter", Input).value = ""
            self._want_selected = session_id
            self.reload()

    def _move_to(self, session_id: str) -> bool:
        table = self.query_one(DataTable)
        try:
            table.move_cursor(row=table.get_row_index(session_id))
        except Exception:
            return False
        return True

    # ----- details --------------------------------------------------------------------------
    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        r = self.selected()
        if r is None or r.id == self._detail_id:
            return
        self._detail_id = r.id
        self._live_version = -1
        chart = self.query_one("#session-chart", LossChart)
        chart.clear()
        chart.border_title = f"Loss · {r.info.name[:30]}"
        self._live_fed = 0
        self.query_one("#session-grid", Timelapse).update(Text("loading…", style="dim"))
        self._load_detail(r.info)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load_detail(self, info: Any) -> None:
        from engine import sessions

        records = sessions.read_metrics(info.path) if not info.damaged else []
        frames = frames_of(info) if not info.damaged else []  # the images load in the Timelapse's own thread
        self.app.call_from_thread(self._show_detail, info, records, frames)

    def _show_detail(self, info: Any, records: list[dict[str, Any]], frames: list[Any]) -> None:
        if info.id != self._detail_id:
            return
        self._feed(self.query_one("#session-chart", LossChart), records)
        msg = Text(f"damaged: {info.damaged}", style="red") if info.damaged else Text("no preview saved yet",
                                                                                         style="dim")
        grid = self.query_one("#session-grid", Timelapse)
        if frames:
            grid.show_frames(frames)
        else:
            grid.update(msg)

    def _feed(self, chart: LossChart, records: list[dict[str, Any]]) -> None:
        colours = self.app.theme_variables
        for rec in records:
            for key, colour in (("total", "loss-total"), ("directional", "loss-directional"),
                                ("global", "loss-global")):
                if key in rec.get("losses", {}):
                    chart.add(key, rec["step"], rec["losses"][key], colours.get(colour, "white"),
                              "dir" if key == "directional" else key)
        chart.refresh_chart()

    def tick(self) -> None:
        """Live: the session training now updates its row and, when selected, its curve."""
        if self.app.screen is not self:
            return
        if self.view.sessions_version != self._seen_sessions:
            self.reload()
            return
        buf = self.view.buffer
        if buf is None or buf.session_id is None or buf.version == self._live_version:
            return
        self._live_version = buf.version
        table = self.query_one(DataTable)
        row = next((r for r in self.rows if r.id == buf.session_id), None)
        if row is not None:
            try:
                table.update_cell(buf.session_id, "status", self._status(row.info))
                if buf.last is not None:
                    table.update_cell(buf.session_id, "steps", f"{buf.last.step}/{buf.last.total_steps}")
            except Exception:  # the row went away with a refill: the next tick finds the new one
                pass
        if self._detail_id == buf.session_id:
            self._feed(self.query_one("#session-chart", LossChart), buf.records[self._live_fed:])
            self._live_fed = len(buf.records)

    # ----- filter and sort ------------------------------------------------------------------
    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.refill()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one(DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "timelapse":  # the arrows move the cursor in the filter field
            return not isinstance(self.focused, Input) and len(self.query_one("#session-grid", Timelapse).frames) > 1
        return True

    def action_timelapse(self, delta: int) -> None:
        self.query_one("#session-grid", Timelapse).step(delta)

    def action_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.refill()
        self.notify(f"Sorted by {self.sort_key}", timeout=2)

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTS:
            self.sort_key = key
            self.refill()

    # ----- actions: dialogs here, decisions in the app --------------------------------------
    def _usable(self) -> Any | None:
        r = self.selected()
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

    def action_resume(self) -> None:
        info = self._usable()
        if info is not None:
            self.post_message(ResumeRequested(info))

    def action_fork(self) -> None:
        info = self._usable()
        if info is None:
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                start = values["start"].strip().lower()
                self.post_message(ForkRequested(info, values["source"], values["target"], start.startswith("a")))

        self.app.push_screen(FormDialog(
            f"Fork {info.name}: edit the prompts; a new session trains them",
            [("source", "Source", info.source), ("target", "Target", info.target),
             ("start", "Start from: base (the original model) or adapted (this session's weights; then the "
                       "source should describe the adapted domain)", "base")],
            ok="Fork and train"), done)

    def action_generate(self) -> None:
        info = self._usable()
        if info is None:
            return

        def done(values: dict[str, str] | None) -> None:
            if values is None:
                return
            try:
                n = int(values["n"])
                if not 1 <= n <= 10000:
                    raise ValueError
            except ValueError:
                self.notify("N must be a whole number from 1 to 10000.", severity="error")
                return
            self.post_message(GenerateRequested(info, n, Path(values["folder"]).expanduser()))

        default = paths.data_dir() / "generated" / info.id
        self.app.push_screen(FormDialog(f"Generate images from {info.name}",
                                        [("n", "How many images", "8"), ("folder", "Into folder", str(default))],
                                        ok="Generate"), done)

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

    def action_rename(self) -> None:
        info = self._usable()
        if info is None:
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                self.post_message(RenameRequested(info, values["name"]))

        self.app.push_screen(FormDialog("Rename session", [("name", "Name", info.name)], ok="Rename"), done)

    def action_delete(self) -> None:
        r = self.selected()
        if r is None:
            return
        if self.view.is_live(r.id):
            self.notify("That session is training now: stop it first (F8 on the train screen).", severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self._detail_id = None
                self.post_message(DeleteRequested(r.info))

        self.app.push_screen(ConfirmDialog(f"Delete session {r.info.name!r} ({fmt_bytes(r.size_bytes)})? This cannot "
                                           "be undone.", yes="Delete", no="Keep", danger=True), done)
