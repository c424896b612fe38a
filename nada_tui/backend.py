"""The TUI's one door into the engine: model registry, model loading, sessions, training runs.

Everything the screens need from `engine` goes through here, so the screens never depend on the exact
shape of `engine.zoo`, `engine.sessions` or `engine.runs`. No textual imports: the app hands in a
callback that posts messages. torch is imported lazily (inside functions) so the first paint is fast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEMO_GENERATOR_ID = "demo-tiny"  # engine.demo's ids, repeated so listing models does not import torch
DEMO_CLIP_ID = "demo-colour-oracle"
DEMO_SOURCE = "a red image"
DEMO_TARGET = "a blue image"
TEST_GENERATOR_ID = "demo-tiny-32"  # an imported 32 px tiny generator for tests and the bench


def _zoo() -> Any:
    from engine import zoo

    return zoo


# ----- model registry ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelChoice:
    id: str
    label: str
    description: str = ""
    resolution: int | None = None
    downloaded: bool = True
    demo: bool = False
    source_prompt: str = ""
    size_bytes: int | None = None


def _choices(kind: str) -> list[ModelChoice]:
    out = []
    for row in _zoo().list_models():
        if row["kind"] != kind:
            continue
        res = row.get("resolution")
        label = f"{row['name']} ({res} px)" if res else row["name"]
        if row.get("demo"):
            label += " DEMO"
        out.append(ModelChoice(row["name"], label, row.get("description") or "", res, bool(row["downloaded"]),
                               bool(row.get("demo")), row.get("source_prompt") or "", row.get("size_bytes")))
    # demo models first: they are the ones that work offline
    return sorted(out, key=lambda c: not c.demo)


def generator_choices() -> list[ModelChoice]:
    """Every generator the user can pick: demo, registry (downloaded or not), imported checkpoints."""
    return _choices("generator")


def clip_choices() -> list[ModelChoice]:
    return _choices("clip")


def default_clip_models(demo_generator: bool) -> tuple[tuple[str, float], ...]:
    return ((DEMO_CLIP_ID, 1.0),) if demo_generator else (("ViT-B/32", 1.0),)


def ensure_test_model() -> str:
    """Import a 32 px tiny generator as `demo-tiny-32` (tests and the bench: ~10x faster than demo-tiny)."""
    zoo = _zoo()
    if not zoo.is_downloaded(TEST_GENERATOR_ID):
        import tempfile

        from engine.demo import tiny_generator
        from engine.generator_files import save_rosinality

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "tiny32.pt"
            save_rosinality(tiny_generator(size=32, seed=0), path)
            zoo.import_checkpoint(path, TEST_GENERATOR_ID, "tiny 32 px random generator (tests, bench)",
                                  DEMO_SOURCE)
    return TEST_GENERATOR_ID


@dataclass(frozen=True)
class Progress:
    """A download or load step, for the UI's progress bar (bytes may be unknown)."""

    name: str
    done: int = 0
    total: int | None = None
    rate: float = 0.0
    phase: str = "download"


ProgressFn = Callable[[Progress], None]


def _progress_adapter(progress: ProgressFn | None) -> Callable[..., None] | None:
    if progress is None:
        return None

    def adapt(p: Any = None, *_args: Any, **_kw: Any) -> None:
        progress(Progress(str(getattr(p, "name", "model")), int(getattr(p, "done_bytes", 0) or 0),
                          getattr(p, "total_bytes", None), float(getattr(p, "bytes_per_s", 0.0) or 0.0)))

    return adapt


def download_model(model_id: str, progress: ProgressFn | None = None) -> None:
    """Blocking (call from a thread): fetch and convert a registry generator without training."""
    _zoo().load_generator_by_id(model_id, progress=_progress_adapter(progress))


# ----- sessions -----------------------------------------------------------------------------------
@dataclass
class SessionInfo:
    """One row of the sessions table (engine.sessions.SessionInfo plus its size on disk)."""

    id: str
    path: Path
    name: str = ""
    model: str = ""
    source: str = ""
    target: str = ""
    step: int = 0
    iterations: int = 0
    final_loss: float | None = None
    created: str = ""
    updated: str = ""
    size_bytes: int = 0
    status: str = ""
    damaged: str | None = None  # why it cannot be used, when it cannot
    config: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None


def _row(info: Any) -> SessionInfo:
    from engine import sessions

    cfg = info.data.get("config") if isinstance(info.data.get("config"), dict) else {}
    parent = info.data.get("parent")
    return SessionInfo(
        info.id, info.path, info.name, info.model_id, info.source, info.target, info.step, info.iterations,
        info.final_loss, info.created.replace("T", " "), info.updated, sessions.disk_usage(info.path),
        info.status, info.damaged, dict(cfg), parent.get("id") if isinstance(parent, dict) else None)


def list_sessions() -> list[SessionInfo]:
    from engine import sessions

    return [_row(i) for i in sessions.list_sessions()]


def get_session(session_id: str) -> SessionInfo:
    from engine import sessions

    return _row(sessions.read_info(sessions.session_path(session_id)))


def read_metrics(info: SessionInfo) -> list[dict[str, Any]]:
    from engine import sessions

    return sessions.read_metrics(info.path)


