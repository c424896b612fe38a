"""The nada-tui Textual app: it owns the one training run and decides what every request does (jobs on
saved files that never touch the run are in its base classes: nada_tui/photo_jobs.py, file_jobs.py).

The run is one handle, `self.live_run` (an engine.live_run.Run; `run` is App's own method).
Threads: models load in a Textual thread worker (`engine.runs` may download); the run trains on its own
thread. Both only `post_message` (RunEvents and PreviewPixels through the run's event stream,
nada_tui.run_stream; LoadProgress, ...); the handlers here fold events into the ViewState's RunBuffer, and
each screen redraws from it on its own timer. Screens and widgets post requests (StartRequested,
LiveSettingChanged, ...) and never touch the run; a refused live change goes back as LiveSettingRefused.
torch is imported on first use, not at start-up, so the first paint does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from engine.config import SETTINGS, ConfigError, TrainConfig
from engine.events import TrainingFailed, TrainingFinished
from nada_tui import process, themes, user_config
from nada_tui.commands import SessionsProvider, app_commands
from nada_tui.messages import (
    ForkRequested,
    LiveSettingChanged,
    LiveSettingRefused,
    LoadProgress,
    OpenRequested,
    PauseToggleRequested,
    PreviewPixels,
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
from nada_tui.photo_jobs import PhotoJobsApp
from nada_tui.process import ThreadPerTaskExecutor, exit_soon, guard_timers
from nada_tui.run_buffer import Notice, Preview, RunBuffer, ViewState
from nada_tui.run_stream import RunEventStream
from nada_tui.screens.dialogs import ConfirmDialog
from nada_tui.screens.help import HelpScreen, binding_rows
from nada_tui.screens.sessions import OPENS, SessionsScreen
from nada_tui.screens.train import TrainScreen
from nada_tui.widgets.layer_map import LayerMap

if TYPE_CHECKING:
    from textual.theme import Theme

    from engine.download import DownloadProgress
    from engine.live_run import Run
    from engine.sessions import SessionInfo

    Build = Callable[[Callable[[DownloadProgress], None]], Run]  # makes a run on the loader thread

EXTRA_STEPS_ON_RESUME = 100  # resuming a finished session trains this many more steps
_tokens = itertools.count(1)


class NadaApp(PhotoJobsApp):
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
        self.live_run: Run | None = None  # the run of the current buffer, once loaded
        self._cancelled: set[str] = set()  # tokens whose run was stopped while it loaded
        self.train_screen = TrainScreen(self.view)
        self.add_mode("train", lambda: self.train_screen)
        self.add_mode("sessions", lambda: SessionsScreen(self.view))
        self._theme_failures = themes.install(self, settings.theme, user_config.DEFAULT_THEME)

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

    def _theme_changed(self, theme: Theme) -> None:
        if not self.is_headless:
            user_config.save_theme(theme.name)

    def tell(self, notice: Notice | None) -> None:
        if notice is not None:
            self.notify(notice.text, title=notice.title, severity=notice.severity,  # type: ignore[arg-type]
                        timeout=notice.timeout)

    # ----- commands, help ---------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from app_commands(self.switch_mode, self._on_train_screen, self.action_help)

    def _on_train_screen(self, action: str) -> None:
        self.switch_mode("train")
        self.call_later(self.train_screen.run_action, action)

    def binding_rows(self) -> list[tuple[str, str, str]]:
        classes = (NadaApp, TrainScreen, LayerMap, SessionsScreen, *OPENS)
        return binding_rows(classes, self.settings.keymap, self.get_key_display)

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

    def quit_saving(self, from_signal: bool = False) -> None:
        """Stop the run and leave at once: the run saves on its own thread after the step in progress,
        while the terminal is restored; `finish_saving` then waits for the save, and the process ends."""
        if self.view.buffer is not None:
            self._cancelled.add(self.view.buffer.token)
        if self.live_run is not None:
            self.live_run.stop()
        if from_signal:
            # the terminal may be gone (SIGHUP): restoring it can block forever
            exit_soon(first=self.finish_saving)
        self.exit()

    def finish_saving(self) -> None:
        """After the app has exited: let a run that is still saving finish, then release its session."""
        run = self.live_run
        if run is None:
            return
        if run.alive:
            with contextlib.suppress(OSError, ValueError):
                print("nada-tui: saving the session before exiting ...", file=sys.stderr, flush=True)
        run.close()

    # ----- starting a run ---------------------------------------------------------------------
    def _begin(self, cfg: TrainConfig, model_id: str, what: str, build: Build,
               resuming: SessionInfo | None = None) -> None:
        """A new buffer for a run that `build(progress)` creates on a loader thread."""
        token = f"run-{next(_tokens)}"
        self.live_run = None
        self.view.buffer = RunBuffer(token, cfg, model_id, resuming.id if resuming else None, resumes=resuming)
        images = " + target images" if cfg.target_images else ""
        self.view.buffer.add_log("info", f"{what}: {cfg.source!r} -> {cfg.target!r}{images} on {model_id}; "
                                 "loading models")
        self._load_run(token, build)

    @work(thread=True, group="load", exit_on_error=False, description="load models")
    def _load_run(self, token: str, build: Build) -> None:
        from engine.clip_loss import PromptError
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
        except (TargetImageError, PromptError, ConfigError) as exc:  # before any model loads: nothing written
            self.post_message(RunLoadFailed(token, str(exc), "Check the target images"))
            return
        except Exception as exc:  # offline, a bad file, a bug: a message, never a dead loader
            self.post_message(RunLoadFailed(token, str(exc) or type(exc).__name__, "Could not load the models"))
            return
        self.post_message(RunLoaded(token, run))

    def _device(self) -> str | None:
        return None if self.device == "auto" else self.device

    def start_new(self, cfg: TrainConfig, model_id: str, image_files: tuple[Path, ...] | None) -> None:
        from engine import runs

        def build(progress: Callable[[DownloadProgress], None]) -> Run:
            return runs.start_session(cfg, model_id, device=self._device(), progress=progress,
                                      image_files=image_files)

        self._begin(cfg, model_id, "new session", build)

    def start_fork(self, parent: str, cfg: TrainConfig, model_id: str, from_weights: bool,
                   image_files: tuple[Path, ...] | None) -> None:
        from engine import runs

        def build(progress: Callable[[DownloadProgress], None]) -> Run:
            return runs.fork_session(parent, cfg.to_dict(), from_weights=from_weights, device=self._device(),
                                     progress=progress, image_files=image_files)

        self._begin(cfg, model_id, f"fork of {parent}", build)

    def _switch_to_train(self, cfg: TrainConfig, model_id: str) -> None:
        self.switch_mode("train")
        self.train_screen.show_settings(cfg, model_id)

    @on(StartRequested)
    def _start_requested(self, message: StartRequested) -> None:
        if isinstance(message, RetrainRequested):
            self._retrain(message.config, message.model_id, message.image_files)
        elif self.view.training:
            self.notify("Training is running: Retrain (^R) stops it and starts a new session with the edits.",
                        severity="warning")
        else:
            self.start_new(message.config, message.model_id, message.image_files)

    def _retrain(self, cfg: TrainConfig, model_id: str, image_files: tuple[Path, ...] | None) -> None:
        """Stop the current run (it saves), then train the form's settings as a fork of its session from
        the base model; a changed model starts an unrelated new session."""
        buf = self.view.buffer
        parent = buf.session_id if buf is not None and buf.model_id == model_id else None
        if self.view.training:
            self._retrain_after_stop(cfg, model_id, parent, image_files)
        elif parent is not None:
            self.start_fork(parent, cfg, model_id, False, image_files)
        else:
            self.start_new(cfg, model_id, image_files)

    @work(group="retrain", exclusive=True, exit_on_error=False)
    async def _retrain_after_stop(self, cfg: TrainConfig, model_id: str, parent: str | None,
                                  image_files: tuple[Path, ...] | None) -> None:
        run = self.live_run
        if self.view.buffer is not None:
            self._cancelled.add(self.view.buffer.token)
            self.view.buffer.add_log("info", "retrain: stopping the current run (it is saved) …")
        if run is not None:
            run.stop()
            await asyncio.to_thread(run.close)  # after its step and its save
        if parent is not None:
            self.start_fork(parent, cfg, model_id, False, image_files)
        else:
            self.start_new(cfg, model_id, image_files)

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
            self._release(run)
            return
        self.live_run = run
        buf.session_id = run.session_id
        buf.config = run.config
        buf.load_progress = None
        buf.add_log("info", f"session {run.session_id}: training to step {buf.config.iterations}")
        self.post_message(SessionsChanged())
        run.start(RunEventStream(message.token, self.post_message))
        process.freeze_while_training(run)

    @on(RunLoadFailed)
    def _run_load_failed(self, message: RunLoadFailed) -> None:
        buf = self._current(message.token)
        if buf is not None and buf.resumes is not None:  # the session is as it was: show it, and why
            self._open_saved(buf.resumes, refusal=message.message)
        elif buf is not None:
            buf.load_failed(message.message)
        self.notify(message.message, title=message.title, severity="error", timeout=12)

    @on(RunEvents)
    def _run_events(self, message: RunEvents) -> None:
        buf = self._current(message.token)
        if buf is None:
            return
        for event in message.events:
            self.tell(buf.apply(event))
            if isinstance(event, TrainingFinished | TrainingFailed) and self.live_run is not None:
                self._release(self.live_run)

    @work(thread=True, group="release", exit_on_error=False)
    def _release(self, run: Run) -> None:
        """Give a session back (its lock) once its training thread has ended."""
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
        if self._nothing_training() or self.live_run is None:
            return
        if self.view.buffer is not None and self.view.buffer.state == "paused":
            self.live_run.resume()
        else:
            self.live_run.pause()

    @on(StopRequested)
    def _stop(self) -> None:
        buf = self.view.buffer
        if self._nothing_training() or buf is None:
            return
        if self.live_run is None:  # still loading: the run is closed as soon as it is built
            self._cancelled.add(buf.token)
            buf.state = "stopped"
            buf.add_log("info", "stopped while loading; nothing was trained")
            return
        self.live_run.stop()
        buf.add_log("info", "stopping after this step; the session will be saved")

    @on(SaveRequested)
    def _save_now(self) -> None:
        if not self._nothing_training() and self.live_run is not None:
            self.live_run.save_now()

    @on(LiveSettingChanged)
    def _live_setting(self, message: LiveSettingChanged) -> None:
        """Apply live settings to the run from its next step (with nothing training, the form keeps them
        for the next Start); a refusal goes back to the screen that asked, with the values in force."""
        run, buf = self.live_run, self.view.buffer
        if run is None or buf is None or not self.view.training:
            return
        before = run.next_config
        changes = {name: v for name, v in message.values.items() if getattr(before, name) != v}
        if changes:  # typing applies a change; Enter only confirms it: one log line per change
            try:
                run.update(**changes)
            except ValueError as exc:  # out of range, or nothing left to train
                name = getattr(exc, "field", next(iter(changes)))  # a ConfigError names its setting
                current = {s.name: getattr(before, s.name) for s in SETTINGS.values() if s.live}
                self.train_screen.post_message(LiveSettingRefused(name, str(exc), current))  # its fields are there
                return
            buf.add_log("info", ", ".join(f"{n.replace('_', ' ')} -> {SETTINGS[n].format(v) or 'none'}"
                                          for n, v in changes.items()) + " from the next step")
        if not message.quiet:
            now = run.next_config
            said = ", ".join(f"{n.replace('_', ' ')} {SETTINGS[n].format(getattr(now, n)) or 'none'}"
                             for n in message.values)
            self.notify(f"{said[:1].upper()}{said[1:]} from the next step.", timeout=2)

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
    def _open_saved(self, info: SessionInfo, refusal: str | None = None) -> None:
        """Show a saved session read-only; `refusal`: why resuming it was refused (its state is re-read)."""
        from engine import sessions
        from engine.compare import session_grid

        if refusal is not None:
            with contextlib.suppress(sessions.SessionError, OSError):
                info = sessions.load(info.id)
        buf = RunBuffer.saved(info, sessions.read_metrics(info.path), refusal)
        self.call_from_thread(self._show_saved, info, buf)
        grid = session_grid(info)
        if grid is None:
            return
        w, h = grid.size
        frozen, adapted = grid.crop((0, 0, w, h // 2)), grid.crop((0, h // 2, w, h))
        step = buf.last.step if buf.last else 0
        self.post_message(PreviewPixels(buf.token, step, frozen, adapted, info.config.preview_seeds))

    def _show_saved(self, info: SessionInfo, buf: RunBuffer) -> None:
        self.live_run = None
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

        def build(progress: Callable[[DownloadProgress], None]) -> Run:
            return runs.resume_session(info.id, device=self._device(), iterations=cfg.iterations, progress=progress)

        self._begin(cfg, info.model_id, f"resuming {info.id}", build, resuming=info)

    @on(ForkRequested)
    def _fork(self, message: ForkRequested) -> None:
        from engine.clip_loss import PromptError
        from engine.inputs import check_inputs

        info = message.info
        if self._refuse_while_training("fork a session"):
            return
        try:
            cfg = info.config.replace(source=message.source.strip(), target=message.target.strip())
            check_inputs(cfg, find_images=False)  # the fork keeps the parent's copies of its images
        except (ValueError, PromptError) as exc:
            self.notify(str(exc), title="Cannot fork", severity="error")
            return
        self._switch_to_train(cfg, info.model_id)
        self.start_fork(info.id, cfg, info.model_id, message.from_weights, ())
