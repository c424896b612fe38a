"""The sessions screen: every saved session in a table that sorts and filters; the selected one's grid
and loss curves. Open (read-only), resume, fork, generate, export, rename and delete are requests to the
app, which knows whether a session is training; the screen only reads the store.

Sessions that other processes train (sweep runs, `nada-tui train`, a second app) are followed live: a
thread worker polls the sessions folder (`engine.sessions.watch`: stat() calls, re-reading only what
changed) and their step, loss and status cells update in place. Runs of a sweep sit together under a
header row (the sweep's name, how many runs finished, what varies). Space marks rows; `c` compares the
marked sessions, or the sweep under the cursor, side by side (screens/compare.py).

The columns fit the terminal by priority: name, status, steps and loss first, then the prompts and the
model, then date and size (`fit_columns`). A damaged session's reason shows in the detail panel.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input

from engine import paths
from engine.config import SETTINGS
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
from nada_tui.screens.compare import CompareScreen
from nada_tui.screens.dialogs import Choice, ConfirmDialog, FormDialog
from nada_tui.widgets.loss_chart import LossChart
from nada_tui.widgets.status_bar import StatusBar
from nada_tui.widgets.timelapse import Timelapse, frames_of

if TYPE_CHECKING:
    from engine.sessions import MetricsLine


@dataclass(frozen=True)
class Column:
    """A table column: its label, the narrowest it may get and the widest it needs (content cells)."""

    key: str
    label: str
    min: int
    cap: int
    flexible: bool = False  # text that can be cut (names, prompts); others keep their natural width


# In priority order: when the terminal is narrow, the last ones are left out first.
COLUMNS = (
    Column("name", "Name", 12, 40, flexible=True),
    Column("status", "Status", 6, 13),
    Column("steps", "Steps", 5, 11),
    Column("loss", "Loss", 6, 8),
    Column("prompts", "Source -> target", 16, 64, flexible=True),
    Column("model", "Model", 8, 24, flexible=True),
    Column("date", "Date", 4, 16),
    Column("size", "Size", 4, 10),
)
SCREEN_ORDER = ("name", "status", "steps", "loss", "prompts", "model", "date", "size")
CELL_PADDING = 1  # DataTable's default, each side
GROW_FIRST = 24  # fit_columns widens every column to this before any gets more
SORTS = ("date", "name", "steps", "loss", "size")
POLL_S = 1.5  # how often the sessions folder is looked at for runs of other processes
SWEEP_KEY = "sweep:"  # row keys of sweep headers (session ids never start so)


def fit_columns(width: int, natural: dict[str, int]) -> list[tuple[Column, int]]:
    """The columns that fit `width` cells, in screen order, with their content widths. Columns join in
    priority order at a fair width (their natural width, names and prompts up to GROW_FIRST); where even
    name, status, steps and loss do not fit so, they join at their narrowest. Then each grows toward
    its natural width (its widest cell, capped), in priority order. `natural`: widest cell per column."""

    def need(c: Column) -> int:
        return max(c.min, min(c.cap, max(natural.get(c.key, 0), len(c.label))))

    def fair(c: Column) -> int:
        return min(need(c), GROW_FIRST) if c.flexible else need(c)

    def join(size: Any) -> dict[str, int]:
        chosen: dict[str, int] = {}
        used = 0
        for c in COLUMNS:
            if used + size(c) + 2 * CELL_PADDING <= width:  # else a later, narrower column may still fit
                chosen[c.key] = size(c)
                used += size(c) + 2 * CELL_PADDING
        return chosen

    chosen = join(fair)
    if not {"name", "status", "steps", "loss"} <= set(chosen):
        chosen = join(lambda c: c.min if c.flexible else need(c))
    used = sum(w + 2 * CELL_PADDING for w in chosen.values())
    for limit in (GROW_FIRST, None):  # every column a fair width first, then the long texts in full
        for c in COLUMNS:
            if c.key in chosen:
                want = need(c) if limit is None else min(need(c), max(limit, chosen[c.key]))
                extra = min(width - used, want - chosen[c.key])
                if extra > 0:
                    chosen[c.key] += extra
                    used += extra
    by_key = {c.key: c for c in COLUMNS}
    return [(by_key[k], chosen[k]) for k in SCREEN_ORDER if k in chosen]


def cut(text: str | Text, width: int) -> Text:
    """`text` on one line of at most `width` cells, ending in an ellipsis when cut."""
    t = Text(text) if isinstance(text, str) else text.copy()
    t.truncate(max(width, 1), overflow="ellipsis")
    return t


@dataclass(frozen=True)
class Row:
    """A session as the table shows it: the store's SessionInfo, its size on disk and, while it trains
    (here or in another process), its newest step and loss from metrics.jsonl."""

    info: Any  # engine.sessions.SessionInfo
    size_bytes: int
    live: Any = None  # engine.sessions.watch.Live

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def sweep(self) -> str | None:
        sweep = self.info.sweep
        return str(sweep.get("name")) if sweep and sweep.get("name") else None

    @property
    def step(self) -> int:
        return max(self.info.step, self.live.step) if self.live is not None else self.info.step

    @property
    def loss(self) -> float | None:
        if self.live is not None and self.live.loss is not None and self.live.step >= self.info.step:
            return self.live.loss
        return self.info.final_loss


def read_rows(watcher: Any = None) -> list[Row]:
    """Every saved session with its size and live progress (walks each directory: call from a thread).
    With a watcher (engine.sessions.watch.SessionWatcher), it starts following them from here."""
    from engine import sessions
    from engine.sessions.watch import SessionWatcher

    watcher = watcher if watcher is not None else SessionWatcher()
    watcher.reset()
    return [Row(i, sessions.disk_usage(i.path), live) for i, live in watcher.poll().changed]


def poll_rows(watcher: Any) -> tuple[list[Row], list[str]]:
    """What changed since the last poll: (new or changed rows, ids that went away). From a thread."""
    from engine import sessions

    changes = watcher.poll()
    return [Row(i, sessions.disk_usage(i.path), live) for i, live in changes.changed], changes.removed


def setting_flag(key: str) -> str:
    """A setting as sweep files and the CLI spell it (`global-weight`, `iters`)."""
    s = SETTINGS.get(key)
    return s.sweep_key if s is not None else key


def sweep_run_counts(names: set[str]) -> dict[str, int]:
    """How many runs each sweep's record lists (runs not started yet have no session). From a thread."""
    if not names:
        return {}
    from engine import sweeps

    out = {}
    for name in names:
        try:
            out[name] = len(sweeps.read_record(name).runs)
        except Exception:  # no record here (sessions copied from elsewhere) or unreadable: count sessions
            out[name] = 0
    return out