def rename_session(info: SessionInfo, name: str) -> None:
    from engine import sessions

    sessions.rename(info.id, name)


def delete_session(info: SessionInfo) -> None:
    from engine import sessions

    sessions.delete(info.id)


def session_grid(info: SessionInfo) -> Any | None:
    """The session's latest preview (frozen row over adapted row) as a PIL image, or None."""
    from PIL import Image

    from engine import sessions

    candidates = [info.path / sessions.GRID_FILE] + sessions.samples(info.path)[::-1]
    for path in candidates:
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, ValueError):
            continue
    return None


def generate_images(info: SessionInfo, n: int, folder: Path, seed: int = 0) -> list[Path]:
    """Render `n` images of the adapted generator into `folder` (PNG), seeds seed..seed+n-1."""
    from engine import export

    return export.generate(info.id, n, folder, seed=seed)


def export_session(info: SessionInfo, folder: Path) -> dict[str, Path]:
    """<id>.pt (rosinality g_ema + latent_avg), <id>-grid.png and <id>-metrics.csv in `folder`."""
    from engine import export

    return export.export_all(info.id, folder)


# ----- a training run ---------------------------------------------------------------------------
class TrainingRun:
    """One session being trained: built on a loader thread (models may download), then its
    TrainingWorker thread runs it. `on_event` is called on those threads; the app's callback only
    posts messages. Kinds: "new" (config + model), "resume" (session id), "fork" (session id + config)."""

    _tokens = 0

    def __init__(self, config: Any, model_id: str, device: str, on_event: Callable[[Any], None],
                 kind: str = "new", ref: str | None = None, from_weights: bool = False,
                 checkpoint_every: int = 50) -> None:
        TrainingRun._tokens += 1
        self.token = f"run-{TrainingRun._tokens}"  # names the run before its session exists
        self.config = config
        self.model_id = model_id
        self.device = device
        self.on_event = on_event
        self.kind, self.ref, self.from_weights = kind, ref, from_weights
        self.checkpoint_every = checkpoint_every
        self.run: Any = None  # engine.runs.Run
        self.worker: Any = None
        self._cancel = threading.Event()
        self._closed = False

    @property
    def session_id(self) -> str | None:
        return None if self.run is None else self.run.session_id

    @property
    def trainer(self) -> Any:
        return None if self.run is None else self.run.trainer

    def build(self, progress: ProgressFn | None = None) -> None:
        """Blocking: load models, create (or reopen) the session, make the worker (call from a thread)."""
        from engine import runs

        device = None if self.device == "auto" else self.device
        prog = _progress_adapter(progress)
        if self.kind == "resume":
            assert self.ref is not None
            run = runs.resume_session(self.ref, device=device, iterations=self.config.iterations,
                                      checkpoint_every=self.checkpoint_every, progress=prog)
        elif self.kind == "fork":
            assert self.ref is not None
            changes = {k: v for k, v in self.config.to_dict().items()}
            run = runs.fork_session(self.ref, changes, from_weights=self.from_weights, device=device,
                                    checkpoint_every=self.checkpoint_every, progress=prog)
        else:
            run = runs.start_session(self.config, self.model_id, device=device,
                                     checkpoint_every=self.checkpoint_every, progress=prog)
        self.run = run
        self.config = run.trainer.config
        self.worker = run.make_worker(self.on_event)
        if self._cancel.is_set():
            self.worker.stop()

    def start(self) -> None:
        self.worker.start()

    def pause(self) -> None:
        if self.worker:
            self.worker.pause()

    def resume(self) -> None:
        if self.worker:
            self.worker.resume()

    def stop(self) -> None:
        self._cancel.set()
        if self.worker:
            self.worker.stop()

    def save_now(self) -> None:
        if self.worker:
            self.worker.save_now()

    def update(self, **changes: Any) -> None:
        if self.trainer is not None:
            self.trainer.update(**changes)

    def join(self, timeout: float | None = None) -> bool:
        return True if self.worker is None else self.worker.join(timeout)

    def close(self) -> None:
        """Release the session (its lock); call once the worker has ended."""
        if self.run is not None and not self._closed:
            self._closed = True
            self.run.close()

    @property
    def alive(self) -> bool:
        return self.worker is not None and self.worker.alive


# ----- what the UI draws from -------------------------------------------------------------------
@dataclass
class RunBuffer:
    """Everything the screens draw about the current run, appended to by message handlers and read
    by the screens' redraw timers. `version` bumps on every change so a timer can skip clean frames."""

    token: str  # the run's token (messages carry it); session_id is known once the session exists
    session_id: str | None = None
    config: Any = None
    model_id: str = ""
    version: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)  # {"step": n, "losses": {...}}
    last: Any = None  # the last StepMetrics
    scores: tuple[float, ...] | None = None
    state: str = "loading"  # loading, running, paused, stopping, finished, stopped, failed
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (time, level, text)
    preview: tuple[int, Any, Any, tuple[int, ...]] | None = None
    load_progress: Progress | None = None
    failure: str | None = None
    started: float = field(default_factory=time.monotonic)

    def add_log(self, level: str, text: str) -> None:
        self.log.append((time.strftime("%H:%M:%S"), level, text))
        del self.log[:-500]
        self.version += 1
