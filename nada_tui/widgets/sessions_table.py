"""The sessions table: one row per saved session (runs of a sweep together under a header row), sorted,
filtered and marked, with columns fitted to its width.

Columns drop in one fixed priority order, the same at start and after any resize: name, status, steps,
loss, CLIP direction score, source -> target, model, date, size; a column shows only when every column
before it does, so the last ones go first (`fit_columns`). The name never drops; sessions that share a name end it with
their start time, which a cut name keeps, so no two rows read alike at any width. The loss is the
smoothed one (`engine.sessions.loss`: the mean total loss of the last 20 logged steps). "Dir" is the
session's clip_direction score (`engine.scores`; "–" before any), and `s` also sorts by the CLIP scores,
best first, sessions without scores last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import DataTable

from engine.sessions.scores import score, sort_key
from nada_tui.formatting import fmt_bytes
from nada_tui.run_buffer import ViewState
from nada_tui.session_rows import Row, setting_flag

if TYPE_CHECKING:
    from engine.sessions import SessionInfo


@dataclass(frozen=True)
class Column:
    """A table column: its label, the narrowest it may get and the widest it needs (content cells)."""

    key: str
    label: str
    min: int
    cap: int
    flexible: bool = False  # text that can be cut (names, prompts); others keep their natural width
    joins_at: int = 24  # a flexible column's width when it joins (GROW_FIRST), before the growing


# In priority order, which is also the screen order: when the table is narrow, the last ones drop first.
COLUMNS = (
    Column("name", "Name", 12, 40, flexible=True),
    Column("status", "Status", 6, 13),
    Column("steps", "Steps", 5, 11),
    Column("loss", "Loss~20", 6, 8),
    Column("clip_direction", "Dir", 4, 5),
    Column("prompts", "Source -> target", 16, 64, flexible=True, joins_at=18),  # 18: every column fits 120
    Column("model", "Model", 8, 24, flexible=True),
    Column("date", "Date", 4, 16),
    Column("size", "Size", 4, 10),
)
CELL_PADDING = 1  # DataTable's default, each side
SCROLLBAR = 2  # DataTable's vertical scrollbar: its room is kept free when the rows outgrow the height
GROW_FIRST = 24  # fit_columns widens every column to this before any gets more
SCORE_SORTS = ("clip_direction", "clip_target", "diversity")  # engine.sessions.scores keys, best first
SORTS = ("date", "name", "steps", "loss", *SCORE_SORTS, "size")
SWEEP_KEY = "sweep:"  # row keys of sweep headers (session ids never start so)
TAIL = "name-tail"  # a cell key that is no column: the end of a name that a cut keeps


def fit_columns(width: int, natural: dict[str, int]) -> list[tuple[Column, int]]:
    """The columns that fit `width` cells with their content widths. Columns join in priority order at a
    fair width (their natural width, names and prompts up to GROW_FIRST; a text column that does not fit
    so joins narrower, down to its minimum) and the first that does not fit ends the list; the name
    always shows. Then each grows toward its natural width (its widest cell, capped), in priority
    order. `natural`: widest cell per column."""

    def need(c: Column) -> int:
        return max(c.min, min(c.cap, max(natural.get(c.key, 0), len(c.label))))

    def fair(c: Column) -> int:
        return min(need(c), c.joins_at) if c.flexible else need(c)

    chosen: dict[str, int] = {}
    used = 0
    for c in COLUMNS:
        room = width - used - 2 * CELL_PADDING
        size = fair(c) if fair(c) <= room else room if c.flexible and room >= c.min else None
        if size is None:
            if not chosen:  # the name shows at any width
                chosen[c.key] = max(1, room)
            break
        chosen[c.key] = size
        used += size + 2 * CELL_PADDING
    used = sum(w + 2 * CELL_PADDING for w in chosen.values())
    for limit in (GROW_FIRST, None):  # every column a fair width first, then the long texts in full
        for c in COLUMNS:
            if c.key in chosen:
                want = need(c) if limit is None else min(need(c), max(limit, chosen[c.key]))
                extra = min(width - used, want - chosen[c.key])
                if extra > 0:
                    chosen[c.key] += extra
                    used += extra
    return [(c, chosen[c.key]) for c in COLUMNS if c.key in chosen]


def _score_cell(info: SessionInfo) -> str:
    """The clip_direction score, 2 decimals; "–" before any (`nada-tui eval` measures one)."""
    value = score(info.scores, "clip_direction")
    return "–" if value is None else f"{value:.2f}"


def cut(text: str | Text, width: int, tail: str = "") -> Text:
    """`text` on one line of at most `width` cells, ending in an ellipsis when cut; `tail` (the end of
    `text`) stays whole when there is room for it."""
    t = Text(text) if isinstance(text, str) else text.copy()
    if tail and cell_len(t.plain) > width and width > cell_len(tail) + 1:
        head = t[: len(t.plain) - len(tail)]
        head.truncate(width - cell_len(tail), overflow="ellipsis")
        return head + t[len(t.plain) - len(tail):]
    t.truncate(max(width, 1), overflow="ellipsis")
    return t


class SessionsTable(DataTable):
    """The rows of `sessions` that `filter_text` matches, sorted by `sort_key`; `marked` holds the session
    ids marked for comparison. Posts `Shown` after every redraw (the screen's top bar counts rows)."""

    class Shown(Message):
        """The table was redrawn."""

    def __init__(self, view: ViewState, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.view = view
        self.sessions: list[Row] = []  # every row read; `rows` is DataTable's own
        self.sort_key = "date"
        self.filter_text = ""
        self.marked: set[str] = set()
        self.sweep_runs: dict[str, int] = {}  # sweep name -> runs in its record (some not started yet)
        self._columns: list[tuple[Column, int]] = []
        self._want_selected: str | None = None

    # ----- the rows -------------------------------------------------------------------------------
    def replace(self, rows: list[Row]) -> None:
        """A full read: every row."""
        self.sessions = rows
        self.marked &= {r.id for r in rows}
        self.refill()

    def merge(self, rows: list[Row], removed: list[str]) -> None:
        """A poll: new or changed rows and ids that went away. Changes in place keep the order and the
        cursor; a new, gone or regrouped session redraws the table."""
        if not rows and not removed:
            return
        old = {r.id: r for r in self.sessions}
        new = {r.id: r for r in rows}
        gone = set(removed)
        kept = [new.get(r.id, r) for r in self.sessions if r.id not in gone]
        self.sessions = kept + [r for r in rows if r.id not in old]
        self.marked -= gone
        if gone or any(r.id not in old or r.sweep != old[r.id].sweep for r in rows):
            self.refill()
        else:
            self.update_rows(rows)

    def _matches(self, r: Row) -> bool:
        q = self.filter_text.lower()
        return not q or q in " ".join((r.info.name, r.info.model_id, r.info.source, r.info.target_text, r.info.status,
                                       r.id, r.sweep or "")).lower()

    def listed(self) -> list[Row]:
        rows = [r for r in self.sessions if self._matches(r)]
        if self.sort_key in SCORE_SORTS:
            by_score = sort_key(self.sort_key)
            return sorted(rows, key=lambda r: by_score(r.info))
        key: Callable[[Row], object] = {
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
        visible = self.listed()
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

    # ----- the cells ------------------------------------------------------------------------------
    def status_of(self, info: SessionInfo) -> Text:
        buf = self.view.buffer
        if buf is not None and self.view.is_live(info.id):
            return Text(f"● {buf.state}", style="bold green")
        if info.damaged:
            return Text("damaged", style="bold red")
        status = info.status
        if status in ("running", "paused"):  # another process trains it: followed live
            return Text(f"● {status}", style="bold green")
        style = {"finished": "cyan", "stopped": "yellow", "interrupted": "magenta"}.get(
            status, "red" if "fail" in status else "")
        return Text(status or "?", style=style)

    def running(self) -> int:
        """How many of the sessions train now (here or in other processes)."""
        return sum(1 for r in self.sessions if self.status_of(r.info).plain.startswith("●"))

    def _progress(self, row: Row) -> tuple[int, int, float | None]:
        """(step, total steps, smoothed loss): from the app's buffer for the session training here
        (newest), else from disk."""
        from engine.sessions.loss import smoothed_total

        buf = self.view.buffer
        if buf is not None and buf.last is not None and self.view.is_live(row.id):
            return buf.last.step, buf.last.total_steps, smoothed_total(buf.records)
        return row.step, row.info.iterations, row.loss

    @staticmethod
    def _display_name(row: Row, sweep: str | None) -> str:
        name = row.info.name
        if sweep and name.startswith(f"{sweep} "):
            name = name[len(sweep) + 1:]  # "colours #1: target=..." reads "#1: target=..." under "colours"
        return name

    def _tails(self, entries: list[tuple[str, str | None, list[Row]]]) -> dict[str, str]:
        """The end that sessions sharing a name get, by session id: the shortest of their start time, their
        start date and time, and their id that tells every session of that name apart."""
        groups: dict[str, list[Row]] = {}
        for key, sweep, runs in entries:
            if not key.startswith(SWEEP_KEY):
                groups.setdefault(self._display_name(runs[0], sweep), []).append(runs[0])
        tails: dict[str, str] = {}
        for rows in groups.values():
            if len(rows) < 2:
                continue
            for form in (lambda r: r.info.created[11:19], lambda r: r.info.created.replace("T", " ")[5:19],
                         lambda r: r.id):
                ends = [form(r) for r in rows]
                if all(ends) and len(set(ends)) == len(ends):
                    break
            tails.update((r.id, f" · {end}") for r, end in zip(rows, ends, strict=True))
        return tails

    def _cells(self, row: Row, sweep: str | None, tail: str) -> dict[str, Text | str]:
        s = row.info
        marked = row.id in self.marked
        lead = ("  " if sweep else "") + ("✓ " if marked else "")
        if s.damaged:  # the reason is in the detail panel: the row says which one and that it is damaged
            return {"name": Text(lead + s.id, style="red"), "status": self.status_of(s),
                    "size": fmt_bytes(row.size_bytes)}
        step, total, loss = self._progress(row)
        name = Text(lead + self._display_name(row, sweep), style="bold" if marked else "")
        if tail:
            name.append(tail, style="dim")
        return {
            "name": name,
            TAIL: tail,
            "status": self.status_of(s),
            "steps": f"{step}/{total}",
            "loss": f"{loss:.4f}" if isinstance(loss, int | float) else "–",
            "clip_direction": _score_cell(s),
            "prompts": f"{s.source} -> {s.target_text}",
            "model": s.model_id,
            "date": s.created.replace("T", " ")[:16],
            "size": fmt_bytes(row.size_bytes),
        }

    def _sweep_cells(self, name: str, shown: list[Row]) -> dict[str, Text | str]:
        """A sweep's header row: how its runs are doing (all of them, not only those the filter shows)."""
        runs = [r for r in self.sessions if r.sweep == name]
        total = max(self.sweep_runs.get(name, 0), len(runs))
        running = sum(1 for r in runs if self.status_of(r.info).plain.startswith("●"))
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

    def _all_cells(self) -> list[tuple[str, dict[str, Text | str]]]:
        entries = self.entries()
        tails = self._tails(entries)
        return [(key, self._sweep_cells(sweep or "", runs) if key.startswith(SWEEP_KEY)
                 else self._cells(runs[0], sweep, tails.get(key, ""))) for key, sweep, runs in entries]

    def _row_cells(self, cells: dict[str, Text | str]) -> list[Text]:
        return [cut(cells.get(c.key, ""), w, str(cells.get(TAIL, "")) if c.key == "name" else "")
                for c, w in self._columns]

    # ----- drawing --------------------------------------------------------------------------------
    def refill(self) -> None:
        """Rebuild the table: entries in order, the columns refitted to the width."""
        current = self._want_selected or self.cursor_key()
        self._want_selected = None
        rows = self._all_cells()
        natural: dict[str, int] = {}
        for _key, cells in rows:
            for col, value in cells.items():
                natural[col] = max(natural.get(col, 0), cell_len(value.plain if isinstance(value, Text) else value))
        width = self.size.width or self.app.size.width
        if not self.size.height or len(rows) + 1 > self.size.height:
            width -= SCROLLBAR
        columns = fit_columns(width, natural)
        if [(c.key, w) for c, w in columns] != [(c.key, w) for c, w in self._columns]:
            self.clear(columns=True)
            for col, w in columns:
                self.add_column(col.label, width=w, key=col.key)
            self._columns = columns
        else:
            self.clear()
        for key, cells in rows:
            self.add_row(*self._row_cells(cells), key=key)
        if current is not None:
            self.move_to(current)
        self.post_message(self.Shown())

    def update_rows(self, rows: list[Row]) -> None:
        """Changed sessions (and their sweep headers) updated in place: no reorder, the cursor stays."""
        wanted = {r.id for r in rows} | {SWEEP_KEY + r.sweep for r in rows if r.sweep}
        for key, cells in self._all_cells():
            if key not in wanted:
                continue
            for (col, _w), value in zip(self._columns, self._row_cells(cells), strict=True):
                try:
                    self.update_cell(key, col.key, value)
                except Exception:  # the row or column went away with a refill meanwhile
                    break
        self.post_message(self.Shown())

    def on_resize(self) -> None:
        if self.sessions:
            self.call_after_refresh(self.refill)  # the columns refit the new width

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTS:
            self.sort_key = key
            self.refill()

    # ----- the cursor -----------------------------------------------------------------------------
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor: a session id, or SWEEP_KEY + name on a sweep's header."""
        if self.row_count == 0:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:
            return None

    def selected(self) -> Row | None:
        key = self.cursor_key()
        return next((r for r in self.sessions if r.id == key), None) if key is not None else None

    def move_to(self, session_id: str) -> bool:
        try:
            self.move_cursor(row=self.get_row_index(session_id))
        except Exception:
            return False
        return True

    def select_later(self, session_id: str) -> None:
        """Put the cursor on `session_id` at the next refill (it is not listed yet)."""
        self._want_selected = session_id

    def to_compare(self) -> tuple[list[Row], str]:
        """(sessions, title) that `c` compares, in the order they started: the marked ones; with none
        marked, the runs of the sweep under the cursor that the table shows. Damaged ones are left out."""
        def started(r: Row) -> tuple[str, str]:
            return r.info.created, r.id

        rows = sorted((r for r in self.sessions if r.id in self.marked and r.info.ok), key=started)
        if rows:
            return rows, f"{len(rows)} marked sessions"
        key = self.cursor_key() or ""
        current = self.selected()
        sweep = key.removeprefix(SWEEP_KEY) if key.startswith(SWEEP_KEY) else current.sweep if current else None
        if sweep is None:
            return [], ""
        return sorted((r for r in self.listed() if r.sweep == sweep and r.info.ok), key=started), f"sweep {sweep}"

    def toggle_mark(self) -> None:
        """Mark or unmark the session under the cursor; on a sweep's header, all of its runs shown."""
        key = self.cursor_key()
        if key is None:
            return
        if key.startswith(SWEEP_KEY):
            ids = {r.id for r in self.listed() if r.sweep == key.removeprefix(SWEEP_KEY)}
        else:
            ids = {key}
        if ids <= self.marked:
            self.marked -= ids
        else:
            self.marked |= ids
        self.refill()
