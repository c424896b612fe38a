"""The sessions screen's detail panel: the selected session's saved previews (a time-lapse) beside its
loss curves; on a sweep's header row, what the sweep is and how to compare its runs.

It reads the session on its own threads (metrics, the list of preview files) and follows a session
that another process trains (`follow`: new loss records join the curve, a new preview grid reloads
the panel); the session training in this app feeds it from the app's buffer (`feed_live`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from nada_tui.widgets.loss_chart import LossChart
from nada_tui.widgets.timelapse import Timelapse, frames_of

if TYPE_CHECKING:
    from engine.sessions import MetricsLine, SessionInfo

CURVES = (("total", "loss-total", "total"), ("directional", "loss-directional", "dir"),
          ("global", "loss-global", "global"))  # (metrics key, theme colour, legend)


class SessionDetail(Horizontal):
    """`show(info)` a session, `show_sweep(name, runs)` a sweep; `shown` is what it shows (a session id,
    a sweep's row key, or None)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: str | None = None
        self._fed_step = -1  # the last step the chart shows
        self._grid: Any = None  # engine.compare.grid_stamp of the grid shown
        self._live_fed = 0  # records of the app's buffer already on the chart

    def compose(self) -> ComposeResult:
        with Vertical(id="session-grid-box", classes="panel"):
            yield Timelapse(Text("select a session", style="dim"), id="session-grid")
        yield LossChart(id="session-chart", classes="panel")

    @property
    def timelapse(self) -> Timelapse:
        return self.query_one(Timelapse)

    @property
    def chart(self) -> LossChart:
        return self.query_one(LossChart)

    def forget(self) -> None:
        """The next `show` reloads even the session shown now."""
        self.shown = None

    def show(self, info: SessionInfo) -> None:
        """Load a session's curves and previews (on threads); nothing when it is shown already."""
        if info.id == self.shown:
            return
        self.shown = info.id
        self.chart.clear()
        self.chart.border_title = f"Loss · {info.name[:30]}"
        self._live_fed = 0
        self._fed_step, self._grid = -1, None
        self.timelapse.update(Text("loading…", style="dim"))
        self._load(info)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load(self, info: SessionInfo) -> None:
        from engine import sessions

        records = sessions.read_metrics(info.path) if not info.damaged else []
        frames = frames_of(info) if not info.damaged else []  # the images load in the Timelapse's own thread
        self.app.call_from_thread(self._loaded, info, records, frames)

    def _loaded(self, info: SessionInfo, records: list[MetricsLine], frames: list[Any]) -> None:
        if info.id != self.shown:
            return
        self._feed(records)
        if frames:
            self.timelapse.show_frames(frames)
        elif info.damaged:
            self.timelapse.update(Text(f"damaged: {info.damaged}", style="red"))
        else:
            self.timelapse.update(Text("no preview saved yet", style="dim"))

    def _feed(self, records: Sequence[MetricsLine]) -> None:
        colours = self.app.theme_variables
        for rec in records:
            for key, colour, legend in CURVES:
                if key in rec.losses:
                    self.chart.add(key, rec.step, rec.losses[key], colours.get(colour, "white"), legend)
            self._fed_step = max(self._fed_step, rec.step)
        self.chart.refresh_chart()

    def show_sweep(self, key: str, name: str, runs: int) -> None:
        """A sweep's header row: what it is and how to compare its runs."""
        self.shown = key
        self.chart.clear()
        self.chart.border_title = f"Sweep · {name[:30]}"
        self.chart.refresh_chart()
        self.timelapse.update(Text.assemble(
            (f"sweep {name}\n", "bold"), f"{runs} runs here. ",
            ("c", "bold"), " compares them side by side; ", ("space", "bold"), " marks them all."))

    def feed_live(self, records: Sequence[MetricsLine]) -> None:
        """The session training in this app: the buffer's records not on the chart yet."""
        self._feed(records[self._live_fed:])
        self._live_fed = len(records)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def follow(self, info: SessionInfo) -> None:
        """The shown session changed on disk (another process trains it): new loss records go onto the
        chart; a new preview grid reloads the panel."""
        from engine import sessions
        from engine.compare import grid_stamp

        after, old = self._fed_step, self._grid
        records = [r for r in sessions.read_metrics(info.path) if r.step > after]
        stamp = grid_stamp(info.path)
        self.app.call_from_thread(self._followed, info, records, stamp, old is not None and stamp != old)

    def _followed(self, info: SessionInfo, records: list[MetricsLine], stamp: Any, new_grid: bool) -> None:
        if info.id != self.shown:
            return
        self._grid = stamp
        if new_grid:
            self.shown = None  # a fresh look, as when the row is highlighted
            self.show(info)
            return
        records = [r for r in records if r.step > self._fed_step]
        if records:
            self._feed(records)