def session_grid(info: Any) -> Any | None:
    """The session's latest preview (frozen row over adapted row) as a PIL image, or None."""
    from PIL import Image

    from engine import sessions
    from engine.compare import latest_grid_path

    # The newest first: a resumed or running session's samples are newer than its last grid.png.
    newest = latest_grid_path(info.path)
    for path in [*([newest] if newest else []), info.path / sessions.GRID_FILE, *sessions.samples(info.path)[::-1]]:
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, ValueError):
            continue
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
        self.marked: set[str] = set()  # session ids marked for comparison (Space)
        self._watcher: Any = None  # engine.sessions.watch.SessionWatcher, made on the poll thread
        self._polling = False  # a poll is in flight: the next waits for it
        self._full_read_wanted = True
        self._last_poll = 0.0
        self._sweep_runs: dict[str, int] = {}  # sweep name -> runs in its record (some not started yet)
        self._columns: list[tuple[Column, int]] = []
        self._fed_step = -1  # the last step the detail chart shows
        self._detail_grid: Any = None  # engine.compare.grid_stamp of the grid the detail panel shows

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
        self.reload()
        self.set_interval(0.25, self.tick)
        self.query_one(DataTable).focus()

    def on_screen_resume(self) -> None:
        self.reload()
        self.query_one(DataTable).focus()

    def on_resize(self) -> None:
        if self.rows:
            self.call_after_refresh(self.refill)  # the columns refit the new width

    # ----- data: a full read, then polls that report only what changed ------------------------
    def reload(self) -> None:
        self._seen_sessions = self.view.sessions_version
        self._full_read_wanted = True
        self._poll_if_due()

    def _poll_if_due(self) -> None:
        if self._polling:
            return  # one poller at a time; a wanted full read runs when this one ends
        if not self._full_read_wanted and time.monotonic() - self._last_poll < POLL_S:
            return
        self._polling = True
        full, self._full_read_wanted = self._full_read_wanted, False
        self._read_rows(full)

    @work(thread=True, group="sessions-list", exit_on_error=False)
    def _read_rows(self, full: bool) -> None:
        rows: list[Row] = []
        removed: list[str] = []
        try:
            if self._watcher is None:
                from engine.sessions.watch import SessionWatcher

                self._watcher = SessionWatcher()
            if full:
                rows = read_rows(self._watcher)
            else:
                rows, removed = poll_rows(self._watcher)
            runs = sweep_run_counts({r.sweep for r in rows if r.sweep} - set(self._sweep_runs))
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"Could not read the sessions folder: {exc}", severity="error")
            runs = {}
        finally:
            self._last_poll = time.monotonic()
        self.app.call_from_thread(self._rows_read, rows, removed, full, runs)

    def _rows_read(self, rows: list[Row], removed: list[str], full: bool, runs: dict[str, int]) -> None:
        self._polling = False
        self._sweep_runs.update(runs)
        if full:
            self.rows = rows
            self.marked &= {r.id for r in rows}
            self.refill()
            return
        if not rows and not removed:
            return
        old = {r.id: r for r in self.rows}
        new = {r.id: r for r in rows}
        gone = set(removed)
        self.rows = [new.get(r.id, r) for r in self.rows if r.id not in gone] + [r for r in rows if r.id not in old]
        self.marked -= gone
        regroup = gone or any(r.id not in old or r.sweep != old[r.id].sweep for r in rows)
        if regroup:
            self.refill()
        else:
            self._update_rows(rows)
        if self._detail_id in new and not self.view.is_live(self._detail_id):
            self._follow_detail(new[self._detail_id].info, self._fed_step, self._detail_grid)

    def _matches(self, r: Row) -> bool:
        q = self.filter_text.lower()
        return not q or q in " ".join((r.info.name, r.info.model_id, r.info.source, r.info.target_text, r.info.status,
                                       r.id, r.sweep or "")).lower()

    def visible(self) -> list[Row]:
        rows = [r for r in self.rows if self._matches(r)]
        key = {
            "date": lambda r: r.info.created or r.id,
            "name": lambda r: r.info.name.lower(),
            "steps": lambda r: r.step,
            "loss": lambda r: (r.loss is None, r.loss or 0.0),
            "size": lambda r: r.size_bytes,
        }[self.sort_key]
        return sorted(rows, key=key, reverse=self.sort_key in ("date", "steps", "size"))

    def entries(self) -> list[tuple[str, str | None, list[Row]]]:
        """What the table lists, in order: (row key, sweep, rows). A sweep's header comes where its first
        run would sort, followed by its runs; other sessions are one row each."""
        out: list[tuple[str, str | None, list[Row]]] = []
        visible = self.visible()
        done: set[str] = set()
        for r in visible:
            if r.sweep is None:
                out.append((r.id, None, [r]))
            elif r.sweep not in done:
                done.add(r.sweep)
                runs = [x for x in visible if x.sweep == r.sweep]
                out.append((SWEEP_KEY + r.sweep, r.sweep, runs))
                out.extend((x.id, r.sweep, [x]) for x in runs)
        return out

    def _status(self, info: Any) -> Text:
        buf = self.view.buffer
        if buf is not None and self.view.is_live(info.id):
            return Text(f"● {buf.state}", style="bold green")
        if info.damaged:
            return Text("damaged", style="bold red")
        if info.status in ("running", "paused"):  # another process trains it: followed live
            return Text(f"● {info.status}", style="bold green")
        style = {"finished": "cyan", "stopped": "yellow", "interrupted": "magenta"}.get(
            info.status, "red" if "fail" in info.status else "")
        return Text(info.status or "?", style=style)

    def _progress(self, row: Row) -> tuple[int, int, float | None]:
        """(step, total steps, loss): from the app's buffer for the session training here (newest),
        else from disk."""
        buf = self.view.buffer
        if buf is not None and buf.last is not None and self.view.is_live(row.id):
            return buf.last.step, buf.last.total_steps, buf.last.losses.get("total")
        return row.step, row.info.iterations, row.loss

    def _cells(self, row: Row, sweep: str | None) -> dict[str, Text | str]:
        s = row.info
        marked = row.id in self.marked
        lead = ("  " if sweep else "") + ("✓ " if marked else "")
        if s.damaged:  # the reason is in the detail panel: the row says which one and that it is damaged
            return {"name": Text(lead + s.id, style="red"), "status": self._status(s),
                    "size": fmt_bytes(row.size_bytes)}
        name = s.name
        if sweep and name.startswith(f"{sweep} "):
            name = name[len(sweep) + 1:]  # "colours #1: target=..." reads "#1: target=..." under "colours"
        step, total, loss = self._progress(row)
        return {
            "name": Text(lead + name, style="bold" if marked else ""),
            "status": self._status(s),
            "steps": f"{step}/{total}",
            "loss": f"{loss:.4f}" if isinstance(loss, int | float) else "–",
            "prompts": f"{s.source} -> {s.target_text}",
            "model": s.model_id,
            "date": s.created.replace("T", " ")[:16],
            "size": fmt_bytes(row.size_bytes),
        }

    def _sweep_cells(self, name: str, shown: list[Row]) -> dict[str, Text | str]:
        """A sweep's header row: how its runs are doing (all of them, not only those the filter shows)."""
        runs = [r for r in self.rows if r.sweep == name]
        total = max(self._sweep_runs.get(name, 0), len(runs))
        running = sum(1 for r in runs if self._status(r.info).plain.startswith("●"))
        done = sum(1 for r in runs if r.info.status == "finished")
        if running:
            status = Text(f"● {running} running", style="bold green")
        else:
            status = Text(f"{done}/{total} done", style="cyan" if done == total else "yellow")
        progress = [self._progress(r) for r in runs]
        keys = list(dict.fromkeys(setting_flag(k) for r in runs for k in (r.info.sweep or {}).get("values") or {}))
        models = {r.info.model_id for r in runs if r.info.ok}
        marked = bool(shown) and all(r.id in self.marked for r in shown)
        return {
            "name": Text(("✓ " if marked else "") + f"▾ {name}", style="bold"),
            "status": status,
            "steps": f"{sum(p[0] for p in progress)}/{sum(p[1] for p in progress)}",
            "prompts": Text(f"sweep of {total} runs" + (f", varies {', '.join(keys)}" if keys else ""), style="italic"),
            "model": models.pop() if len(models) == 1 else f"{len(models)} models",
            "date": min((r.info.created for r in runs if r.info.created), default="").replace("T", " ")[:16],
            "size": fmt_bytes(sum(r.size_bytes for r in runs)),
        }

    def _entry_cells(self, key: str, sweep: str | None, rows: list[Row]) -> dict[str, Text | str]:
        return self._sweep_cells(sweep or "", rows) if key.startswith(SWEEP_KEY) else self._cells(rows[0], sweep)

    def refill(self) -> None:
        """Rebuild the table: entries in order, the columns refitted to the width."""
        table = self.query_one(DataTable)
        current = self._want_selected or self.cursor_key()
        self._want_selected = None
        rows = [(key, self._entry_cells(key, sweep, runs)) for key, sweep, runs in self.entries()]
        natural: dict[str, int] = {}
        for _key, cells in rows:
            for col, value in cells.items():
                natural[col] = max(natural.get(col, 0), cell_len(value.plain if isinstance(value, Text) else value))
        width = table.size.width or self.size.width
        if len(rows) + 1 > table.size.height:
            width -= 2  # the vertical scrollbar
        columns = fit_columns(width, natural)
        if [(c.key, w) for c, w in columns] != [(c.key, w) for c, w in self._columns]:
            table.clear(columns=True)
            for col, w in columns:
                table.add_column(col.label, width=w, key=col.key)
            self._columns = columns
        else:
            table.clear()
        for key, cells in rows:
            table.add_row(*(cut(cells.get(c.key, ""), w) for c, w in columns), key=key)
        if current is not None:
            self._move_to(current)
        self._draw_header()

    def _update_rows(self, rows: list[Row]) -> None:
        """Changed sessions (and their sweep headers) updated in place: no reorder, the cursor stays."""
        table = self.query_one(DataTable)
        wanted = {r.id for r in rows} | {SWEEP_KEY + r.sweep for r in rows if r.sweep}
        for key, sweep, runs in self.entries():
            if key not in wanted:
                continue
            cells = self._entry_cells(key, sweep, runs)
            for col, w in self._columns:
                try:
                    table.update_cell(key, col.key, cut(cells.get(col.key, ""), w))
                except Exception:  # the row or column went away with a refill meanwhile
                    break
        self._draw_header()

    def _draw_header(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" nada-tui ", style="bold reverse")
        if self.view.demo:
            t.append(" DEMO ", style="bold black on yellow")
        t.append(f" Sessions: {len(self.visible())}/{len(self.rows)}  sort: {self.sort_key}")
        running = sum(1 for r in self.rows if self._status(r.info).plain.startswith("●"))
        if running:
            t.append(f"  ● {running} training", style="green")
        if self.marked:
            t.append(f"  marked: {len(self.marked)} (c compares)", style="bold")
        if self.filter_text:
            t.append(f"  filter: {self.filter_text!r}")
        self.query_one("#sessions-status", StatusBar).set_text(t)

    def cursor_key(self) -> str | None:
        """The key of the row under the cursor: a session id, or SWEEP_KEY + name on a sweep's header."""
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def selected(self) -> Row | None:
        key = self.cursor_key()
        return next((r for r in self.rows if r.id == key), None) if key is not None else None

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
        key = self.cursor_key()
        if key is not None and key.startswith(SWEEP_KEY) and key != self._detail_id:
            self._show_sweep(key)
            return
        r = self.selected()
        if r is None or r.id == self._detail_id:
            return
        self._detail_id = r.id
        self._live_version = -1
        chart = self.query_one("#session-chart", LossChart)
        chart.clear()
        chart.border_title = f"Loss · {r.info.name[:30]}"
        self._live_fed = 0
        self._fed_step, self._detail_grid = -1, None
        self.query_one("#session-grid", Timelapse).update(Text("loading…", style="dim"))
        self._load_detail(r.info)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load_detail(self, info: Any) -> None:
        from engine import sessions

        records = sessions.read_metrics(info.path) if not info.damaged else []
        frames = frames_of(info) if not info.damaged else []  # the images load in the Timelapse's own thread
        self.app.call_from_thread(self._show_detail, info, records, frames)

    def _show_detail(self, info: Any, records: list[MetricsLine], frames: list[Any]) -> None:
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

    def _feed(self, chart: LossChart, records: Sequence[MetricsLine]) -> None:
        colours = self.app.theme_variables
        for rec in records:
            for key, colour in (("total", "loss-total"), ("directional", "loss-directional"),
                                ("global", "loss-global")):
                if key in rec.losses:
                    chart.add(key, rec.step, rec.losses[key], colours.get(colour, "white"),
                              "dir" if key == "directional" else key)
            self._fed_step = max(self._fed_step, rec.step)
        chart.refresh_chart()

    def _show_sweep(self, key: str) -> None:
        """The detail panel on a sweep's header row: what it is and how to compare its runs."""
        name = key.removeprefix(SWEEP_KEY)
        self._detail_id = key
        runs = [r for r in self.rows if r.sweep == name]
        chart = self.query_one("#session-chart", LossChart)
        chart.clear()
        chart.border_title = f"Sweep · {name[:30]}"
        chart.refresh_chart()
        self.query_one("#session-grid", Timelapse).update(Text.assemble(
            (f"sweep {name}\n", "bold"), f"{len(runs)} runs here. ",
            ("c", "bold"), " compares them side by side; ", ("space", "bold"), " marks them all."))

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def _follow_detail(self, info: Any, after_step: int, grid: Any) -> None:
        """The selected session changed on disk (another process trains it): new loss records go onto
        the chart; a new preview grid reloads the panel."""
        from engine import sessions
        from engine.compare import grid_stamp

        records = [r for r in sessions.read_metrics(info.path) if r.step > after_step]
        stamp = grid_stamp(info.path)
        self.app.call_from_thread(self._followed, info, records, stamp, grid is not None and stamp != grid)

    def _followed(self, info: Any, records: list[MetricsLine], stamp: Any, new_grid: bool) -> None:
        if info.id != self._detail_id:
            return
        self._detail_grid = stamp
        if new_grid:
            self._detail_id = None  # a fresh look, as when the row is highlighted
            self._highlighted()
            return
        records = [r for r in records if r.step > self._fed_step]
        if records:
            self._feed(self.query_one("#session-chart", LossChart), records)

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
        row = next((r for r in self.rows if r.id == buf.session_id), None)
        if row is not None:
            self._update_rows([row])
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

    def action_mark(self) -> None:
        """Space: mark or unmark the session under the cursor for comparison; on a sweep's header, all
        of its runs that the table shows."""
        key = self.cursor_key()
        if key is None:
            return
        if key.startswith(SWEEP_KEY):
            ids = {r.id for r in self.visible() if r.sweep == key.removeprefix(SWEEP_KEY)}
        else:
            ids = {key}
        if ids <= self.marked:
            self.marked -= ids
        else:
            self.marked |= ids
        self.refill()

    def action_compare(self) -> None:
        """c: the marked sessions side by side; with none marked, the sweep under the cursor."""
        rows = sorted((r for r in self.rows if r.id in self.marked and r.info.ok), key=lambda r: (r.info.created, r.id))
        title = f"{len(rows)} marked sessions"
        if not rows:
            key = self.cursor_key() or ""
            current = self.selected()
            sweep = key.removeprefix(SWEEP_KEY) if key.startswith(SWEEP_KEY) else current.sweep if current else None
            if sweep is not None:  # in the order the runs started (their sweep order, for the most part)
                rows = sorted((r for r in self.visible() if r.sweep == sweep and r.info.ok),
                              key=lambda r: (r.info.created, r.id))
                title = f"sweep {sweep}"
        if not rows:
            self.notify("Mark sessions with Space (or put the cursor on a sweep), then press c to compare them.",
                        severity="warning", timeout=5)
            return
        self.app.push_screen(CompareScreen([r.info for r in rows], title))

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
