"""The nada-tui Textual app: owns the one training run, its event buffer, themes, keys and screens.

Threading: models load in a Textual thread worker; training runs in engine.trainer.TrainingWorker's
own thread. Both only `post_message` to the app (never call UI code); the handlers here append to a
RunBuffer, and each screen redraws from it on a 4 Hz timer. torch is imported on first use, not at
start-up, so the first paint does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterable
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from nada_tui import backend, config, themes
from nada_tui.commands import SessionsProvider
from nada_tui.messages import EngineEvent, LoadProgress, PreviewRendered, RunLoadFailed, RunReady, SessionsChanged
from nada_tui.screens.dialogs import ConfirmDialog
from nada_tui.screens.help import HelpScreen
from nada_tui.screens.sessions import SessionsScreen
from nada_tui.screens.train import TrainScreen
from nada_tui.threads import ThreadPerTaskExecutor
from nada_tui.widgets.previews import build_pixels

QUIT_JOIN_S = 1.7  # quitting while training: stop, let the worker save, exit within 2 s


class NadaApp(App):
    TITLE = "nada-tui"
    CSS_PATH = "nada.tcss"
    MODES = {"train": TrainScreen, "sessions": SessionsScreen}
    DEFAULT_MODE = "train"
    COMMANDS = App.COMMANDS | {SessionsProvider}
    BINDINGS = [
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("f2", "switch_mode('train')", "Train", id="app.train"),
        Binding("f3", "switch_mode('sessions')", "Sessions", id="app.sessions"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("q", "quit", "Quit", id="app.quit_q", show=False),
    ]

    def __init__(self, demo: bool = False, device: str = "auto", settings: config.Settings | None = None) -> None:
        self.settings = settings or config.load_settings()
        super().__init__()
        self.demo = demo
        self.device = self.settings.device if device == "auto" and self.settings.device else device
        self.training: backend.TrainingRun | None = None
        self.buffer: backend.RunBuffer | None = None
        self.preview_side = 16  # px per preview tile; the train screen updates it to fit its panel
        self.live_sessions_version = 0
        self._train_screen: TrainScreen | None = None
        self._theme_failures: list[str] = []
        loaded, self._theme_failures = themes.load_all()
        for theme in loaded:
            self.register_theme(theme)
        names = {t.name for t in loaded}
        self.theme = self.settings.theme if self.settings.theme in self.available_themes else (
            config.DEFAULT_THEME if config.DEFAULT_THEME in names else "textual-dark")
        if self.settings.theme not in self.available_themes:
            self._theme_failures.append(f"theme {self.settings.theme!r} from config.toml is not installed")

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(themes.VARIABLE_DEFAULTS)

    def on_load(self) -> None:
        # Before any screen mounts (and starts a thread worker): see nada_tui/threads.py.
        asyncio.get_running_loop().set_default_executor(ThreadPerTaskExecutor())

    def on_mount(self) -> None:
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)
        problems = self._theme_failures + self.settings.problems
        if problems:
            self.notify("\n".join(problems), title="Skipped settings", severity="warning", timeout=10)
        if not self.is_headless and self.console.color_system != "truecolor":
            self.notify(
                f"This terminal reports {self.console.color_system or 'no'} colours, so previews look posterized. "
                "Over SSH COLORTERM is not forwarded: run with COLORTERM=truecolor (or "
                "TEXTUAL_COLOR_SYSTEM=truecolor) if your terminal supports it.",
                title="Fewer than truecolor colours", severity="warning", timeout=12)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if not self.is_headless:
            # A dropped SSH connection (SIGHUP) or a kill (SIGTERM) saves the session, then exits.
            loop = asyncio.get_running_loop()
            for name in ("SIGTERM", "SIGHUP"):
                sig = getattr(signal, name, None)
                if sig is not None:
                    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                        loop.add_signal_handler(sig, self.quit_saving, True)

    def _theme_changed(self, theme: Any) -> None:
        if not self.is_headless:
            config.save_theme(theme.name)

    # ----- commands, help ---------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Train screen", "Setup, live chart, layers, previews", lambda: self.switch_mode("train"))
        yield SystemCommand("Sessions screen", "Browse saved sessions", lambda: self.switch_mode("sessions"))
        yield SystemCommand("Start training", "Start a new session from the setup form", self._cmd("start"))
        yield SystemCommand("Pause / resume training", "Between steps", self.toggle_pause)
        yield SystemCommand("Stop training", "Stops and saves the session", self.stop_training)
        yield SystemCommand("Retrain with edits", "Stop, then start a fork with the form's settings",
                            self._cmd("retrain"))
        yield SystemCommand("Save checkpoint now", "Write the session's weights now", self.save_now)
        yield SystemCommand("Toggle log scale", "Loss chart y axis", self._cmd("log_scale"))
        yield SystemCommand("Help", "Keys and binding ids", self.action_help)

    def _cmd(self, action: str) -> Any:
        def run() -> None:
            self.switch_mode("train")
            screen = self.train_screen()
            if screen is not None:
                getattr(screen, f"action_{action}")()

        return run

    def train_screen(self) -> TrainScreen | None:
        """The train mode's screen (it registers itself when mounted)."""
        return self._train_screen

    def binding_rows(self) -> list[tuple[str, str, str]]:
        keymap = self.settings.keymap
        rows = []
        for cls in (NadaApp, TrainScreen, SessionsScreen):
            for b in cls.BINDINGS:
                if not isinstance(b, Binding) or not b.description:
                    continue
                keys = keymap.get(b.id or "", b.key) if b.id else b.key
                pretty = ", ".join(self.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))
                rows.append((pretty, b.description, b.id or ""))
        return rows

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.binding_rows()))

    # ----- quitting ---------------------------------------------------------------------------
    async def action_quit(self) -> None:
        if not self.run_alive:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.quit_saving()

        self.push_screen(ConfirmDialog("Training is running. Stop it, save the session and quit?",
                                       yes="Save and quit", no="Keep training"), answered)

    @work(group="quit", exit_on_error=False)
    async def quit_saving(self, from_signal: bool = False) -> None:
        run = self.training
        if run is not None:
            run.stop()
            if await asyncio.to_thread(run.join, QUIT_JOIN_S):
                run.close()
        if from_signal:
            # The terminal may be gone (SIGHUP): restoring it can block forever, so the process
            # ends on its own shortly after the session is saved.
            timer = threading.Timer(1.0, os._exit, args=(0,))
            timer.daemon = True
            timer.start()
        self.exit()

    # ----- the run ----------------------------------------------------------------------------
    @property
    def run_alive(self) -> bool:
        if self.training is None:
            return False
        return self.training.alive or (self.buffer is not None and self.buffer.state == "loading")

    def start_training(self, cfg: Any, model_id: str, kind: str = "new", ref: str | None = None,
                       from_weights: bool = False) -> backend.TrainingRun:
        """Load models on a thread, then train; kind "new", "resume" (ref = session) or "fork"."""
        run = backend.TrainingRun(cfg, model_id, self.device, lambda e: None, kind=kind, ref=ref,
                                  from_weights=from_weights)
        token = run.token
        run.on_event = lambda event: self._forward_event(token, event)
        self.training = run
        self.buffer = backend.RunBuffer(token, ref if kind == "resume" else None, cfg, model_id)
        what = {"new": "new session", "resume": f"resuming {ref}", "fork": f"fork of {ref}"}[kind]
        self.buffer.add_log("info", f"{what}: {cfg.source!r} -> {cfg.target!r} on {model_id}; loading models")
        self._load_and_start(run)
        return run

    @work(thread=True, group="load", exit_on_error=False, description="load models")
    def _load_and_start(self, run: backend.TrainingRun) -> None:
        try:
            run.build(progress=lambda p: self.post_message(LoadProgress(p)))
        except Exception as exc:  # no network, bad checkpoint, locked session: a message, not a crash
            text = str(exc) or type(exc).__name__
            self.post_message(RunLoadFailed(run, text))
            return
        self.post_message(RunReady(run))

    def _forward_event(self, token: str, event: Any) -> None:
        """Training thread: build preview renderables here (off the UI thread), post everything else."""
        from engine.events import PreviewReady

        if isinstance(event, PreviewReady):
            try:
                side = self.preview_side
                n = len(event.seeds)
                frozen = build_pixels(event.frozen, n, side)
                adapted = build_pixels(event.adapted, n, side)
            except Exception:
                return
            self.post_message(PreviewRendered(token, event.step, frozen, adapted, tuple(event.seeds)))
            return
        self.post_message(EngineEvent(token, event))

    def on_load_progress(self, message: LoadProgress) -> None:
        if self.buffer is not None:
            self.buffer.load_progress = message.progress
            self.buffer.version += 1

    def on_run_ready(self, message: RunReady) -> None:
        if message.run is not self.training or self.buffer is None:
            return
        run = message.run
        self.buffer.session_id = run.session_id
        self.buffer.config = run.config
        self.buffer.load_progress = None
        self.buffer.add_log("info", f"session {run.session_id}: training to step {run.config.iterations}")
        self.post_message(SessionsChanged())
        run.start()

    def on_run_load_failed(self, message: RunLoadFailed) -> None:
        if self.buffer is not None and message.run is self.training:
            self.buffer.state = "failed"
            self.buffer.failure = message.message
            self.buffer.load_progress = None
            self.buffer.add_log("error", message.message)
        self.notify(message.message, title="Could not load the models", severity="error", timeout=12)

    def on_engine_event(self, message: EngineEvent) -> None:
        from engine.events import (
            CheckpointSaved,
            LogMessage,
            SelectionDone,
            StateChanged,
            StepMetrics,
            TrainingFailed,
            TrainingFinished,
        )

        buf = self.buffer
        if buf is None or message.session_id != buf.token:
            return
        ev = message.event
        if isinstance(ev, StepMetrics):
            buf.records.append({"step": ev.step, "losses": ev.losses})
            buf.last = ev
        elif isinstance(ev, SelectionDone):
            buf.add_log("info", f"step {ev.step}: selection trains w" + ",".join(str(i) for i in ev.chosen))
        elif isinstance(ev, StateChanged):
            buf.state = ev.state
            buf.add_log("info", f"{ev.state} at step {ev.step}")
        elif isinstance(ev, CheckpointSaved):
            buf.add_log("info", f"checkpoint ({ev.reason}) at step {ev.step}")
            if ev.reason == "manual":
                self.notify(f"Checkpoint saved at step {ev.step}.", timeout=3)
        elif isinstance(ev, LogMessage):
            buf.add_log(ev.level, ev.text)
            if ev.level == "error":
                self.notify(ev.text, severity="error")
        elif isinstance(ev, TrainingFinished):
            buf.state = "stopped" if ev.stopped else "finished"
            total = ev.losses.get("total")
            loss = f", final loss {total:.4f}" if total is not None else ""
            buf.add_log("info", f"{buf.state} at step {ev.step}{loss}; session saved")
            self.notify(f"Training {buf.state} at step {ev.step}{loss}. Session saved.", timeout=5)
            self._close_run(self.training)
        elif isinstance(ev, TrainingFailed):
            buf.state = "failed"
            buf.failure = ev.message
            buf.add_log("error", ev.message)
            title = {"nan": "Loss became NaN", "oom": "Out of memory"}.get(ev.kind, "Training failed")
            self.notify(ev.message, title=title, severity="error", timeout=15)
            self._close_run(self.training)
        buf.version += 1

    @work(thread=True, group="close", exit_on_error=False)
    def _close_run(self, run: backend.TrainingRun | None) -> None:
        """Release the session once its worker thread has ended (it emits its last event just before)."""
        if run is None:
            return
        run.join(10)
        run.close()
        self.post_message(SessionsChanged())

    def on_preview_rendered(self, message: PreviewRendered) -> None:
        if self.buffer is not None and message.session_id == self.buffer.token:
            self.buffer.preview = (message.step, message.frozen, message.adapted, message.seeds)
            self.buffer.version += 1

    @on(SessionsChanged)
    def sessions_changed(self) -> None:
        self.live_sessions_version += 1

    # ----- control ----------------------------------------------------------------------------
    def toggle_pause(self) -> None:
        if self.training is None or not self.training.alive:
            self.notify("Nothing is training.", severity="warning", timeout=3)
            return
        if self.training.worker.state == "paused" or (self.buffer and self.buffer.state == "paused"):
            self.training.resume()
        else:
            self.training.pause()

    def stop_training(self) -> None:
        if self.training is None or not self.run_alive:
            self.notify("Nothing is training.", severity="warning", timeout=3)
            return
        self.training.stop()
        if self.buffer:
            self.buffer.add_log("info", "stopping after this step; the session will be saved")

    def save_now(self) -> None:
        if self.training is None or not self.training.alive:
            self.notify("Nothing is training.", severity="warning", timeout=3)
            return
        self.training.save_now()

    def set_global_weight(self, g: float, quiet: bool = False) -> None:
        if self.training is None or not self.training.alive:
            return
        try:
            self.training.update(global_weight=g)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        if self.buffer is not None:
            self.buffer.add_log("info", f"global weight -> {g:g} from the next step")
        if not quiet:
            self.notify(f"Global weight {g:g} from the next step.", timeout=2)

    def retrain(self, cfg: Any, model_id: str) -> None:
        """Stop the current run (it saves), then train the form's settings as a fork of its session
        from the base model; a changed model starts an unrelated new session."""
        current = self.training
        parent = self.buffer.session_id if self.buffer else None
        same_model = current is not None and current.model_id == model_id
        kind, ref = ("fork", parent) if parent and same_model else ("new", None)
        if current is not None and self.run_alive:
            self._retrain_after_stop(current, cfg, model_id, kind, ref)
        else:
            self.start_training(cfg, model_id, kind=kind, ref=ref)

    @work(group="retrain", exclusive=True, exit_on_error=False)
    async def _retrain_after_stop(self, run: backend.TrainingRun, cfg: Any, model_id: str, kind: str,
                                  ref: str | None) -> None:
        run.stop()
        if self.buffer:
            self.buffer.add_log("info", "retrain: stopping the current run (it is saved) …")
        await asyncio.to_thread(run.join, 60)
        await asyncio.to_thread(run.close)
        self.start_training(cfg, model_id, kind=kind, ref=ref)

    def resume_session(self, info: backend.SessionInfo) -> None:
        from engine.trainer import TrainConfig

        if self.run_alive:
            self.notify("Stop the current training first (F8).", severity="warning")
            return
        try:
            cfg = TrainConfig.from_dict(info.config)
        except (TypeError, ValueError) as exc:
            self.notify(f"Cannot resume {info.name}: {exc}", severity="error")
            return
        if info.step >= cfg.iterations:
            cfg = cfg.replace(iterations=info.step + 100)  # finished: train 100 more steps
        self.switch_mode("train")
        screen = self.train_screen()
        if screen is not None:
            screen.read_only = False
            screen.fill_form(cfg.to_dict(), info.model)
        self.start_training(cfg, info.model, kind="resume", ref=info.id)

    def open_session(self, info: backend.SessionInfo) -> None:
        """Read-only view of a saved session on the train screen: its settings, curves, last preview."""
        from engine.events import StepMetrics

        buf = backend.RunBuffer(f"open-{info.id}", info.id, None, info.model, state=info.status or "saved")
        try:
            from engine.trainer import TrainConfig

            buf.config = TrainConfig.from_dict(info.config)
        except (TypeError, ValueError):
            buf.config = None
        records = backend.read_metrics(info)
        buf.records = [{"step": r["step"], "losses": r["losses"]} for r in records if "losses" in r]
        if records:
            r = records[-1]
            buf.last = StepMetrics(r["step"], info.iterations, r["losses"], 0.0, float(r.get("it_per_s", 0.0)),
                                   0.0, tuple(r.get("trained", ())), int(r.get("k", 0)), None, None,
                                   float(info.config.get("global_weight", 0.0)))
        buf.add_log("info", f"opened {info.id} read-only: Resume (r on the sessions screen) continues it")
        self.training = None
        self.buffer = buf
        self.switch_mode("train")
        screen = self.train_screen()
        if screen is not None:
            screen.read_only = True
            screen.fill_form(info.config, info.model)
        self._load_open_preview(info, buf)

    @work(thread=True, group="open-preview", exclusive=True, exit_on_error=False)
    def _load_open_preview(self, info: backend.SessionInfo, buf: backend.RunBuffer) -> None:
        grid = backend.session_grid(info)
        if grid is None:
            return
        w, h = grid.size
        half = h // 2
        frozen, adapted = grid.crop((0, 0, w, half)), grid.crop((0, half, w, h))
        seeds = tuple(info.config.get("preview_seeds", (0, 1, 2, 3)))
        try:
            px = (build_pixels(frozen, len(seeds), self.preview_side),
                  build_pixels(adapted, len(seeds), self.preview_side))
        except Exception:
            return
        self.post_message(PreviewRendered(buf.token, buf.last.step if buf.last else 0, px[0], px[1], seeds))

    def fork_session(self, info: backend.SessionInfo, source: str, target: str, from_weights: bool = False) -> None:
        from engine.clip_loss import PromptError, validate_prompts
        from engine.trainer import TrainConfig

        if self.run_alive:
            self.notify("Stop the current training first (F8).", severity="warning")
            return
        try:
            cfg = TrainConfig.from_dict({**info.config, "source": source.strip(), "target": target.strip()})
            validate_prompts(cfg.source, cfg.target, cfg.templates)
        except (TypeError, ValueError, PromptError) as exc:
            self.notify(str(exc), title="Cannot fork", severity="error")
            return
        self.switch_mode("train")
        screen = self.train_screen()
        if screen is not None:
            screen.read_only = False
            screen.fill_form(cfg.to_dict(), info.model)
        self.start_training(cfg, info.model, kind="fork", ref=info.id, from_weights=from_weights)

    @work(group="download", exclusive=True, thread=True, exit_on_error=False)
    def download_model(self, model_id: str) -> None:
        try:
            backend.download_model(model_id, progress=lambda p: self.post_message(LoadProgress(p)))
        except Exception as exc:
            self.call_from_thread(self.notify, str(exc), title="Download failed", severity="error")
            return
        self.call_from_thread(self.notify, f"{model_id} is ready.")


def _draw_on_the_terminal() -> None:
    """Textual draws on stderr. When a user sends stderr to a file (`nada-tui 2>log`) to keep warnings,
    draw on the controlling terminal instead, and leave the file for the warnings."""
    err = sys.__stderr__
    if err is not None and err.isatty():
        return
    try:
        tty = open("/dev/tty", "w")  # noqa: SIM115 - lives as long as the app
    except OSError:
        return  # no terminal at all: let Textual fail with its own message
    sys.__stderr__ = tty


def run_app(demo: bool = False, device: str = "auto") -> int:
    # Textual reads the colour system from the environment; keep COLORTERM if the user set it.
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "basic")
    _draw_on_the_terminal()
    NadaApp(demo=demo, device=device).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_app(demo=True))
