"""The sessions screen: every saved session in a table that sorts and filters; the selected one's
grid and loss curves; open (read-only), resume, fork, generate, export, rename, delete."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from engine import paths
from nada_tui import backend
from nada_tui.screens.dialogs import ConfirmDialog, FormDialog
from nada_tui.screens.train import fmt_bytes
from nada_tui.widgets.loss_chart import LossChart
from nada_tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from nada_tui.app import NadaApp

COLUMNS = (("name", "Name"), ("model", "Model"), ("prompts", "Source -> target"), ("steps", "Steps"),
           ("loss", "Final loss"), ("date", "Date"), ("size", "Size"), ("status", "Status"))
SORTS = ("date", "name", "steps", "loss", "size")


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
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sessions: list[backend.SessionInfo] = []
        self.sort_key = "date"
        self.filter_text = ""
        self._seen_version = -1
        self._detail_id: str | None = None
        self._detail_buffer_version = -1
        self._live_fed = 0

    @property
    def napp(self) -> NadaApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusBar(id="sessions-status", classes="status-bar")
        yield Input(placeholder="filter: name, prompt, model, status  (/)", id="filter", compact=True)
        table: DataTable[Any] = DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        yield table
        with Horizontal(id="session-detail"):
            with Vertical(id="session-grid-box", classes="panel"):
                yield Static(Text("select a session", style="dim"), id="session-grid")
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
        try:
            self.sessions = backend.list_sessions()
        except OSError as exc:
            self.notify(f"Could not read the sessions folder: {exc}", severity="error")
            self.sessions = []
        self._seen_version = self.napp.live_sessions_version
        self.refill()

    def visible(self) -> list[backend.SessionInfo]:
        q = self.filter_text.lower()
        rows = [s for s in self.sessions if not q or q in " ".join(
            (s.name, s.model, s.source, s.target, s.status, s.id)).lower()]
        key = {
            "date": lambda s: s.created or s.id,
            "name": lambda s: s.name.lower(),
            "steps": lambda s: s.step,
            "loss": lambda s: (s.final_loss is None, s.final_loss or 0.0),
            "size": lambda s: s.size_bytes,
        }[self.sort_key]
        return sorted(rows, key=key, reverse=self.sort_key in ("date", "steps", "size"))

    def _status(self, s: backend.SessionInfo) -> Text:
        buf = self.napp.buffer
        if buf is not None and buf.session_id == s.id and self.napp.run_alive:
            step = buf.last.step if buf.last else 0
            return Text(f"● {buf.state} {step}", style="bold green")
        if s.damaged:
            return Text("damaged", style="bold red")
        style = {"finished": "cyan", "stopped": "yellow"}.get(s.status, "red" if "fail" in s.status else "")
        return Text(s.status or "?", style=style)

    def refill(self) -> None:
        table = self.query_one(DataTable)
        current = self.selected()
        table.clear()
        for s in self.visible():
            if s.damaged:
                table.add_row(Text(s.id, style="red"), "", Text(s.damaged, style="red"), "", "", "",
                              fmt_bytes(s.size_bytes), self._status(s), key=s.id)
                continue
            loss = f"{s.final_loss:.4f}" if isinstance(s.final_loss, int | float) else "–"
            prompts = f"{s.source} -> {s.target}"
            table.add_row(s.name[:32], s.model, prompts[:48], f"{s.step}/{s.iterations}", loss,
                          (s.created or "")[:16], fmt_bytes(s.size_bytes), self._status(s), key=s.id)
        if current is not None:
            self.select_session(current.id, quiet=True)
        self._draw_header()

    def _draw_header(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" nada-tui ", style="bold reverse")
        if self.napp.demo:
            t.append(" DEMO ", style="bold black on yellow")
        t.append(f" Sessions: {len(self.visible())}/{len(self.sessions)}  sort: {self.sort_key}")
        if self.filter_text:
            t.append(f"  filter: {self.filter_text!r}")
        self.query_one("#sessions-status", StatusBar).set_text(t)

    def selected(self) -> backend.SessionInfo | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None
        return next((s for s in self.sessions if s.id == key), None)

    def select_session(self, session_id: str, quiet: bool = False) -> None:
        table = self.query_one(DataTable)
        try:
            row = table.get_row_index(session_id)
        except Exception:
            if not quiet:
                self.filter_text = ""
                self.query_one("#filter", Input).value = ""
                self.reload()
                try:
                    row = table.get_row_index(session_id)
                except Exception:
                    return
            else:
                return
        table.move_cursor(row=row)

    # ----- details --------------------------------------------------------------------------
    @on(DataTable.RowHighlighted)
    def highlighted(self) -> None:
        s = self.selected()
        if s is None or s.id == self._detail_id:
            return
        self._detail_id = s.id
        self._detail_buffer_version = -1
        chart = self.query_one("#session-chart", LossChart)
        chart.clear()
        chart.title = f"Loss · {s.name[:30]}"
        self._live_fed = 0
        self.query_one("#session-grid", Static).update(Text("loading…", style="dim"))
        self._load_detail(s)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load_detail(self, s: backend.SessionInfo) -> None:
        records = backend.read_metrics(s) if not s.damaged else []
        grid = backend.session_grid(s)
        pixels: Any = None
        if grid is not None:
            try:
                from rich_pixels import Pixels

                w, h = grid.size
                box = self.query_one("#session-grid-box")
                cols = max(8, box.size.width - 2)
                rows = max(4, (box.size.height - 2) * 2)
                scale = min(cols / w, rows / h, 2.0)
                pixels = Pixels.from_image(grid.resize((max(1, int(w * scale)), max(1, int(h * scale)))))
            except Exception:
                pixels = None
        self.app.call_from_thread(self._show_detail, s, records, pixels)

    def _show_detail(self, s: backend.SessionInfo, records: list[dict[str, Any]], pixels: Any) -> None:
        if s.id != self._detail_id:
            return
        chart = self.query_one("#session-chart", LossChart)
        self._feed(chart, records)
        msg = s.damaged or "no preview saved yet"
        self.query_one("#session-grid", Static).update(pixels if pixels is not None else Text(msg, style="dim"))

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
        if self.napp.live_sessions_version != self._seen_version:
            self.reload()
            return
        buf = self.napp.buffer
        if buf is None or buf.version == self._detail_buffer_version:
            return
        self._detail_buffer_version = buf.version
        table = self.query_one(DataTable)
        s = next((x for x in self.sessions if x.id == buf.session_id), None)
        if s is not None:
            try:
                table.update_cell(buf.session_id, "status", self._status(s))
                if buf.last is not None:
                    table.update_cell(buf.session_id, "steps", f"{buf.last.step}/{buf.last.total_steps}")
            except Exception:
                pass
        if self._detail_id == buf.session_id:
            chart = self.query_one("#session-chart", LossChart)
            self._feed(chart, buf.records[self._live_fed:])
            self._live_fed = len(buf.records)

    # ----- filter and sort ------------------------------------------------------------------
    @on(Input.Changed, "#filter")
    def filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.refill()

    @on(Input.Submitted, "#filter")
    def filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one(DataTable).focus()

    def action_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.refill()
        self.notify(f"Sorted by {self.sort_key}", timeout=2)

    @on(DataTable.HeaderSelected)
    def header_clicked(self, event: DataTable.HeaderSelected) -> None:
        mapping = {"name": "name", "steps": "steps", "loss": "loss", "date": "date", "size": "size"}
        key = mapping.get(str(event.column_key.value))
        if key:
            self.sort_key = key
            self.refill()

    # ----- actions --------------------------------------------------------------------------
    def _need(self, live_ok: bool = True) -> backend.SessionInfo | None:
        s = self.selected()
        if s is None:
            self.notify("No session selected.", severity="warning", timeout=3)
            return None
        if s.damaged:
            self.notify(f"{s.id} is damaged: {s.damaged}", severity="error")
            return None
        buf = self.napp.buffer
        if not live_ok and buf is not None and buf.session_id == s.id and self.napp.run_alive:
            self.notify("That session is training now: stop it first (F8 on the train screen).",
                        severity="warning")
            return None
        return s

    def action_open(self) -> None:
        s = self._need()
        if s is None:
            return
        buf = self.napp.buffer
        if buf is not None and buf.session_id == s.id and self.napp.run_alive:
            self.app.switch_mode("train")  # the live session: the train screen shows it
            return
        if self.napp.run_alive:
            self.notify("Training is running; the train screen shows the live session. Stop it to open another.",
                        severity="warning")
            return
        self.napp.open_session(s)

    def action_resume(self) -> None:
        s = self._need(live_ok=False)
        if s is not None:
            self.napp.resume_session(s)

    def action_fork(self) -> None:
        s = self._need()
        if s is None:
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                start = values["start"].strip().lower()
                self.napp.fork_session(s, values["source"], values["target"], from_weights=start.startswith("a"))

        self.app.push_screen(FormDialog(
            f"Fork {s.name}: edit the prompts; a new session trains them",
            [("source", "Source", s.source), ("target", "Target", s.target),
             ("start", "Start from: base (the original model) or adapted (this session's weights; then the "
                       "source should describe the adapted domain)", "base")],
            ok="Fork and train"), done)

    def action_generate(self) -> None:
        s = self._need()
        if s is None:
            return
        default = paths.data_dir() / "generated" / s.id

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
            self.generate(s, n, Path(values["folder"]).expanduser())

        self.app.push_screen(FormDialog(f"Generate images from {s.name}",
                                        [("n", "How many images", "8"), ("folder", "Into folder", str(default))],
                                        ok="Generate"), done)

    @work(thread=True, group="generate", exit_on_error=False)
    def generate(self, s: backend.SessionInfo, n: int, folder: Path) -> list[Path]:
        try:
            out = backend.generate_images(s, n, folder)
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"{type(exc).__name__}: {exc}", title="Generate failed",
                                      severity="error")
            return []
        self.app.call_from_thread(self.notify, f"{len(out)} images in {folder}", title="Generated")
        return out

    def action_export(self) -> None:
        s = self._need()
        if s is None:
            return
        default = paths.data_dir() / "exports"

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                self.export(s, Path(values["folder"]).expanduser())

        self.app.push_screen(FormDialog(f"Export {s.name}: <id>.pt (rosinality g_ema + latent_avg), grid PNG, "
                                        "metrics CSV", [("folder", "Into folder", str(default))], ok="Export"),
                             done)

    @work(thread=True, group="export", exit_on_error=False)
    def export(self, s: backend.SessionInfo, dest: Path) -> None:
        try:
            files = backend.export_session(s, dest)
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"{type(exc).__name__}: {exc}", title="Export failed",
                                      severity="error")
            return
        self.app.call_from_thread(self.notify, "\n".join(str(p) for p in files.values()), title="Exported")

    def action_rename(self) -> None:
        s = self._need()
        if s is None:
            return

        def done(values: dict[str, str] | None) -> None:
            if values is None:
                return
            try:
                backend.rename_session(s, values["name"])
            except Exception as exc:  # locked, invalid name, damaged: say so
                self.notify(str(exc), severity="error")
                return
            self.reload()

        self.app.push_screen(FormDialog("Rename session", [("name", "Name", s.name)], ok="Rename"), done)

    def action_delete(self) -> None:
        s = self.selected()
        if s is None:
            return
        buf = self.napp.buffer
        if buf is not None and buf.session_id == s.id and self.napp.run_alive:
            self.notify("That session is training now: stop it first.", severity="warning")
            return

        def done(yes: bool | None) -> None:
            if not yes:
                return
            try:
                backend.delete_session(s)
            except Exception as exc:  # locked by another process, permissions
                self.notify(f"Could not delete: {exc}", severity="error")
                return
            self.notify(f"Deleted {s.name}.", timeout=3)
            self._detail_id = None
            self.reload()

        self.app.push_screen(ConfirmDialog(f"Delete session {s.name!r} ({fmt_bytes(s.size_bytes)})? This cannot "
                                           "be undone.", yes="Delete", no="Keep", danger=True), done)
