"""The compare view: the same preview seeds of several sessions side by side, one column per session,
each labelled with the settings that differ between them (for a sweep: its grid values). A "before"
column comes first when every session starts from the same images; otherwise each column shows
before | after. Opened from the sessions screen (`c`) for the marked sessions or a whole sweep.

Each tile is a `PixelImage` (Sixel, Kitty or half blocks, as everywhere in the app), which scales it on
its own thread; reading the grids (engine.compare) and writing the exported PNG run on this screen's
thread workers. The grids are looked at again every few seconds, so runs that are still training move
on in place.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer, Static

from engine import paths
from engine.sessions.scores import brief
from nada_tui.screens.dialogs import FormDialog
from nada_tui.widgets.pixel_image import PixelImage
from nada_tui.widgets.status_bar import StatusBar

SEED_COL = 6  # the left column with the seed numbers
COLUMN_GAP = 2
MIN_SIDE, MAX_SIDE = 16, 160  # tile side in cells across; half as many rows (square in a 1:2 cell)
BEFORE_AFTER = "before | after"  # the head line over a column that shows both
LABEL_MAX = 36  # a column may be this wide for its label where the screen has room
REFRESH_S = 2.0  # how often the grids are looked at for new previews


def fit_side(width: int, height: int, columns: int, per_column: int, seeds: int, head_lines: int,
             zoom: int = 0) -> int:
    """The tile side (even, in cells across) that fits every column across and, if it can, every seed down;
    `zoom` steps of 25% from there. Too many seeds scroll: tiles never go below MIN_SIDE."""
    across = (width - SEED_COL - 2) // max(columns, 1) - COLUMN_GAP - (per_column - 1)
    side_w = across // per_column
    rows = height - 2 - head_lines - 1  # the status bar, the footer, the labels, a spare row
    side_h = 2 * (rows // max(seeds, 1) - 1)  # each tile: side/2 rows and a row below
    side = min(side_w, side_h)
    side = int(side * (1 + 0.25 * zoom)) if zoom else side
    side = max(MIN_SIDE, min(MAX_SIDE, side))
    return side - side % 2


def wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, max(width, 4), break_long_words=True, break_on_hyphens=False) or [""]


class CompareScreen(Screen):
    BINDINGS = [
        Binding("escape", "close", "Back", id="compare.close"),
        Binding("e", "export", "Export PNG", id="compare.export"),
        Binding("plus,equals_sign", "zoom(1)", "Larger", id="compare.larger"),
        Binding("minus", "zoom(-1)", "Smaller", id="compare.smaller"),
    ]
    DEFAULT_CSS = """
    CompareScreen #compare-body { height: 1fr; }
    CompareScreen #compare-columns { height: auto; width: auto; }
    CompareScreen .compare-column { width: auto; height: auto; margin-right: 2; }
    CompareScreen .compare-seeds { width: 6; height: auto; color: $text-muted; }
    CompareScreen .compare-head { height: auto; }
    CompareScreen .compare-tile { width: auto; height: auto; }
    CompareScreen .compare-tile PixelImage { width: auto; }
    CompareScreen .compare-tile .after { margin-left: 1; }
    CompareScreen #compare-message { color: $text-muted; padding: 1 2; }
    """

    def __init__(self, infos: list[Any], title: str) -> None:
        super().__init__()
        self.infos = list(infos)  # engine.sessions.SessionInfo, in the order the table shows them
        self.title_text = title
        self.comparison: Any = None  # engine.compare.Comparison, once read
        self.zoom = 0
        self._stamps: dict[str, Any] = {}
        self._drawn: tuple[int, int, int] | None = None  # (width, height, zoom) of the drawing shown

    def compose(self) -> ComposeResult:
        yield StatusBar(id="compare-status", classes="status-bar")
        with ScrollableContainer(id="compare-body"):
            yield Static(Text("reading the preview grids…", style="dim"), id="compare-message")
            yield Horizontal(id="compare-columns")
        yield Footer()

    def on_mount(self) -> None:
        self._header()
        self._read()
        self.set_interval(REFRESH_S, self._look_again)

    def _header(self) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" nada-tui ", style="bold reverse")
        t.append(f" Compare: {self.title_text} · {len(self.infos)} sessions")
        comp = self.comparison
        if comp is not None:
            from engine.compare import short_key

            if comp.keys:
                t.append(" · differs: " + ", ".join(short_key(k) for k in comp.keys))
            if comp.seeds:
                t.append(" · seeds " + " ".join(str(s) for s in comp.seeds))
        self.query_one("#compare-status", StatusBar).set_text(t)

    # ----- reading ----------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="compare-read", exit_on_error=False)
    def _read(self) -> None:
        from engine import compare
        from engine.sessions import read_info

        try:
            infos = [read_info(i.path) for i in self.infos]  # the newest status and step of each
            stamps = {i.id: compare.grid_stamp(i.path) for i in infos}
            comp = compare.comparison(compare.load_items(infos), self.title_text)
        except Exception as exc:  # an unreadable file, a bug: said on the screen, the app lives on
            self.app.call_from_thread(self._failed, f"Could not read the previews: {exc}")
            return
        self.app.call_from_thread(self._was_read, comp, stamps)

    def _failed(self, text: str) -> None:
        self._message(text)

    def _was_read(self, comp: Any, stamps: dict[str, Any]) -> None:
        self.comparison = comp
        self._stamps = stamps
        self._header()
        self._drawn = None
        self._draw()

    def _look_again(self) -> None:
        if self.comparison is not None and self.app.screen is self:
            self._check_stamps(dict(self._stamps))

    @work(thread=True, exclusive=True, group="compare-stamps", exit_on_error=False)
    def _check_stamps(self, before: dict[str, Any]) -> None:
        from engine.compare import grid_stamp

        if any(grid_stamp(i.path) != before.get(i.id) for i in self.infos):
            self.app.call_from_thread(self._read)

    # ----- drawing ----------------------------------------------------------------------------
    def on_resize(self, event: Resize) -> None:
        if self.comparison is not None:
            self.call_after_refresh(self._draw)

    def _draw(self) -> None:
        comp = self.comparison
        if comp is None:
            return
        key = (self.size.width, self.size.height, self.zoom)
        if key == self._drawn:
            return
        self._drawn = key
        if not comp.seeds:
            self._message("None of these sessions has saved a preview yet; they appear here as they train.")
        self._show(comp, *self._columns(comp, self.size.width, self.size.height, self.zoom))

    def _message(self, text: str) -> None:
        msg = self.query_one("#compare-message", Static)
        msg.update(Text(text, style="dim"))
        msg.display = bool(text)

    def layout_for(self, comp: Any, width: int, height: int, zoom: int) -> tuple[int, int, list[list[str]]]:
        """(tile side, column width in cells, the head lines of each column) for a width x height screen.
        Columns are as wide as their tiles, or wider (up to LABEL_MAX) where the width is there, so that
        the labels wrap less."""
        per = 1 if comp.shared_before else 2
        columns = len(comp.items) + (1 if comp.shared_before else 0)
        seeds = max(len(comp.seeds), 1)
        across = (width - SEED_COL - 2) // max(columns, 1) - COLUMN_GAP
        side = fit_side(width, height, columns, per, seeds, 4, zoom)
        longest = max((len(label) for label in comp.labels), default=0)
        label_w = max(per * side + per - 1, min(across, LABEL_MAX, longest))
        heads: list[list[str]] = []
        if comp.shared_before:
            heads.append(wrap("before (frozen)", label_w))
        for it, label in zip(comp.items, comp.labels, strict=True):
            step = f"step {it.step}" if it.step is not None else "no preview yet"
            status = it.info.status if it.info.status != "finished" else ""
            under = [BEFORE_AFTER] if per == 2 else []
            scored = wrap(brief(it.info.scores), label_w) if it.info.scores else []
            heads.append([*wrap(label, label_w), *under, " ".join(x for x in (step, status) if x), *scored])
        lines = max(len(h) for h in heads)
        side = min(side, fit_side(width, height, columns, per, seeds, lines, zoom))
        return side, max(per * side + per - 1, label_w), heads

    def _columns(self, comp: Any, width: int, height: int, zoom: int) -> tuple[Any, ...]:
        """(side, column width, head lines, columns): each column's head and, per seed, its images (one,
        or before and after)."""
        side, col_w, heads = self.layout_for(comp, width, height, zoom)
        lines = max(len(h) for h in heads)
        columns: list[tuple[list[str], list[tuple[Any, ...]], bool]] = []  # (head lines, tiles by seed, dim)
        if comp.shared_before:
            first = next(it for it in comp.items if it.has_grid)
            columns.append((heads[0], [(first.frozen[s],) for s in comp.seeds], False))
        for it, head in zip(comp.items, heads[1 if comp.shared_before else 0:], strict=True):
            if not it.has_grid or not all(s in it.adapted for s in comp.seeds):
                columns.append((head, [], True))
            elif comp.shared_before:
                columns.append((head, [(it.adapted[s],) for s in comp.seeds], False))
            else:
                columns.append((head, [(it.frozen[s], it.adapted[s]) for s in comp.seeds], False))
        return side, col_w, lines, columns

    def _show(self, comp: Any, side: int, col_w: int, lines: int,
              columns: list[tuple[list[str], list[tuple[Any, ...]], bool]]) -> None:
        box = self.query_one("#compare-columns", Horizontal)
        box.remove_children()
        if not comp.seeds:
            return
        self._message("")
        rows = side // 2 + 1  # the row below the image: a gap, and where a Sixel image is drawn from

        def static(content: Any, classes: str, height: int | None = None) -> Static:
            w = Static(content, classes=classes)
            if height is not None:
                w.styles.height = height
            return w

        def tile(images: tuple[Any, ...]) -> Horizontal:
            widgets = []
            for n, image in enumerate(images):
                w = PixelImage(align="left", classes="after" if n else "before")
                w.styles.width, w.styles.height = side, rows
                w.show(image)
                widgets.append(w)
            row = Horizontal(*widgets, classes="compare-tile")
            row.styles.height = rows
            return row

        seed_parts = [static(Text("\n" * (lines - 1) + "seed"), "compare-head", lines)]
        seed_parts += [static(Text("\n" * (rows // 2) + str(s), style="bold"), "compare-tile", rows)
                       for s in comp.seeds]
        built = [Vertical(*seed_parts, classes="compare-seeds")]
        for head, tiles, dim in columns:
            head_text = Text()
            for n, line in enumerate(head):
                head_text.append(line, style="bold" if n < len(head) - 1 and line != BEFORE_AFTER else "dim")
                if n < len(head) - 1:
                    head_text.append("\n")
            parts: list[Any] = [static(head_text, "compare-head", lines)]
            if dim or not tiles:
                parts.append(static(Text("other seeds" if head[-1].startswith("step") else "no preview yet",
                                         style="dim"), "compare-tile"))
            parts += [tile(images) for images in tiles]
            built.append(Vertical(*parts, classes="compare-column"))
            built[-1].styles.width = col_w
        box.mount_all(built)

    def action_zoom(self, step: int) -> None:
        self.zoom = max(-3, min(8, self.zoom + step))
        self._draw()

    def action_close(self) -> None:
        self.app.pop_screen()

    # ----- export -----------------------------------------------------------------------------
    def action_export(self) -> None:
        comp = self.comparison
        if comp is None or not comp.seeds:
            self.notify("Nothing to export yet: none of these sessions has saved a preview.", severity="warning")
            return

        def done(values: dict[str, str] | None) -> None:
            if values is not None:
                self._export(comp, Path(values["folder"]).expanduser())

        self.app.push_screen(FormDialog(
            f"Export this comparison as one PNG ({len(comp.items)} sessions, seeds "
            f"{' '.join(str(s) for s in comp.seeds)}, labelled)",
            [("folder", "Into folder", str(paths.data_dir() / "exports"))], ok="Export"), done)

    @work(thread=True, group="compare-export", exit_on_error=False)
    def _export(self, comp: Any, folder: Path) -> None:
        from engine.compare import export_png

        try:
            out = export_png(comp, folder, self.title_text)
        except (OSError, ValueError) as exc:
            self.app.call_from_thread(self.notify, f"Could not export: {exc}", title="Export failed",
                                      severity="error")
            return
        self.app.call_from_thread(self.notify, str(out), title="Comparison exported")

