"""The train screen: setup form, controls, and the live view of the run (chart, layers, previews, log).

It never talks to the worker thread directly: the app owns the run and a RunBuffer that message
handlers append to; this screen redraws from that buffer on a 4 Hz timer, only when it changed.
Wide terminals (>= 120 columns) show every panel at once; narrow ones show one tab at a time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, ProgressBar, RichLog, Select, Switch, Tab, Tabs

from nada_tui import backend
from nada_tui.widgets.layer_map import LayerMap
from nada_tui.widgets.loss_chart import LossChart
from nada_tui.widgets.previews import PreviewPanel, preview_side
from nada_tui.widgets.status_bar import StatusBar

UI_CPU_BUDGET = 0.04  # share of one core the UI may use while training on the CPU

if TYPE_CHECKING:
    from nada_tui.app import NadaApp

WIDE = 120
LOSS_COLOURS = ("loss-total", "loss-directional", "loss-global", "loss-extra")
TEMPLATE_HINT = "templates fill the prompt into 79 photo templates: best for short class names (\"dog\")"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit in ("B", "KiB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "–"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def token_count(text: str) -> int | None:
    try:
        from engine.clip_loss import count_tokens

        return count_tokens(text)
    except Exception:  # the tokenizer is optional for drawing; validation happens at start
        return None


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
        Binding("ctrl+d", "download", "Download model", id="train.download", show=False),
        Binding("left_square_bracket", "smoothing(-0.1)", "Less smoothing", id="chart.smooth_less", show=False),
        Binding("right_square_bracket", "smoothing(0.1)", "More smoothing", id="chart.smooth_more", show=False),
        Binding("l", "log_scale", "Log scale", id="chart.log", show=False),
        Binding("less_than_sign", "weight(-0.05)", "Global weight -", id="train.weight_down", show=False),
        Binding("greater_than_sign", "weight(0.05)", "Global weight +", id="train.weight_up", show=False),
        Binding("escape", "leave_field", "Leave field", show=False),
        Binding("ctrl+t", "next_tab", "Next panel", id="tab.next"),
        Binding("alt+1", "tab('setup')", "Setup tab", id="tab.setup", show=False),
        Binding("alt+2", "tab('monitor')", "Monitor tab", id="tab.monitor", show=False),
        Binding("alt+3", "tab('previews')", "Previews tab", id="tab.previews", show=False),
        Binding("alt+4", "tab('log')", "Log tab", id="tab.log", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.tab = "setup"
        self._drawn_version = -1
        self._fed = 0
        self._chart_fed = -1
        self._chart_at = 0.0
        self._ui_mark = (time.monotonic(), time.thread_time())
        self._buffer_id: str | None = None
        self._log_fed = 0
        self._preview_drawn: Any = None
        self.read_only = False

    @property
    def napp(self) -> NadaApp:
        return self.app  # type: ignore[return-value]

    # ----- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(id="status", classes="status-bar")
        yield Tabs(Tab("Setup", id="setup"), Tab("Monitor", id="monitor"), Tab("Previews", id="previews"),
                   Tab("Log", id="log"), id="tabs")
        with Horizontal(id="body"):
            with VerticalScroll(id="setup-panel", classes="panel"):
                yield from self._compose_form()
            with Vertical(id="centre", classes="panel-column"):
                yield LossChart(id="chart", classes="panel")
                yield PreviewPanel(id="previews", classes="panel")
            with Vertical(id="right", classes="panel-column"):
                yield LayerMap(id="layers", classes="panel")
                yield RichLog(id="log", classes="panel", max_lines=500, wrap=True, markup=False)
        yield Footer()

    def _compose_form(self) -> ComposeResult:
        # The registry (and torch) load on a thread after the first paint; until then only the demo
        # model is listed.
        demo = self.napp.demo
        demo_model = backend.ModelChoice(backend.DEMO_GENERATOR_ID, "demo-tiny (64 px) DEMO", resolution=64,
                                         demo=True, source_prompt=backend.DEMO_SOURCE)
        models = [demo_model]
        self._models = {demo_model.id: demo_model}
        default_model = demo_model.id
        src = backend.DEMO_SOURCE if demo else ""
        tgt = backend.DEMO_TARGET if demo else ""
        clips = backend.default_clip_models(demo)
        if demo:
            yield Label("DEMO: tiny offline models, red -> blue", classes="demo-badge")
        yield Label("Model", classes="field-label")
        yield Select([(self._model_label(m), m.id) for m in models], value=default_model, allow_blank=False,
                     id="model", compact=True)
        yield Label("", id="model-info", classes="hint")
        yield ProgressBar(id="download", show_eta=True)
        yield Label("Source prompt", classes="field-label")
        yield Input(src, id="source", placeholder="a photo of a dog")
        yield Label("", id="source-tokens", classes="hint")
        yield Label("Target prompt", classes="field-label")
        yield Input(tgt, id="target", placeholder="a pencil drawing of a dog")
        yield Label("", id="target-tokens", classes="hint")
        yield Label("", id="prompt-warning", classes="warning")
        with Horizontal(classes="field-row"):
            yield Label("Templates", classes="inline-label")
            yield Switch(False, id="templates")
        yield Label(TEMPLATE_HINT, classes="hint")
        yield Label("Global weight (0 directional .. 1 global; live)", classes="field-label")
        yield Input("0.0", id="global_weight", type="number")
        with Horizontal(classes="field-grid"):
            yield from self._small("iterations", "iters", "300", "integer")
            yield from self._small("lr", "lr", "0.002", "number")
        with Horizontal(classes="field-grid"):
            yield from self._small("batch", "batch", "2", "integer")
            yield from self._small("seed", "seed", "0", "integer")
        with Horizontal(classes="field-grid"):
            yield from self._small("k", "k", "", "integer", placeholder="auto")
            yield from self._small("interval", "every", "10", "integer")
        with Horizontal(classes="field-grid"):
            yield from self._small("falloff", "falloff", "50", "integer")
            yield from self._small("preview_every", "preview", "25", "integer")
        yield Label("CLIP models (name=weight, ...)", classes="field-label")
        yield Input(", ".join(f"{n}={w:g}" for n, w in clips), id="clip_models")
        yield Label("available: …", id="clip-hint", classes="hint")
        with Horizontal(classes="buttons"):
            yield Button("Start F5", id="btn-start", variant="success", compact=True)
            yield Button("Pause F6", id="btn-pause", compact=True)
            yield Button("Stop F8", id="btn-stop", variant="error", compact=True)
        with Horizontal(classes="buttons"):
            yield Button("Retrain ^R", id="btn-retrain", variant="primary", compact=True)
            yield Button("Save ^S", id="btn-save", compact=True)

    def _small(self, key: str, label: str, value: str, kind: str, placeholder: str = "") -> ComposeResult:
        yield Label(label, classes="small-label")
        yield Input(value, id=key, type=kind, placeholder=placeholder, classes="small-input")

    @staticmethod
    def _model_label(m: backend.ModelChoice) -> str:
        mark = "" if m.downloaded else "  (download" + (f" {fmt_bytes(m.size_bytes)}" if m.size_bytes else "") + ")"
        return m.label + mark

    @work(thread=True, group="warm-up", exit_on_error=False)
    def _warm_up(self) -> None:
        """Import the engine (torch, the CLIP tokenizer) and read the model registry off the UI thread."""
        try:
            models = backend.generator_choices()
            clips = backend.clip_choices()
            token_count("warm up")
        except Exception as exc:
            self.app.call_from_thread(self.notify, f"Could not read the model registry: {exc}",
                                      severity="error")
            return
        self.app.call_from_thread(self._models_loaded, models, clips)

    def _models_loaded(self, models: list[backend.ModelChoice], clips: list[backend.ModelChoice]) -> None:
        self._models = {m.id: m for m in models}
        self.engine_ready = True
        select = self.query_one("#model", Select)
        current = str(select.value)
        select.set_options([(self._model_label(m), m.id) for m in models])
        if not self.napp.demo and current == backend.DEMO_GENERATOR_ID and self.napp.buffer is None:
            first = next((m for m in models if not m.demo), None)
            select.value = first.id if first else current
        elif current in self._models:
            select.value = current
        self.query_one("#clip-hint", Label).update("available: " + ", ".join(c.id for c in clips))
        self._update_tokens()
        self._update_model_info()

    def on_mount(self) -> None:
        self.napp._train_screen = self
        self.engine_ready = False
        self._warm_up()
        self.query_one("#download", ProgressBar).display = False
        for wid, title in (("setup-panel", "Setup"), ("chart", "Loss"), ("previews", "Previews"),
                           ("layers", "Layers"), ("log", "Log")):
            self.query_one(f"#{wid}").border_title = title
        self._update_tokens()
        self._update_model_info()
        self._apply_layout()
        self.set_interval(0.25, self.redraw)
        chart = self.query_one(LossChart)
        chart.smoothing = self.napp.settings.smoothing
        chart.log_scale = self.napp.settings.log_scale
        self.redraw(force=True)

    def on_resize(self) -> None:
        self._apply_layout()
        self.refresh_bindings()

    def _apply_layout(self) -> None:
        wide = self.size.width >= WIDE
        self.set_class(wide, "-wide")
        self.set_class(not wide, "-narrow")
        tabs = self.query_one("#tabs", Tabs)
        tabs.display = not wide
        show = {
            "setup-panel": wide or self.tab == "setup",
            "centre": wide or self.tab in ("monitor", "previews"),
            "chart": wide or self.tab == "monitor",
            "previews": wide or self.tab == "previews",
            "right": wide or self.tab in ("monitor", "log"),
            "layers": wide or self.tab == "monitor",
            "log": wide or self.tab == "log",
        }
        for wid, visible in show.items():
            self.query_one(f"#{wid}").display = visible
        self.query_one("#layers", LayerMap).set_class(wide, "-tall")
        body = self.query_one("#body")
        body.styles.layout = "horizontal" if wide else "vertical"

    @on(Tabs.TabActivated, "#tabs")
    def tab_changed(self, event: Tabs.TabActivated) -> None:
        if event.tab.id:
            self.tab = event.tab.id
            self._apply_layout()

    def action_tab(self, tab: str) -> None:
        self.tab = tab
        self.query_one("#tabs", Tabs).active = tab
        self._apply_layout()

    def action_next_tab(self) -> None:
        order = ("setup", "monitor", "previews", "log")
        self.action_tab(order[(order.index(self.tab) + 1) % len(order)])

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next_tab":
            return self.size.width < WIDE  # tabs only exist on narrow terminals
        return True

    def action_leave_field(self) -> None:
        if isinstance(self.focused, Input):
            self.set_focus(None)

    # ----- form -----------------------------------------------------------------------------
    def _value(self, wid: str) -> str:
        return self.query_one(f"#{wid}", Input).value.strip()

    @on(Input.Changed, "#source, #target")
    def prompts_changed(self) -> None:
        self._update_tokens()

    @on(Switch.Changed, "#templates")
    def templates_changed(self) -> None:
        self._update_tokens()

    def _update_tokens(self) -> None:
        templates = self.query_one("#templates", Switch).value
        # tokens are counted once the tokenizer has loaded (after the first paint)
        ready = getattr(self, "engine_ready", False)
        CONTEXT_LENGTH = 77  # engine.clip_loss.CONTEXT_LENGTH; not imported here so start-up skips torch
        for wid in ("source", "target") if ready else ():
            text = self._value(wid)
            n = token_count(text) if text else 0
            label = self.query_one(f"#{wid}-tokens", Label)
            if n is None:
                label.update("")
                continue
            extra = 7 if templates else 0  # the longest template adds about this many tokens
            over = n + extra > CONTEXT_LENGTH
            label.update(Text(f"{n}/{CONTEXT_LENGTH} tokens" + (" (too long)" if over else ""),
                              style="bold red" if over else "dim"))
        src, tgt = self._value("source"), self._value("target")
        warn = ""
        if not src or not tgt:
            warn = "Enter both prompts."
        elif " ".join(src.lower().split()) == " ".join(tgt.lower().split()):
            warn = "Source and target are the same: there is no direction to follow."
        self.query_one("#prompt-warning", Label).update(warn)

    @on(Select.Changed, "#model")
    def model_changed(self, event: Select.Changed) -> None:
        model = self._models.get(str(event.value))
        if model is None:
            return
        src = self.query_one("#source", Input)
        previous_defaults = {m.source_prompt for m in self._models.values()}
        if model.source_prompt and (not src.value.strip() or src.value in previous_defaults):
            src.value = model.source_prompt  # the domain's own prompt, unless the user typed one
        clip_input = self.query_one("#clip_models", Input)
        names = [p.split("=")[0].strip() for p in clip_input.value.split(",") if p.strip()]
        # demo generators pair with the demo CLIP; outside --demo, a real generator gets a real CLIP
        if model.demo or (names == [backend.DEMO_CLIP_ID] and not self.napp.demo):
            clip_input.value = ", ".join(f"{n}={w:g}" for n, w in backend.default_clip_models(model.demo))
        self._update_model_info()

    def _update_model_info(self) -> None:
        model = self._models.get(str(self.query_one("#model", Select).value))
        if model is None:
            return
        bits = []
        if model.resolution:
            bits.append(f"{model.resolution} px")
        if model.demo:
            bits.append("demo model, offline")
        elif model.downloaded:
            bits.append("downloaded")
        else:
            bits.append("not downloaded: ^D downloads now, or Start does")
        self.query_one("#model-info", Label).update(" · ".join(bits))

    @on(Input.Submitted, "#global_weight")
    def weight_submitted(self) -> None:
        self._apply_weight()

    @on(Input.Changed, "#global_weight")
    def weight_changed(self) -> None:
        self._apply_weight(quiet=True)

    def _apply_weight(self, quiet: bool = False) -> None:
        try:
            g = float(self._value("global_weight"))
        except ValueError:
            return
        if not 0 <= g <= 1:
            if not quiet:
                self.notify("The global weight goes from 0 to 1.", severity="warning")
            return
        self.napp.set_global_weight(g, quiet=quiet)

    def action_weight(self, delta: float) -> None:
        try:
            g = float(self._value("global_weight") or 0)
        except ValueError:
            g = 0.0
        g = round(min(1.0, max(0.0, g + delta)), 2)
        self.query_one("#global_weight", Input).value = f"{g:g}"
        self.napp.set_global_weight(g)

    def read_config(self) -> tuple[Any, str] | None:
        """The form as a TrainConfig and model id; on a bad field, say which and focus it."""
        from engine.clip_loss import PromptError, validate_prompts
        from engine.trainer import ConfigError, TrainConfig

        def num(wid: str, cast: type, default: Any = None) -> Any:
            text = self._value(wid)
            if not text:
                return default
            try:
                return cast(text)
            except ValueError as exc:
                raise ConfigError(wid, f"{text!r} is not a number") from exc

        model_id = str(self.query_one("#model", Select).value)
        try:
            clips = []
            for part in self._value("clip_models").split(","):
                if not part.strip():
                    continue
                name, _, weight = part.partition("=")
                try:
                    clips.append((name.strip(), float(weight) if weight.strip() else 1.0))
                except ValueError as exc:
                    raise ConfigError("clip_models", f"{part.strip()!r}: the weight is not a number") from exc
            known = {c.id for c in backend.clip_choices()}
            unknown = [n for n, _ in clips if n not in known]
            if unknown:
                raise ConfigError("clip_models", f"unknown CLIP model {unknown[0]!r}; available: "
                                                 + ", ".join(sorted(known)))
            cfg = TrainConfig(
                source=self._value("source"), target=self._value("target"),
                iterations=num("iterations", int, 300), batch=num("batch", int, 2), lr=num("lr", float, 0.002),
                global_weight=num("global_weight", float, 0.0), templates=self.query_one("#templates", Switch).value,
                clip_models=tuple(clips), auto_layer_k=num("k", int, None),
                auto_layer_interval=num("interval", int, 10), auto_layer_falloff=num("falloff", int, 50),
                preview_every=num("preview_every", int, 25), seed=num("seed", int, 0),
            )
            validate_prompts(cfg.source, cfg.target, cfg.templates)
        except ConfigError as exc:
            self.notify(str(exc), title="Check the setup", severity="error")
            self._focus_field(exc.field)
            return None
        except PromptError as exc:
            self.notify(str(exc), title="Check the prompts", severity="error")
            self._focus_field("target" if "same" in str(exc) or "target" in str(exc) else "source")
            return None
        return cfg, model_id

    def _focus_field(self, name: str) -> None:
        alias = {"auto_layer_k": "k", "auto_layer_interval": "interval", "auto_layer_falloff": "falloff"}
        try:
            self.action_tab("setup")
            self.query_one(f"#{alias.get(name, name)}").focus()
        except Exception:
            pass

    def fill_form(self, config: dict[str, Any], model_id: str) -> None:
        """Put a saved session's settings into the form (open, fork)."""
        if model_id in self._models:
            self.query_one("#model", Select).value = model_id
        values = {
            "source": config.get("source", ""), "target": config.get("target", ""),
            "iterations": config.get("iterations", 300), "lr": config.get("lr", 0.002),
            "batch": config.get("batch", 2), "seed": config.get("seed", 0),
            "k": "" if config.get("auto_layer_k") is None else config.get("auto_layer_k"),
            "interval": config.get("auto_layer_interval", 10), "falloff": config.get("auto_layer_falloff", 50),
            "preview_every": config.get("preview_every", 25), "global_weight": config.get("global_weight", 0.0),
        }
        for wid, v in values.items():
            self.query_one(f"#{wid}", Input).value = f"{v:g}" if isinstance(v, float) else str(v)
        self.query_one("#templates", Switch).value = bool(config.get("templates", False))
        clips = config.get("clip_models") or []
        if clips:
            self.query_one("#clip_models", Input).value = ", ".join(f"{n}={float(w):g}" for n, w in clips)

    # ----- controls -------------------------------------------------------------------------
    @on(Button.Pressed)
    def button(self, event: Button.Pressed) -> None:
        actions = {"btn-start": self.action_start, "btn-pause": self.action_toggle_pause,
                   "btn-stop": self.action_stop, "btn-retrain": self.action_retrain,
                   "btn-save": self.action_save_now}
        if event.button.id in actions:
            actions[event.button.id]()

    def action_start(self) -> None:
        if self.napp.run_alive:
            self.notify("Training is running: Retrain (^R) stops it and starts a new session with the edits.",
                        severity="warning")
            return
        got = self.read_config()
        if got is not None:
            self.read_only = False
            self.napp.start_training(*got)

    def action_retrain(self) -> None:
        got = self.read_config()
        if got is not None:
            self.napp.retrain(*got)

    def action_toggle_pause(self) -> None:
        self.napp.toggle_pause()

    def action_stop(self) -> None:
        self.napp.stop_training()

    def action_save_now(self) -> None:
        self.napp.save_now()

    def action_download(self) -> None:
        self.napp.download_model(str(self.query_one("#model", Select).value))

    def action_smoothing(self, delta: float) -> None:
        chart = self.query_one(LossChart)
        chart.set_smoothing(round(chart.smoothing + delta, 2))

    def action_log_scale(self) -> None:
        chart = self.query_one(LossChart)
        chart.set_log_scale(not chart.log_scale)

    def on_key(self, event: Any) -> None:
        # 1..9 toggle chart series (only when not typing into a field)
        if event.character and event.character.isdigit() and event.character != "0" and \
                not isinstance(self.focused, Input):
            self.query_one(LossChart).toggle(int(event.character) - 1)
            event.stop()

    # ----- drawing from the buffer ----------------------------------------------------------
    def show_download(self, progress: backend.Progress | None) -> None:
        bar = self.query_one("#download", ProgressBar)
        if progress is None:
            if bar.display:  # setting display re-lays out the screen: only on a change
                bar.display = False
            return
        if not bar.display:
            bar.display = True
        bar.update(total=progress.total, progress=progress.done)
        rate = f" {fmt_bytes(int(progress.rate))}/s" if progress.rate else ""
        total = f"/{fmt_bytes(progress.total)}" if progress.total else ""
        self.query_one("#model-info", Label).update(
            f"{progress.phase} {progress.name}: {fmt_bytes(progress.done)}{total}{rate}")

    def redraw(self, force: bool = False) -> None:
        buf = self.napp.buffer
        if buf is None:
            if force or self._drawn_version != -2:
                self._draw_status(None)
                self._drawn_version = -2
            return
        if buf.token != self._buffer_id:  # a new run: start the views over
            self._buffer_id = buf.token
            self._fed = 0
            self._chart_fed = -1
            self._log_fed = 0
            self._preview_drawn = None
            self.query_one(LossChart).clear()
            self.query_one(LayerMap).clear()
            self.query_one(PreviewPanel).show_text("previews appear as training runs")
            self.query_one(RichLog).clear()
            self._drawn_version = -1
        panel = self.query_one(PreviewPanel)
        if panel.display and panel.content_size.width > 0:
            seeds = len(buf.config.preview_seeds) if buf.config else 4
            side = min(preview_side(panel.content_size.width, panel.content_size.height, seeds),
                       self.napp.settings.preview_size * 2)
            self.napp.preview_side = side
        if not force and buf.version == self._drawn_version:
            return
        if not force and self._over_ui_budget(buf):
            return
        self._drawn_version = buf.version
        chart = self.query_one(LossChart)
        new = buf.records[self._fed:]
        if new:
            variables = self.app.theme_variables
            clip_names = {k.split("/", 1)[1] for r in new for k in r["losses"] if "/" in k}
            per_clip = len(clip_names) > 1  # with one CLIP model the per-model terms equal the totals
            for rec in new:
                for key, value in sorted(rec["losses"].items(), key=_series_order):
                    if "/" in key and not per_clip:
                        continue
                    base = key.split("/")[0]
                    idx = {"total": 0, "directional": 1, "global": 2}.get(base, 3)
                    colour = variables.get(LOSS_COLOURS[idx], "white") if "/" not in key else \
                        variables.get("loss-extra", "magenta")
                    label = {"directional": "dir"}.get(key, key.replace("directional/", "dir/"))
                    chart.add(key, rec["step"], value, colour, label)
            self._fed = len(buf.records)
        # the chart is the costliest panel: at most 2 redraws a second while training runs
        now = time.monotonic()
        if self._fed != self._chart_fed and (now - self._chart_at >= 0.5 or buf.state != "running"):
            self._chart_fed, self._chart_at = self._fed, now
            chart.refresh_chart()
        if buf.last is not None:
            m = buf.last
            self.query_one(LayerMap).set_data(m.scores, m.trained_indices, m.k, m.next_selection, m.step)
        log = self.query_one(RichLog)
        for t, level, text in buf.log[self._log_fed:]:
            style = {"error": "bold red", "warning": "yellow"}.get(level, "")
            log.write(Text.assemble((t + " ", "dim"), (text, style)))
        self._log_fed = len(buf.log)
        if buf.preview is not None and buf.preview is not self._preview_drawn:
            self._preview_drawn = buf.preview
            step, frozen, adapted, seeds = buf.preview
            self.query_one(PreviewPanel).show(step, frozen, adapted, seeds)
        self.show_download(buf.load_progress if buf.state == "loading" else None)
        self._draw_status(buf)

    def _over_ui_budget(self, buf: backend.RunBuffer) -> bool:
        """While training runs on the CPU, the UI thread competes with it for cores: stretch the redraw
        interval (never beyond 1 s) so that drawing, compositing included, takes at most
        UI_CPU_BUDGET of one core. On a GPU the trainer barely needs the CPU and we draw at 4 Hz."""
        m = buf.last
        if buf.state != "running" or m is None or m.memory is None or m.memory.device != "cpu":
            return False
        wall, cpu = time.monotonic(), time.thread_time()
        elapsed = wall - self._ui_mark[0]
        if (cpu - self._ui_mark[1]) / max(elapsed, 1e-3) > UI_CPU_BUDGET and elapsed < 1.0:
            return True
        self._ui_mark = (wall, cpu)
        return False

    def _draw_status(self, buf: backend.RunBuffer | None) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" nada-tui ", style="bold reverse")
        if self.napp.demo:
            t.append(" DEMO ", style="bold black on yellow")
        if buf is None:
            t.append("  ready: fill the setup and press F5 to start  (? for help)", style="dim")
            self.query_one("#status", StatusBar).set_text(t)
            return
        clip = "+".join(n for n, w in buf.config.clip_models if w > 0) if buf.config else ""
        t.append(f" {buf.model_id} | {clip} | ")
        state_style = {"running": "bold green", "paused": "bold yellow", "failed": "bold red",
                       "finished": "bold cyan", "loading": "bold magenta"}.get(buf.state, "bold")
        t.append(buf.state, style=state_style)
        if self.read_only:
            t.append(" (read-only)", style="dim")
        m = buf.last
        if m is not None:
            frac = m.step / max(m.total_steps, 1)
            bar_w = 12
            filled = int(frac * bar_w)
            t.append(" ")
            t.append("█" * filled, style="green")
            t.append("░" * (bar_w - filled), style="dim")
            t.append(f" {m.step}/{m.total_steps} | {m.it_per_s:.1f} it/s | ETA ")
            remaining = (m.total_steps - m.step) / m.it_per_s if m.it_per_s > 0 and buf.state == "running" else None
            t.append(fmt_eta(remaining))
            t.append(f" | g={m.global_weight:.2f}")
            if m.memory is not None:
                mem = fmt_bytes(m.memory.used_bytes)
                if m.memory.total_bytes:
                    mem += f"/{fmt_bytes(m.memory.total_bytes)}"
                t.append(f" | {m.memory.device} {mem}")
        elif buf.state == "loading" and buf.load_progress is not None:
            t.append(f" loading {buf.load_progress.name}…")
        self.query_one("#status", StatusBar).set_text(t)

    def elapsed_text(self) -> str:
        buf = self.napp.buffer
        return fmt_eta(time.monotonic() - buf.started) if buf else ""
