"""The train screen: the setup form and the live view of the run (status, chart, layers, previews, log).

It draws from the app's `ViewState` on a 4 Hz timer, only when the run's buffer changed, and turns keys
and buttons into request messages; the app owns the run. Wide terminals (>= 120 columns) show every
panel at once; narrow ones show one tab at a time. While a run trains the setup form folds away and
gives its room to the watch panels (on a narrow terminal: the previews tab comes up); F4 unfolds it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Key
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Tab, Tabs

from engine.config import ConfigError, TrainConfig
from nada_tui.formatting import fmt_bytes, fmt_clock
from nada_tui.messages import (
    DownloadRequested,
    LiveSettingChanged,
    LiveSettingRefused,
    PauseToggleRequested,
    RetrainRequested,
    SaveRequested,
    StartRequested,
    StopRequested,
)
from nada_tui.run_buffer import RunBuffer, ViewState
from nada_tui.widgets.layer_map import LayerMap
from nada_tui.widgets.loss_chart import LossChart
from nada_tui.widgets.previews import PreviewPanel
from nada_tui.widgets.run_log import RunLog
from nada_tui.widgets.setup_form import SetupForm
from nada_tui.widgets.status_bar import StatusBar

CHART_INTERVAL_S = 0.5  # the chart is the costliest panel: at most 2 redraws a second while training
# At most one preview a second while training, always the newest; a little under a second, so that on
# the CPU, where events come once a second (nada_tui.run_stream.CPU_EVENT_BATCH_S), each batch's preview shows.
PREVIEW_INTERVAL_S = 0.9
WIDE = 120
TABS = ("setup", "monitor", "previews", "log")
TRAINING_STATES = ("loading", "running", "paused")  # the setup form is folded away in these
LOSS_COLOURS = {"total": "loss-total", "directional": "loss-directional", "global": "loss-global"}


def _series_order(item: tuple[str, float]) -> tuple[int, str]:
    base = item[0].split("/")[0]
    return ({"total": 0, "directional": 1, "global": 2}.get(base, 3) + (3 if "/" in item[0] else 0), item[0])


class TrainScreen(Screen):
    BINDINGS = [
        Binding("f5", "start", "Start", id="train.start"),
        Binding("f6", "toggle_pause", "Pause/Resume", id="train.pause"),
        Binding("f8", "stop", "Stop", id="train.stop"),
        Binding("ctrl+r", "retrain", "Retrain", id="train.retrain"),
        Binding("ctrl+s", "save_now", "Save", id="train.save"),
        Binding("f4", "toggle_setup", "Setup", id="train.setup"),
        Binding("ctrl+d", "download", "Download model", id="train.download", show=False),
        Binding("left_square_bracket", "smoothing(-0.1)", "Less smoothing", id="chart.smooth_less", show=False),
        Binding("right_square_bracket", "smoothing(0.1)", "More smoothing", id="chart.smooth_more", show=False),
        Binding("l", "log_scale", "Log scale", id="chart.log", show=False),
        Binding("less_than_sign", "weight(-0.05)", "Global weight -", id="train.weight_down", show=False),
        Binding("greater_than_sign", "weight(0.05)", "Global weight +", id="train.weight_up", show=False),
        Binding("escape", "leave_field", "Leave field", show=False),
        Binding("m", "focus_layers", "Layer map: pin layers (arrows, space)", id="train.layers", show=False),
        Binding("ctrl+t", "next_tab", "Next panel", id="tab.next"),
        Binding("alt+1", "tab('setup')", "Setup tab", id="tab.setup", show=False),
        Binding("alt+2", "tab('monitor')", "Monitor tab", id="tab.monitor", show=False),
        Binding("alt+3", "tab('previews')", "Previews tab", id="tab.previews", show=False),
        Binding("alt+4", "tab('log')", "Log tab", id="tab.log", show=False),
        # The zoom fills the screen's body with one seed, before | after; Esc or z again leaves it.
        Binding("z", "zoom", "Zoom preview (one seed)", id="preview.zoom", show=False),
        Binding("right", "zoom_step(1)", "Zoom: next seed", id="preview.next", show=False, priority=True),
        Binding("left", "zoom_step(-1)", "Zoom: previous seed", id="preview.previous", show=False, priority=True),
    ]

    def __init__(self, view: ViewState) -> None:
        super().__init__()
        self.view = view
        self.tab = "setup"
        self._buffer: RunBuffer | None = None  # the buffer drawn last; a new one starts the panels over
        self._drawn_version = -1
        self._fed = 0
        self._chart_fed = -1
        self._chart_at = 0.0
        self._log_fed = 0
        self._preview_drawn: Any = None
        self._preview_at = 0.0
        self.unfolded = False  # the user unfolded the setup form while a run trains (F4)
        self._folded = False  # the form is folded now
        self._tab_moved_for: RunBuffer | None = None  # the run for which the previews tab came up

    # ----- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status", classes="status-bar")
        yield Tabs(*(Tab(t.capitalize(), id=t) for t in TABS), id="tabs")
        with Horizontal(id="body"):
            yield SetupForm(self.view.demo, id="setup-panel", classes="panel")
            with Vertical(id="centre", classes="panel-column"):
                yield LossChart(id="chart", classes="panel")
                yield PreviewPanel(id="previews", classes="panel")
            with Vertical(id="right", classes="panel-column"):
                yield LayerMap(id="layers", classes="panel")
                # min_width: RichLog renders lines at least 78 cells wide by default, clipped in a narrow panel
                yield RunLog(id="log", classes="panel", max_lines=500, wrap=True, markup=False, min_width=20)
        yield Footer()

    @property
    def form(self) -> SetupForm:
        return self.query_one(SetupForm)

    def on_mount(self) -> None:
        for wid, title in (("setup-panel", "Setup"), ("chart", "Loss"), ("previews", "Previews"),
                           ("layers", "Layers"), ("log", "Log")):
            self.query_one(f"#{wid}").border_title = title
        self._apply_layout()
        chart = self.query_one(LossChart)
        chart.smoothing = self.view.settings.smoothing
        chart.log_scale = self.view.settings.log_scale
        self._warm_up()
        self.set_interval(0.25, self.redraw)
        self.redraw(force=True)

    @work(thread=True, group="warm-up", exit_on_error=False)
    def _warm_up(self) -> None:
        """Import the engine (torch, the CLIP tokenizer) and read the model registry off the UI thread."""
        try:
            from engine import zoo
            from engine.clip_loss import count_tokens

            entries = zoo.list_models()
            count_tokens("warm up")
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"Could not read the model registry: {exc}", severity="error")
            return
        models = [e for e in entries if e.kind == "generator"]
        clips = [e for e in entries if e.kind == "clip"]
        self.app.call_from_thread(self._models_loaded, models, clips, count_tokens)

    def _models_loaded(self, models: list[Any], clips: list[Any], count_tokens: Any) -> None:
        self.form.models_loaded(models, clips, count_tokens, keep_current=self.view.buffer is not None)

    def on_resize(self) -> None:
        self._apply_layout()
        self.refresh_bindings()

    def _apply_layout(self) -> None:
        wide = self.size.width >= WIDE
        zoom = self.query_one(PreviewPanel).zoom is not None
        self.set_class(wide, "-wide")
        self.set_class(not wide, "-narrow")
        self.set_class(zoom, "-zoom")
        self.query_one("#tabs", Tabs).display = not wide and not zoom
        self._folded = self._training() and not self.unfolded
        show = {
            "setup-panel": (wide and not self._folded) or (not wide and self.tab == "setup"),
            "centre": wide or self.tab in ("monitor", "previews"),
            "chart": wide or self.tab == "monitor",
            "previews": wide or self.tab == "previews",
            "right": wide or self.tab in ("monitor", "log"),
            "layers": wide or self.tab == "monitor",
            "log": wide or self.tab == "log",
        }
        if zoom:
            show = {wid: wid in ("centre", "previews") for wid in show}
        for wid, visible in show.items():
            self.query_one(f"#{wid}").display = visible
        self.query_one("#layers", LayerMap).set_class(wide, "-tall")
        self.query_one("#body").styles.layout = "horizontal" if wide else "vertical"

    @on(Tabs.TabActivated, "#tabs")
    def _tab_changed(self, event: Tabs.TabActivated) -> None:
        if event.tab.id:
            self.tab = event.tab.id
            self._apply_layout()

    def action_tab(self, tab: str) -> None:
        self.tab = tab
        self.query_one("#tabs", Tabs).active = tab
        self._apply_layout()

    def _training(self) -> bool:
        buf = self.view.buffer
        return buf is not None and buf.state in TRAINING_STATES

    def action_toggle_setup(self) -> None:
        """Fold or unfold the setup form (narrow: the setup tab, or back to the previews)."""
        if self.size.width < WIDE:
            self.action_tab("previews" if self.tab == "setup" else "setup")
            return
        if self._training():  # otherwise the form is shown anyway
            self.unfolded = not self.unfolded
            self._apply_layout()

    def action_next_tab(self) -> None:
        self.action_tab(TABS[(TABS.index(self.tab) + 1) % len(TABS)])

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_tab":
            return self.size.width < WIDE  # tabs only exist on narrow terminals
        if action == "toggle_setup":  # shown, dimmed, while there is nothing to fold
            return True if self.size.width < WIDE or self._training() else None
        if action == "zoom_step":  # arrows belong to fields and tabs unless a preview is zoomed
            return self.query_one(PreviewPanel).zoom is not None
        return True

    def action_leave_field(self) -> None:
        if isinstance(self.focused, Input | LayerMap):
            self.set_focus(None)
        elif self.query_one(PreviewPanel).zoom is not None:
            self.action_zoom()

    def action_zoom(self) -> None:
        panel = self.query_one(PreviewPanel)
        if not panel.seeds:
            self.notify("No preview yet: previews appear as training runs.", timeout=3)
            return
        panel.zoom_to(None if panel.zoom is not None else 0)
        self._apply_layout()
        self.refresh_bindings()

    def action_zoom_step(self, delta: int) -> None:
        self.query_one(PreviewPanel).step_zoom(delta)

    # ----- requests -------------------------------------------------------------------------
    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        actions = {"btn-start": self.action_start, "btn-pause": self.action_toggle_pause,
                   "btn-stop": self.action_stop, "btn-retrain": self.action_retrain,
                   "btn-save": self.action_save_now}
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    def _read_form(self) -> tuple[TrainConfig, str, tuple[Path, ...]] | None:
        """The form's settings, checked once for this Start (target image problems are ConfigErrors); on a
        bad field, say which and put the cursor in it."""
        from engine.clip_loss import PromptError

        try:
            return self.form.read()
        except ConfigError as exc:
            self.notify(str(exc), title="Check the setup", severity="error")
            field = exc.field
        except PromptError as exc:
            self.notify(str(exc), title="Check the prompts", severity="error")
            field = exc.field
        if self.size.width < WIDE:
            self.action_tab("setup")
        self.form.focus_field(field)
        return None

    def action_start(self) -> None:
        if self.view.training:
            self.notify("Training is running: Retrain (^R) stops it and starts a new session with the edits.",
                        severity="warning")
            return
        got = self._read_form()
        if got is not None:
            self.post_message(StartRequested(*got))

    def action_retrain(self) -> None:
        got = self._read_form()
        if got is not None:
            self.post_message(RetrainRequested(*got))

    def action_toggle_pause(self) -> None:
        self.post_message(PauseToggleRequested())

    def action_stop(self) -> None:
        self.post_message(StopRequested())

    def action_save_now(self) -> None:
        self.post_message(SaveRequested())

    def action_download(self) -> None:
        self.post_message(DownloadRequested(self.form.model_id))

    def action_weight(self, delta: float) -> None:
        self.form.nudge_weight(delta)

    def action_smoothing(self, delta: float) -> None:
        chart = self.query_one(LossChart)
        chart.set_smoothing(round(chart.smoothing + delta, 2))

    def action_log_scale(self) -> None:
        chart = self.query_one(LossChart)
        chart.set_log_scale(not chart.log_scale)

    def on_key(self, event: Key) -> None:
        # 1..9 toggle chart series (only when not typing into a field)
        if event.character and event.character in "123456789" and not isinstance(self.focused, Input):
            self.query_one(LossChart).toggle(int(event.character) - 1)
            event.stop()

    def show_settings(self, config: TrainConfig, model_id: str) -> None:
        """The app shows a session's settings here (open, resume, fork)."""
        self.form.fill(config, model_id)

    def action_focus_layers(self) -> None:
        if self.size.width < WIDE and self.tab != "monitor":
            self.action_tab("monitor")
        self.query_one(LayerMap).focus()

    @on(LiveSettingChanged)
    def _live_setting_changed(self, message: LiveSettingChanged) -> None:
        # On its way to the app (which applies it to the run), a pin set in the layer map is written into
        # the form and one typed in the form shown in the map, so both show the pins the next Start uses.
        pins = {n: v for n, v in message.values.items() if n in ("pin_on", "pin_off")}
        if pins:
            self.form.show_values(pins)
            layers = self.query_one(LayerMap)
            layers.set_pins(pins.get("pin_on", tuple(sorted(layers.pin_on))),  # type: ignore[arg-type]
                            pins.get("pin_off", tuple(sorted(layers.pin_off))))  # type: ignore[arg-type]

    @on(LiveSettingRefused)
    def _live_setting_refused(self, message: LiveSettingRefused) -> None:
        """The run kept its values: say why, and show the values in force again."""
        self.notify(message.reason, title="Not changed", severity="error")
        self.form.show_values(message.current)
        pins = message.current
        self.query_one(LayerMap).set_pins(pins["pin_on"], pins["pin_off"])  # type: ignore[arg-type]

    # ----- drawing from the buffer ----------------------------------------------------------
    def redraw(self, force: bool = False) -> None:
        buf = self.view.buffer
        if buf is not self._buffer:  # a new run, or a session opened: start the panels over
            self._start_over(buf)
        if buf is None:
            if force or self._drawn_version != -2:
                self._draw_status(None)
                self._drawn_version = -2
            return
        if not force and buf.version == self._drawn_version:
            return
        self._drawn_version = buf.version
        self._feed_chart(buf)
        if buf.last is not None:
            m = buf.last
            self.query_one(LayerMap).set_data(m.scores, m.trained_indices, m.k, m.next_selection, m.step,
                                              n_latent=m.n_latent, layers=m.layers, labels=m.layer_labels)
        log = self.query_one(RunLog)
        for t, level, text in buf.log[self._log_fed:]:
            style = {"error": "bold red", "warning": "yellow"}.get(level, "")
            log.write(Text.assemble((t + " ", "dim"), (text, style)))
        self._log_fed = len(buf.log)
        now = time.monotonic()
        if buf.preview is not None and buf.preview is not self._preview_drawn and (
                now - self._preview_at >= PREVIEW_INTERVAL_S or buf.state != "running"):
            self._preview_drawn, self._preview_at = buf.preview, now
            p = buf.preview
            self.query_one(PreviewPanel).show(p.step, p.frozen, p.adapted, p.seeds)
        self.form.show_download(buf.load_progress if buf.state == "loading" else None)
        self._draw_status(buf)
        if self._training() and self._tab_moved_for is not buf:  # narrow: a run's first frames show
            self._tab_moved_for = buf
            if self.size.width < WIDE and self.tab == "setup":
                self.action_tab("previews")
        if self._folded != (self._training() and not self.unfolded):  # a run started or ended
            self._apply_layout()
            self.refresh_bindings()

    def _start_over(self, buf: RunBuffer | None) -> None:
        self._buffer = buf
        self.unfolded = False  # each run folds the form again
        self._fed, self._chart_fed, self._log_fed = 0, -1, 0
        self._preview_drawn = None
        self._drawn_version = -1
        if buf is not None and buf.read_only:  # a saved session: say what it is, not "waiting for a step"
            step = buf.last.step if buf.last is not None else 0
            self.query_one(LossChart).clear(f"{buf.state} at step {step}: no losses logged")
            self.query_one(LayerMap).clear(f"{buf.state} at step {step}\n(layer scores are not saved)")
        else:
            self.query_one(LossChart).clear()
            self.query_one(LayerMap).clear()
        if buf is not None and buf.config is not None:
            self.query_one(LayerMap).set_pins(buf.config.pin_on, buf.config.pin_off)
        seeds = buf.config.preview_seeds if buf is not None and buf.config is not None else ()
        self.query_one(PreviewPanel).expect(tuple(seeds), "previews appear as training runs")
        self._apply_layout()  # a zoom ends with its preview
        self.query_one(RunLog).clear()

    def _feed_chart(self, buf: RunBuffer) -> None:
        chart = self.query_one(LossChart)
        new = buf.records[self._fed:]
        if new:
            variables = self.app.theme_variables
            clip_names = {k.split("/", 1)[1] for r in new for k in r.losses if "/" in k}
            per_clip = len(clip_names) > 1  # with one CLIP model the per-model terms equal the totals
            for rec in new:
                for key, value in sorted(rec.losses.items(), key=_series_order):
                    if "/" in key and not per_clip:
                        continue
                    colour = variables.get(LOSS_COLOURS.get(key, "loss-extra"), "white")
                    label = {"directional": "dir"}.get(key, key.replace("directional/", "dir/"))
                    chart.add(key, rec.step, value, colour, label)
            self._fed = len(buf.records)
        now = time.monotonic()
        if self._fed != self._chart_fed and (now - self._chart_at >= CHART_INTERVAL_S or buf.state != "running"):
            self._chart_fed, self._chart_at = self._fed, now
            chart.refresh_chart()

    def _draw_status(self, buf: RunBuffer | None) -> None:
        """The top bar as prioritised segments: on a narrow terminal the least useful go first."""
        seg: list[tuple[int, Text]] = [(1, Text(" nada-tui ", style="bold reverse"))]
        if self.view.demo:
            seg.append((9, Text(" DEMO ", style="bold black on yellow")))
        if buf is None:
            seg.append((8, Text("ready: fill the setup and press F5 to start  (? for help)", style="dim")))
            self.query_one("#status", StatusBar).set_segments(seg)
            return
        clip = "+".join(n for n, w in buf.config.clip_models if w > 0) if buf.config else ""
        seg += [(3, Text(buf.model_id)), (2, Text(f"| {clip} |"))]
        state_style = {"running": "bold green", "paused": "bold yellow", "failed": "bold red", "not saved": "bold red",
                       "finished": "bold cyan", "loading": "bold magenta"}.get(buf.state, "bold")
        seg.append((10, Text(buf.state, style=state_style)))
        if buf.read_only:
            seg.append((9, Text("(read-only)", style="dim")))
            if buf.failure:  # a refused resume: the session's own state stays, and why comes with it
                seg.append((9, Text("| not resumed:", style="bold red")))
                seg.append((2, Text(buf.failure, style="red")))
        m = buf.last
        if m is not None:
            bar_w = 12
            filled = int(m.step / max(m.total_steps, 1) * bar_w)
            seg.append((4, Text.assemble(("█" * filled, "green"), ("░" * (bar_w - filled), "dim"))))
            seg.append((10, Text(f"{m.step}/{m.total_steps}")))
            running = m.it_per_s > 0 and buf.state == "running"
            seg.append((7, Text(f"| {m.it_per_s:.1f} it/s")))
            seg.append((8, Text(f"| ETA {fmt_clock((m.total_steps - m.step) / m.it_per_s if running else None)}")))
            seg.append((6, Text(f"| g={m.global_weight:.2f}")))
            if m.memory is not None:
                mem = fmt_bytes(m.memory.used_bytes)
                if m.memory.total_bytes:
                    mem += f"/{fmt_bytes(m.memory.total_bytes)}"
                seg.append((5, Text(f"| {m.memory.device} {mem}")))
        elif buf.state == "loading" and buf.load_progress is not None:
            seg.append((8, Text(f"loading {buf.load_progress.name}…")))
        self.query_one("#status", StatusBar).set_segments(seg)
