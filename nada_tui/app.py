"""The nada-tui Textual app: it owns the one training run and decides what every request does.

Threads: models load in a Textual thread worker (`engine.runs` may download); training runs on the
engine's TrainingWorker thread. Both only `post_message` (RunEvents, PreviewPixels, LoadProgress, ...);
the handlers here fold events into the ViewState's RunBuffer, and each screen redraws from it on its own
timer. Screens post requests (StartRequested, ResumeRequested, ...) and never touch the run. torch is
imported on first use, not at start-up, so the first paint does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from engine.config import TrainConfig
from engine.events import PreviewReady, StateChanged, StepMetrics, TrainingFailed, TrainingFinished
from nada_tui import graphics, process, themes, user_config
from nada_tui.commands import SessionsProvider
from nada_tui.messages import (
    DeleteRequested,
    DownloadRequested,
    ExportRequested,
    ForkRequested,
    GenerateRequested,
    GlobalWeightChanged,
    LoadProgress,
    OpenRequested,
    PauseToggleRequested,
    PinsChanged,
    PreviewPixels,
    RenameRequested,
    ResumeRequested,
    RetrainRequested,
    RunEvents,
    RunLoaded,
    RunLoadFailed,
    SaveRequested,
    SessionsChanged,
    StartRequested,
    StopRequested,
)
from nada_tui.process import ThreadPerTaskExecutor, draw_on_the_terminal, exit_now, exit_soon, guard_timers
from nada_tui.run_buffer import Notice, Preview, RunBuffer, ViewState
from nada_tui.screens.compare import CompareScreen
from nada_tui.screens.dialogs import ConfirmDialog
from nada_tui.screens.help import HelpScreen
from nada_tui.screens.sessions import SessionsScreen
from nada_tui.screens.train import TrainScreen
from nada_tui.widgets.layer_map import LayerMap

QUIT_JOIN_S = 1.7  # quitting while training: stop, let the worker save, exit within 2 s
RETRAIN_JOIN_S = 60.0
# Events of a run reach the UI at most this often (the last ones of a run, and a pause, at once). Each
# message wakes the UI thread, and on the CPU every wake-up takes a core from the trainer's OpenMP team
# (see nada_tui/bench.py): there they come once a second, as often as htop redraws; on a GPU, 4 Hz.
EVENT_BATCH_S = 0.25
CPU_EVENT_BATCH_S = 1.0
EXTRA_STEPS_ON_RESUME = 100  # resuming a finished session trains this many more steps
_tokens = itertools.count(1)


class NadaApp(App):
    TITLE = "nada-tui"
    CSS_PATH = Path(__file__).with_name("nada.tcss")  # absolute: subclasses elsewhere find it too
    DEFAULT_MODE = "train"
    COMMANDS = App.COMMANDS | {SessionsProvider}
    BINDINGS = [
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        Binding("f2", "switch_mode('train')", "Train", id="app.train"),
        Binding("f3", "switch_mode('sessions')", "Sessions", id="app.sessions"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
        Binding("q", "quit", "Quit", id="app.quit_q", show=False),
    ]

    def __init__(self, demo: bool = False, device: str = "auto", settings: user_config.Settings | None = None,
                 open_session: str | None = None) -> None:
        guard_timers()
        settings = settings or user_config.load_settings()
        keymap, keymap_problems = user_config.check_keymap(settings.keymap, user_config.nada_bindings())
        settings = replace(settings, keymap=keymap, problems=[*settings.problems, *keymap_problems])
        super().__init__()
        self._open_session = open_session  # `nada-tui --open ID`: shown read-only once mounted
        self.settings = settings
        self.view = ViewState(demo, settings)
        self.device = settings.device if device == "auto" and settings.device else device
        self.current_run: Any = None  # engine.runs.Run of the current buffer, once loaded
        self.worker: Any = None  # its engine.trainer.TrainingWorker
        self._cancelled: set[str] = set()  # tokens whose run was stopped while it loaded
        self._last_weight: float | None = None
        self._batch_lock = threading.Lock()  # events waiting to be posted (see _forward)
        self._batch: list[Any] = []
        self._batch_preview: Any = None  # the newest PreviewReady: older ones are never drawn
        self._batch_at = 0.0
        self._batch_window = EVENT_BATCH_S
        self.train_screen = TrainScreen(self.view)
        self.add_mode("train", lambda: self.train_screen)
        self.add_mode("sessions", lambda: SessionsScreen(self.view))
        loaded, self._theme_failures = themes.load_all()
        for theme in loaded:
            self.register_theme(theme)
        names = {t.name for t in loaded}
        if settings.theme in self.available_themes:
            self.theme = settings.theme
        else:
            self.theme = user_config.DEFAULT_THEME if user_config.DEFAULT_THEME in names else "textual-dark"
            self._theme_failures.append(f"theme {settings.theme!r} from config.toml is not installed")

    @property
    def startup_problems(self) -> list[str]:
        """What the config file asked for and could not have (shown as a toast, and on stderr at start)."""
        return self._theme_failures + self.settings.problems

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(themes.VARIABLE_DEFAULTS)

    def on_load(self) -> None:
        # Before any screen mounts (and starts a thread worker): see nada_tui/process.py.
        asyncio.get_running_loop().set_default_executor(ThreadPerTaskExecutor())

    def on_mount(self) -> None:
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)
        problems = self.startup_problems
        if problems:
            self.notify("\n".join(problems), title="Skipped settings", severity="warning", timeout=10)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self._open_session:
            self._open_at_start(self._open_session)
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
            user_config.save_theme(theme.name)

    def tell(self, notice: Notice | None) -> None:
        if notice is not None:
            self.notify(notice.text, title=notice.title, severity=notice.severity,  # type: ignore[arg-type]
                        timeout=notice.timeout)

    # ----- commands, help ---------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Train screen", "Setup, live chart, layers, previews", lambda: self.switch_mode("train"))
        yield SystemCommand("Sessions screen", "Browse saved sessions", lambda: self.switch_mode("sessions"))
        for title, help_text, action in (
            ("Start training", "Start a new session from the setup form", "start"),
            ("Pause / resume training", "Between steps", "toggle_pause"),
            ("Stop training", "Stops and saves the session", "stop"),
            ("Retrain with edits", "Stop, then start a fork with the form's settings", "retrain"),
            ("Save checkpoint now", "Write the session's weights now", "save_now"),
            ("Toggle log scale", "Loss chart y axis", "log_scale"),
        ):
            yield SystemCommand(title, help_text, self._on_train_screen(action))
        yield SystemCommand("Help", "Keys and binding ids", self.action_help)

    def _on_train_screen(self, action: str) -> Callable[[], None]:
        def run() -> None:
            self.switch_mode("train")
            self.call_later(self.train_screen.run_action, action)

        return run

    def binding_rows(self) -> list[tuple[str, str, str]]:
        keymap = self.settings.keymap
        rows = []
        for cls in (NadaApp, TrainScreen, LayerMap, SessionsScreen, CompareScreen):
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
        if not self.view.training:
            self.exit()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.quit_saving()

        self.push_screen(ConfirmDialog("Training is running. Stop it, save the session and quit?",
                                       yes="Save and quit", no="Keep training"), answered)

    @work(group="quit", exit_on_error=False)
    async def quit_saving(self, from_signal: bool = False) -> None:
        run, worker = self.current_run, self.worker
        if self.view.buffer is not None:
            self._cancelled.add(self.view.buffer.token)
        if worker is not None:
            worker.stop()
            if await asyncio.to_thread(worker.join, QUIT_JOIN_S):
                run.close()
                self.current_run = self.worker = None
        if from_signal:
            # the terminal may be gone (SIGHUP): restoring it can block forever
            exit_soon(first=self.finish_saving)
        self.exit()

    def finish_saving(self) -> None:
        """After the app has exited: let a run that is still saving finish, then release its session."""
        run, worker = self.current_run, self.worker
        if worker is not None and worker.alive:
            with contextlib.suppress(OSError, ValueError):
                print("nada-tui: saving the session before exiting ...", file=sys.stderr, flush=True)
            worker.join()
        if run is not None:
            run.close()

    # ----- starting a run ---------------------------------------------------------------------
    def _begin(self, cfg: TrainConfig, model_id: str, what: str, build: Callable[[Callable], Any],
               session_id: str | None = None) -> None:
        """A new buffer for a run that `build(progress)` creates on a loader thread."""
        token = f"run-{next(_tokens)}"
        self.current_run = self.worker = None
        self._last_weight = cfg.global_weight
        self.view.buffer = RunBuffer(token, cfg, model_id, session_id)
        images = " + target images" if cfg.target_images else ""
        self.view.buffer.add_log("info", f"{what}: {cfg.source!r} -> {cfg.target!r}{images} on {model_id}; "
                                 "loading models")
        self._load_run(token, build)

    @work(thread=True, group="load", exit_on_error=False, description="load models")
    def _load_run(self, token: str, build: Callable[[Callable], Any]) -> None:
        from engine.sessions import SessionError, SessionsFolderError
        from engine.target_images import TargetImageError

        try:
            run = build(lambda p: self.post_message(LoadProgress(token, p)))
        except SessionsFolderError as exc:  # the message names the folder and what is wrong with it
            self.post_message(RunLoadFailed(token, str(exc), "Cannot save the session"))
            return
        except SessionError as exc:  # locked by another process, damaged, already finished
            self.post_message(RunLoadFailed(token, str(exc), "Cannot use this session"))
            return
        except TargetImageError as exc:  # read before any model loads: nothing was written
            self.post_message(RunLoadFailed(token, str(exc), "Check the target images"))
            return
        except Exception as exc:  # offline, a bad file, a bug: a message, never a dead loader
            self.post_message(RunLoadFailed(token, str(exc) or type(exc).__name__, "Could not load the models"))
            return
        self.post_message(RunLoaded(token, run))

    def _device(self) -> str | None:
        return None if self.device == "auto" else self.device

    def start_new(self, cfg: TrainConfig, model_id: str) -> None:
        from engine import runs

        self._begin(cfg, model_id, "new session",
                    lambda progress: runs.start_session(cfg, model_id, device=self._device(), progress=progress))

    def start_fork(self, parent: str, cfg: TrainConfig, model_id: str, from_weights: bool) -> None:
        from engine import runs

        def build(progress: Callable) -> Any:
            return runs.fork_session(parent, cfg.to_dict(), from_weights=from_weights, device=self._device(),
                                     progress=progress)

        self._begin(cfg, model_id, f"fork of {parent}", build)

    def _switch_to_train(self, cfg: TrainConfig, model_id: str) -> None:
        self.switch_mode("train")
        self.train_screen.show_settings(cfg, model_id)

    @on(StartRequested)
    def _start_requested(self, message: StartRequested) -> None:
        if isinstance(message, RetrainRequested):
            self._retrain(message.config, message.model_id)
        elif self.view.training:
            self.notify("Training is running: Retrain (^R) stops it and starts a new session with the edits.",
                        severity="warning")
        else:
            self.start_new(message.config, message.model_id)

    def _retrain(self, cfg: TrainConfig, model_id: str) -> None:
        """Stop the current run (it saves), then train the form's settings as a fork of its session from
        the base model; a changed model starts an unrelated new session."""
        buf = self.view.buffer
        parent = buf.session_id if buf is not None and buf.model_id == model_id else None
        if self.view.training:
            self._retrain_after_stop(cfg, model_id, parent)
        elif parent is not None:
            self.start_fork(parent, cfg, model_id, from_weights=False)
        else:
            self.start_new(cfg, model_id)

    @work(group="retrain", exclusive=True, exit_on_error=False)
    async def _retrain_after_stop(self, cfg: TrainConfig, model_id: str, parent: str | None) -> None:
        run, worker = self.current_run, self.worker
        if self.view.buffer is not None:
            self._cancelled.add(self.view.buffer.token)
            self.view.buffer.add_log("info", "retrain: stopping the current run (it is saved) …")
        if worker is not None:
            worker.stop()
            await asyncio.to_thread(worker.join, RETRAIN_JOIN_S)
            await asyncio.to_thread(run.close)
        if parent is not None:
            self.start_fork(parent, cfg, model_id, from_weights=False)
        else:
            self.start_new(cfg, model_id)

    # ----- messages from the loader and the training thread -----------------------------------
    def _current(self, token: str) -> RunBuffer | None:
        buf = self.view.buffer
        return buf if buf is not None and buf.token == token else None

    @on(LoadProgress)
    def _load_progress(self, message: LoadProgress) -> None:
        buf = self._current(message.token) if message.token else self.view.buffer
        if buf is not None:
            buf.load_progress = message.progress
            buf.touch()

    @on(RunLoaded)
    def _run_loaded(self, message: RunLoaded) -> None:
        buf = self._current(message.token)
        run = message.run
        if buf is None or message.token in self._cancelled:  # stopped or replaced while loading
            self._release(run, None)
            return
        token = message.token
        self.current_run = run
        self._batch, self._batch_preview, self._batch_at = [], None, 0.0
        self.worker = run.make_worker(lambda event: self._forward(token, event))
        buf.session_id = run.session_id
        buf.config = run.trainer.config
        buf.load_progress = None
        buf.add_log("info", f"session {run.session_id}: training to step {buf.config.iterations}")
        self.post_message(SessionsChanged())
        self.worker.start()
        process.freeze_while_training(self.worker)

    @on(RunLoadFailed)
    def _run_load_failed(self, message: RunLoadFailed) -> None:
        buf = self._current(message.token)
        if buf is not None:
            buf.load_failed(message.message)
        self.notify(message.message, title=message.title, severity="error", timeout=12)

    def _forward(self, token: str, event: Any) -> None:
        """Training thread: batch and post, nothing else (the preview widget scales images itself).
        Events wait up to the batch window (see CPU_EVENT_BATCH_S), except a pause, a resume and the end
        of the run; of the previews made meanwhile only the newest is posted."""
        now = time.monotonic()
        with self._batch_lock:
            if isinstance(event, PreviewReady):
                self._batch_preview = event
            else:
                self._batch.append(event)
            if isinstance(event, StepMetrics) and event.memory is not None:
                self._batch_window = CPU_EVENT_BATCH_S if event.memory.device == "cpu" else EVENT_BATCH_S
            urgent = isinstance(event, StateChanged | TrainingFinished | TrainingFailed)
            if not urgent and now - self._batch_at < self._batch_window:
                return
            events, preview = tuple(self._batch), self._batch_preview
            self._batch, self._batch_preview, self._batch_at = [], None, now
        if events:
            self.post_message(RunEvents(token, events))
        if preview is not None:
            self.post_message(PreviewPixels(token, preview.step, preview.frozen, preview.adapted,
                                            tuple(preview.seeds)))

    @on(RunEvents)
    def _run_events(self, message: RunEvents) -> None:
        buf = self._current(message.token)
        if buf is None:
            return
        for event in message.events:
            self.tell(buf.apply(event))
            if isinstance(event, TrainingFinished | TrainingFailed):
                self._release(self.current_run, self.worker)

    @work(thread=True, group="release", exit_on_error=False)
    def _release(self, run: Any, worker: Any) -> None:
        """Give a session back (its lock) once its worker thread has ended."""
        if run is None:
            return
        if worker is not None:
            worker.join(10)
        run.close()
        self.post_message(SessionsChanged())

    @on(PreviewPixels)
    def _preview_pixels(self, message: PreviewPixels) -> None:
        buf = self._current(message.token)
        if buf is not None:
            buf.set_preview(Preview(message.step, message.frozen, message.adapted, message.seeds))

    @on(SessionsChanged)
    def _sessions_changed(self) -> None:
        self.view.sessions_version += 1

    # ----- controls ---------------------------------------------------------------------------
    def _nothing_training(self) -> bool:
        if self.view.training:
            return False
        self.notify("Nothing is training.", severity="warning", timeout=3)
        return True

    @on(PauseToggleRequested)
    def _toggle_pause(self) -> None:
        if self._nothing_training() or self.worker is None:
            return
        if self.view.buffer is not None and self.view.buffer.state == "paused":
            self.worker.resume()
        else:
            self.worker.pause()

    @on(StopRequested)
    def _stop(self) -> None:
        buf = self.view.buffer
        if self._nothing_training() or buf is None:
            return
        if self.worker is None:  # still loading: the run is closed as soon as it is built
            self._cancelled.add(buf.token)
            buf.state = "stopped"
            buf.add_log("info", "stopped while loading; nothing was trained")
            return
        self.worker.stop()
        buf.add_log("info", "stopping after this step; the session will be saved")

    @on(SaveRequested)
    def _save_now(self) -> None:
        if not self._nothing_training() and self.worker is not None:
            self.worker.save_now()

    @on(GlobalWeightChanged)
    def _global_weight(self, message: GlobalWeightChanged) -> None:
        g = message.value
        if not self.view.training or self.current_run is None:
            return
        if g != self._last_weight:  # typing applies it; Enter only confirms: one log line per change
            try:
                self.current_run.trainer.update(global_weight=g)
            except ValueError as exc:
                self.notify(str(exc), severity="error")
                return
            self._last_weight = g
            if self.view.buffer is not None:
                self.view.buffer.add_log("info", f"global weight -> {g:g} from the next step")
        if not message.quiet:
            self.notify(f"Global weight {g:g} from the next step.", timeout=2)

    @on(PinsChanged)
    def _pins(self, message: PinsChanged) -> None:
        # The train screen already put the pins in the form: with nothing training, the next Start uses them.
        if not self.view.training or self.current_run is None:
            return
        trainer = self.current_run.trainer
        try:
            trainer.update(pin_on=message.pin_on, pin_off=message.pin_off)
        except ValueError as exc:  # out of range, or nothing left to train: show the pins still in force
            self.notify(str(exc), title="Pins not changed", severity="error")
            self.train_screen.show_pins(trainer.next_config.pin_on, trainer.next_config.pin_off)
            return
        on = ",".join(str(i) for i in message.pin_on) or "none"
        off = ",".join(str(i) for i in message.pin_off) or "none"
        what = f"w{message.index} {message.state}" if message.index is not None else "pins"
        if self.view.buffer is not None:
            self.view.buffer.add_log("info", f"{what} -> pinned on {on}, off {off} from the next step")
        self.notify(f"Pinned on: {on}; off: {off} (from the next step).", timeout=2)

    # ----- saved sessions ---------------------------------------------------------------------
    def _refuse_while_training(self, what: str) -> bool:
        if self.view.training:
            self.notify(f"Stop the current training first (F8) to {what}.", severity="warning")
            return True
        return False

    @on(OpenRequested)
    def _open(self, message: OpenRequested) -> None:
        info = message.info
        if self.view.is_live(info.id):
            self.switch_mode("train")  # the live session: the train screen shows it
            return
        if self._refuse_while_training("open another session"):
            return
        self._open_saved(info)

    @work(thread=True, group="open", exclusive=True, exit_on_error=False)
    def _open_saved(self, info: Any) -> None:
        from engine import sessions
        from engine.compare import session_grid

        buf = RunBuffer.saved(info, sessions.read_metrics(info.path))
        self.call_from_thread(self._show_saved, info, buf)
        grid = session_grid(info)
        if grid is None:
            return
        w, h = grid.size
        frozen, adapted = grid.crop((0, 0, w, h // 2)), grid.crop((0, h // 2, w, h))
        step = buf.last.step if buf.last else 0
        self.post_message(PreviewPixels(buf.token, step, frozen, adapted, info.config.preview_seeds))

    def _show_saved(self, info: Any, buf: RunBuffer) -> None:
        self.current_run = self.worker = None
        self.view.buffer = buf
        self._switch_to_train(info.config, info.model_id)

    @work(thread=True, group="open", exit_on_error=False)
    def _open_at_start(self, ref: str) -> None:
        from engine import sessions

        try:
            info = sessions.load(ref)
        except Exception as exc:  # no such session, damaged, unreadable: said, and the app starts as usual
            self.post_message(RunLoadFailed("", str(exc), "Cannot open that session"))
            return
        self.post_message(OpenRequested(info))

    @on(ResumeRequested)
    def _resume(self, message: ResumeRequested) -> None:
        from engine import runs

        info = message.info
        if self._refuse_while_training("resume a session"):
            return
        cfg = info.config
        if info.step >= cfg.iterations:
            cfg = cfg.replace(iterations=info.step + EXTRA_STEPS_ON_RESUME)
        self._switch_to_train(cfg, info.model_id)

        def build(progress: Callable) -> Any:
            return runs.resume_session(info.id, device=self._device(), iterations=cfg.iterations, progress=progress)

        self._begin(cfg, info.model_id, f"resuming {info.id}", build, session_id=info.id)

    @on(ForkRequested)
    def _fork(self, message: ForkRequested) -> None:
        from engine.clip_loss import PromptError, validate_prompts

        info = message.info
        if self._refuse_while_training("fork a session"):
            return
        try:
            cfg = info.config.replace(source=message.source.strip(), target=message.target.strip())
            validate_prompts(cfg.source, cfg.target, cfg.templates, images=bool(cfg.target_images))
        except (ValueError, PromptError) as exc:
            self.notify(str(exc), title="Cannot fork", severity="error")
            return
        self._switch_to_train(cfg, info.model_id)
        self.start_fork(info.id, cfg, info.model_id, message.from_weights)

    @on(DeleteRequested)
    def _delete(self, message: DeleteRequested) -> None:
        if self.view.is_live(message.info.id):
            self.notify("That session is training now: stop it first.", severity="warning")
            return
        self._store_operation("delete", message.info)

    @on(RenameRequested)
    def _rename(self, message: RenameRequested) -> None:
        self._store_operation("rename", message.info, message.name)

    @work(thread=True, group="store", exit_on_error=False)
    def _store_operation(self, what: str, info: Any, name: str = "") -> None:
        from engine import sessions

        try:
            if what == "delete":
                sessions.delete(info.id)
            else:
                sessions.rename(info.id, name)
        except (sessions.SessionError, OSError) as exc:  # locked by another process, bad name, permissions
            self.call_from_thread(self.notify, f"Could not {what}: {exc}", severity="error")
            return
        if what == "delete":
            self.call_from_thread(self.notify, f"Deleted {info.name}.", timeout=3)
        self.post_message(SessionsChanged())

    @on(GenerateRequested)
    @work(thread=True, group="generate", exit_on_error=False)
    def _generate(self, message: GenerateRequested) -> None:
        from engine import export

        try:
            out = export.generate(message.info.id, message.n, message.folder)
        except Exception as exc:  # shown to the user, whatever it is: the app lives on
            self.call_from_thread(self.notify, f"{type(exc).__name__}: {exc}", title="Generate failed",
                                  severity="error")
            return
        self.call_from_thread(self.notify, f"{len(out)} images in {message.folder}", title="Generated")

    @on(ExportRequested)
    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, message: ExportRequested) -> None:
        from engine import export

        try:
            files = export.export_all(message.info.id, message.folder)
        except Exception as exc:  # shown to the user, whatever it is: the app lives on
            self.call_from_thread(self.notify, f"{type(exc).__name__}: {exc}", title="Export failed",
                                  severity="error")
            return
        self.call_from_thread(self.notify, "\n".join(str(p) for p in files.values()), title="Exported")

    @on(DownloadRequested)
    @work(group="download", exclusive=True, thread=True, exit_on_error=False)
    def _download(self, message: DownloadRequested) -> None:
        from engine import zoo

        try:
            zoo.ensure_downloaded(message.model_id, progress=lambda p: self.post_message(LoadProgress(None, p)))
        except Exception as exc:  # offline, bad file: shown to the user
            self.call_from_thread(self.notify, str(exc), title="Download failed", severity="error")
            return
        self.call_from_thread(self.notify, f"{message.model_id} is ready.")


def run_app(demo: bool = False, device: str = "auto", preview_renderer: str | None = None,
            open_session: str | None = None) -> int:
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "basic")
    settings = user_config.load_settings()
    # Before Textual owns the terminal: the graphics queries read the terminal's answers from stdin.
    graphics.configure(preview_renderer or settings.preview_renderer)
    draw_on_the_terminal()
    app = NadaApp(demo=demo, device=device, settings=settings, open_session=open_session)
    for problem in app.startup_problems:  # still readable after the app has left the screen
        print(f"nada-tui: skipped setting: {problem}", file=sys.stderr)
    app.run()
    app.finish_saving()
    exit_now(app.return_code or 0)  # skips the interpreter's slow teardown: see nada_tui/process.py
    return 0


if __name__ == "__main__":
    raise SystemExit(run_app(demo=True))

