"""The setup form: the model picker and every training setting that has a form label in the settings
table (`engine.config.SETTINGS`), generated from it. `read()` gives a checked TrainConfig and model id;
`fill()` puts a saved session's settings back. The form only posts messages (the global weight applies
live); starting and stopping belong to the screen and the app."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, ProgressBar, Select, Switch

from engine.config import (
    CONTEXT_LENGTH,
    SETTINGS,
    ConfigError,
    Setting,
    TrainConfig,
    default_clip_models,
    demo_config,
)
from engine.download import DownloadProgress
from engine.inputs import check_inputs
from engine.registry import DEMO_CLIP, DEMO_GENERATOR, ModelEntry
from engine.setting_kinds import TextSetting
from nada_tui.formatting import fmt_bytes
from nada_tui.messages import LiveSettingChanged
from nada_tui.widgets import fields
from nada_tui.widgets.target_images import TargetImagesField

BUTTONS = (
    (("Start F5", "btn-start", "success"), ("Pause F6", "btn-pause", "default"), ("Stop F8", "btn-stop", "error")),
    (("Retrain ^R", "btn-retrain", "primary"), ("Save ^S", "btn-save", "default")),
)

FORM_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS.values() if s.label)
# The prompts' shared warning (empty, or the same prompt twice) sits under the last of them.
PROMPTS = tuple(s.name for s in FORM_SETTINGS if isinstance(s, TextSetting))
LAST_PROMPT = SETTINGS[PROMPTS[-1]]
TEMPLATE_EXTRA_TOKENS = 7  # the longest template adds about this many tokens
LIVE_FIELDS = tuple(s.name for s in FORM_SETTINGS if s.live)  # Enter applies them to a run in progress
APPLY_WHILE_TYPING = ("global_weight",)  # the loss mix follows the typing, like a slider


class SetupForm(VerticalScroll):
    def __init__(self, demo: bool, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.demo = demo
        # What a blank field means (its placeholder shows it): the demo's own recipe in demo mode.
        self.recipe = demo_config() if demo else TrainConfig()
        self.models: dict[str, ModelEntry] = {DEMO_GENERATOR.name: DEMO_GENERATOR}
        self.clips: dict[str, ModelEntry] = {DEMO_CLIP.name: DEMO_CLIP}
        self.count_tokens: Callable[[str], int] | None = None  # set once the tokenizer has loaded
        # Target images a session already keeps copies of (filled in from it, or started with): a retrain
        # or fork uses those copies, so the originals need not exist any more.
        self.filled_images: tuple[str, ...] = ()

    # ----- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        if self.demo:
            yield Label("DEMO: tiny offline models, red -> blue", classes="demo-badge")
        yield Label("Model", classes="field-label")
        yield Select([(self._model_label(DEMO_GENERATOR), DEMO_GENERATOR.name)], value=DEMO_GENERATOR.name,
                     allow_blank=False, id="model", compact=True)
        yield Label("", id="model-info", classes="hint")
        # total=1: a determinate bar while hidden (an indeterminate one animates at 15 Hz, waking the UI)
        yield ProgressBar(id="download", show_eta=True, total=1)
        numbers: list[Setting] = []
        for s in FORM_SETTINGS:
            default = getattr(self.recipe, s.name)
            if not fields.has_own_row(s):
                numbers.append(s)
                continue
            yield from fields.own_row(s, default, default)
            if s is LAST_PROMPT:
                yield Label("", id="prompt-warning", classes="warning")
        for i in range(0, len(numbers), 2):
            with Horizontal(classes="field-grid"):
                for s in numbers[i:i + 2]:
                    default = getattr(self.recipe, s.name)
                    yield from fields.small_field(s, default, default)
        for row in BUTTONS:
            with Horizontal(classes="buttons"):
                for label, bid, variant in row:
                    yield Button(label, id=bid, variant=variant, compact=True)

    def on_mount(self) -> None:
        self.query_one("#download", ProgressBar).display = False
        self._update_prompt_hints()
        self._update_model_info()

    @staticmethod
    def _model_label(m: ModelEntry) -> str:
        if m.downloaded:
            return m.label
        return m.label + "  (download" + (f" {fmt_bytes(m.size_bytes)}" if m.size_bytes else "") + ")"

    # ----- the registry arrives after the first paint ----------------------------------------------
    def models_loaded(self, models: Sequence[ModelEntry], clips: Sequence[ModelEntry],
                      count_tokens: Callable[[str], int] | None, keep_current: bool) -> None:
        """Install the full model lists (demo models first: they work offline) and the token counter."""
        ordered = sorted(models, key=lambda m: not m.demo)
        self.models = {m.name: m for m in ordered}
        self.clips = {c.name: c for c in clips}
        self.count_tokens = count_tokens
        select = self.query_one("#model", Select)
        current = str(select.value)
        select.set_options([(self._model_label(m), m.name) for m in ordered])
        if not self.demo and not keep_current and current == DEMO_GENERATOR.name:
            current = next((m.name for m in ordered if not m.demo), current)
        if current in self.models:
            select.value = current
        self.query_one("#clip-hint", Label).update("available: " + ", ".join(self.clips))
        self._update_prompt_hints()
        self._update_model_info()

    # ----- live hints -------------------------------------------------------------------------------
    def _text(self, name: str) -> str:
        return self.query_one(f"#{name}", Input).value.strip()

    @on(Input.Changed, "#source, #target, #target_images")
    @on(Switch.Changed, "#templates")
    def _prompts_changed(self) -> None:
        self._update_prompt_hints()

    def _update_prompt_hints(self) -> None:
        extra = TEMPLATE_EXTRA_TOKENS if self.query_one("#templates", Switch).value else 0
        for name in PROMPTS if self.count_tokens is not None else ():
            text = self._text(name)
            label = self.query_one(f"#{name}-tokens", Label)
            try:
                n = self.count_tokens(text) if text else 0
            except Exception:  # the counter is a hint; validation happens at start
                label.update("")
                continue
            over = n + extra > CONTEXT_LENGTH
            label.update(Text(f"{n}/{CONTEXT_LENGTH} tokens" + (" (too long)" if over else ""),
                              style="bold red" if over else "dim"))
        src, tgt = self._text("source"), self._text("target")
        warn = ""
        if not tgt and self._text("target_images"):
            warn = ""  # target images alone: no prompt is used
        elif not src or not tgt:
            warn = "Enter both prompts."
        elif " ".join(src.lower().split()) == " ".join(tgt.lower().split()):
            warn = "Source and target are the same: there is no direction to follow."
        self.query_one("#prompt-warning", Label).update(warn)

    @on(Select.Changed, "#model")
    def _model_changed(self, event: Select.Changed) -> None:
        model = self.models.get(str(event.value))
        if model is None:
            return
        src = self.query_one("#source", Input)
        previous_defaults = {m.source_prompt for m in self.models.values()}
        if model.source_prompt and (not src.value.strip() or src.value in previous_defaults):
            src.value = model.source_prompt  # the domain's own prompt, unless the user typed one
        clip_input = self.query_one("#clip_models", Input)
        names = [name for name, _ in self._clip_value()]
        # demo generators pair with the demo CLIP; outside --demo, a real generator gets a real CLIP
        if model.demo or (names == [DEMO_CLIP.name] and not self.demo):
            clip_input.value = SETTINGS["clip_models"].format(default_clip_models(model.demo))
        self._update_model_info()

    def _clip_value(self) -> tuple[tuple[str, float], ...]:
        try:
            return SETTINGS["clip_models"].parse(self._text("clip_models"))
        except ConfigError:
            return ()

    def _update_model_info(self) -> None:
        model = self.models.get(str(self.query_one("#model", Select).value))
        if model is None:
            return
        bits = [f"{model.resolution} px"] if model.resolution else []
        if model.demo:
            bits.append("demo model, offline")
        elif model.downloaded:
            bits.append("downloaded")
        else:
            bits.append("not downloaded: ^D downloads now, or Start does")
        self.query_one("#model-info", Label).update(" · ".join(bits))

    # ----- live settings: the table's `live` ones reach the run as they are edited ---------------------
    @on(Input.Changed)
    def _live_typed(self, event: Input.Changed) -> None:
        if event.input.id in APPLY_WHILE_TYPING:
            self._post_live(event.input.id, quiet=True)

    @on(Input.Submitted)
    def _live_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in LIVE_FIELDS:
            self._post_live(event.input.id, quiet=False)

    def _post_live(self, name: str, quiet: bool) -> None:
        s = SETTINGS[name]
        try:
            value = s.parse_checked(self._text(name))
        except ConfigError as exc:
            if not quiet:
                self.notify(str(exc), title="Check the setup", severity="warning")
            return
        self.post_message(LiveSettingChanged({name: value}, quiet))

    def nudge_weight(self, delta: float) -> None:
        """Move the global weight by `delta` (keys < and >); posts the change."""
        try:
            g = float(self._text("global_weight") or 0)
        except ValueError:
            g = 0.0
        g = round(min(1.0, max(0.0, g + delta)), 2)
        self.show_values({"global_weight": g})
        self.post_message(LiveSettingChanged({"global_weight": g}))

    # ----- reading and filling --------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return str(self.query_one("#model", Select).value)

    def read(self) -> tuple[TrainConfig, str, tuple[Path, ...]]:
        """The form as a checked TrainConfig, the model id and the target image files, checked once for
        the run about to start (engine.inputs.check_inputs). Raises ConfigError naming the bad field,
        PromptError (engine.clip_loss) for prompts CLIP cannot use, or TargetImageError."""
        values: dict[str, object] = {}
        for s in FORM_SETTINGS:
            value = fields.read(self.query_one(f"#{s.name}"))
            if value != "" or not s.blank_is_default:  # blank: the recipe's default, as its placeholder says
                values[s.name] = value
        config = TrainConfig.parse(values, base=self.recipe)
        unknown = [name for name, _ in config.clip_models if name not in self.clips]
        if unknown:
            raise ConfigError("clip_models", f"unknown CLIP model {unknown[0]!r}; available: "
                              + ", ".join(sorted(self.clips)))
        # A session's own images (filled from it) are not looked for: it keeps copies, the originals may be gone.
        files = check_inputs(config, find_images=config.target_images != self.filled_images)
        self.filled_images = config.target_images  # the run about to start keeps copies of them
        return config, self.model_id, files

    def fill(self, config: TrainConfig, model_id: str) -> None:
        """Put a saved session's settings into the form (open, resume, fork)."""
        if model_id in self.models:
            self.query_one("#model", Select).value = model_id
        for s in FORM_SETTINGS:
            fields.write(self.query_one(f"#{s.name}"), s, getattr(config, s.name))
        self.filled_images = config.target_images
        self.query_one(TargetImagesField).reload(session=True)
        self._update_prompt_hints()

    def focus_field(self, name: str) -> None:
        for widget in self.query(f"#{name}"):
            widget.focus()
            return

    def show_values(self, values: dict[str, object]) -> None:
        """Show these settings' values (the run's after a refused change, pins set in the layer map);
        posts nothing."""
        for name, value in values.items():
            for field in self.query(f"#{name}").results(Input):
                with field.prevent(Input.Changed):
                    field.value = SETTINGS[name].format(value)

    # ----- download progress ----------------------------------------------------------------------
    def show_download(self, progress: DownloadProgress | None) -> None:
        bar = self.query_one("#download", ProgressBar)
        if progress is None:
            if bar.display:  # setting display re-lays out the screen: only on a change
                bar.display = False
            return
        if not bar.display:
            bar.display = True
        bar.update(total=progress.total_bytes, progress=progress.done_bytes)
        rate = f" {fmt_bytes(progress.bytes_per_s)}/s" if progress.bytes_per_s else ""
        total = f"/{fmt_bytes(progress.total_bytes)}" if progress.total_bytes else ""
        self.query_one("#model-info", Label).update(
            f"download {progress.name}: {fmt_bytes(progress.done_bytes)}{total}{rate}")
