"""The TUI's one door into the engine: model registry, model loading, sessions, training runs.

Everything the screens need from `engine` goes through here, so the screens never depend on the exact
shape of `engine.zoo`, `engine.sessions` or `engine.runs`. No textual imports: the app hands in a
callback that posts messages. torch is imported lazily (inside functions) so the first paint is fast.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import paths

DEMO_GENERATOR_ID = "demo-tiny"  # engine.demo's ids, repeated so listing models does not import torch
DEMO_CLIP_ID = "demo-colour-oracle"
DEMO_SOURCE = "a red image"
DEMO_TARGET = "a blue image"
TEST_GENERATOR_ID = "demo-tiny-32"  # a 32 px variant for tests and the bench: fast on 2 CPU cores


def _optional(module: str) -> Any | None:
    """engine.zoo / engine.sessions are built in parallel; degrade to the demo models without them."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


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


def _demo_generators() -> list[ModelChoice]:
    return [
        ModelChoice(DEMO_GENERATOR_ID, "demo-tiny (64 px, offline demo)", "random tiny StyleGAN2", 64,
                    True, True, DEMO_SOURCE),
        ModelChoice(TEST_GENERATOR_ID, "demo-tiny-32 (32 px, fastest)", "random tiny StyleGAN2", 32,
                    True, True, DEMO_SOURCE),
    ]


def generator_choices() -> list[ModelChoice]:
    """Every generator the user can pick: demo models first, then the registry (downloaded or not)."""
    out = _demo_generators()
    zoo = _optional("engine.zoo")
    if zoo is None:
        return out
    seen = {c.id for c in out}
    for name, entry in getattr(zoo, "GENERATORS", {}).items():
        if name in seen:
            continue
        try:
            downloaded = bool(zoo.is_downloaded(name))
        except Exception:  # a broken cache must not hide the list
            downloaded = False
        res = getattr(entry, "resolution", None)
        out.append(ModelChoice(
            name, f"{name} ({res} px)" if res else name, getattr(entry, "description", ""), res, downloaded,
            bool(getattr(entry, "demo", False)), getattr(entry, "source_prompt", "") or "",
            getattr(entry, "size_bytes", None)))
    return out


def clip_choices() -> list[ModelChoice]:
    out = [ModelChoice(DEMO_CLIP_ID, "demo-colour-oracle (offline demo)", demo=True)]
    zoo = _optional("engine.zoo")
    if zoo is None:
        return out
    for name, entry in getattr(zoo, "CLIP_MODELS", {}).items():
        if name == DEMO_CLIP_ID:
            continue
        try:
            downloaded = bool(zoo.is_downloaded(name))
        except Exception:
            downloaded = False
        out.append(ModelChoice(name, name, downloaded=downloaded, demo=bool(getattr(entry, "demo", False))))
    return out


def default_clip_models(demo_generator: bool) -> tuple[tuple[str, float], ...]:
    return ((DEMO_CLIP_ID, 1.0),) if demo_generator else (("ViT-B/32", 1.0),)


@dataclass(frozen=True)
class Progress:
    """A download or load step, for the UI's progress bar (bytes may be unknown)."""

    name: str
    done: int = 0
    total: int | None = None
    rate: float = 0.0
    phase: str = "download"


ProgressFn = Callable[[Progress], None]


def _progress_adapter(progress: ProgressFn | None) -> Callable[[Any], None] | None:
    if progress is None:
        return None

    def adapt(p: Any) -> None:
        progress(Progress(getattr(p, "name", "?"), int(getattr(p, "done_bytes", 0)),
                          getattr(p, "total_bytes", None), float(getattr(p, "bytes_per_s", 0.0))))

    return adapt


def load_generator(model_id: str, progress: ProgressFn | None = None) -> Any:
    """Blocking (call from a thread): a Generator for a registry id, demo id or checkpoint path."""
    from engine import demo

    if model_id == DEMO_GENERATOR_ID:
        return demo.demo_generator()
    if model_id == TEST_GENERATOR_ID:
        return demo.tiny_generator(size=32, seed=0)
    zoo = _optional("engine.zoo")
    if zoo is None:
        raise RuntimeError(f"Model '{model_id}' needs the model registry (engine.zoo), which is not installed.")
    gen, _info = zoo.load_generator_by_id(model_id, progress=_progress_adapter(progress))
    return gen


def load_clip(name: str, device: str, progress: ProgressFn | None = None) -> Any:
    from engine import demo

    if name == DEMO_CLIP_ID:
        return demo.colour_oracle()
    zoo = _optional("engine.zoo")
    if zoo is None:
        raise RuntimeError(f"CLIP model '{name}' needs the model registry (engine.zoo), which is not installed.")
    return zoo.load_clip_by_name(name, device, progress=_progress_adapter(progress))


# ----- sessions -----------------------------------------------------------------------------------
@dataclass
class SessionInfo:
    id: str  # directory name
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
    damaged: str | None = None  # why it cannot be read, when it cannot
    config: dict[str, Any] = field(default_factory=dict)


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += (Path(root) / f).stat().st_size
            except OSError:
                pass
    return total


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    while "--" in out:
        out = out.replace("--", "-")
    return out[:40] or "session"


class LocalStore:
    """A minimal session store used until engine.sessions lands: session.json, metrics.jsonl, state.pt."""

    def root(self) -> Path:
        return paths.sessions_dir()

    def create(self, config: Any, model_id: str, name: str | None = None, parent: str | None = None) -> SessionInfo:
        root = self.root()
        root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{_slug(name or config.target)}"
        sid, n = base, 1
        while (root / sid).exists():
            n += 1
            sid = f"{base}-{n}"
        path = root / sid
        path.mkdir()
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        meta = {"schema": 1, "name": name or f"{config.source} -> {config.target}", "model": model_id,
                "config": config.to_dict(), "status": "created", "step": 0, "created": now, "updated": now,
                "parent": parent, "final_loss": None}
        _atomic_write(path / "session.json", json.dumps(meta, indent=2))
        return self._info(path)

    def _info(self, path: Path) -> SessionInfo:
        info = SessionInfo(path.name, path)
        try:
            meta = json.loads((path / "session.json").read_text(encoding="utf-8"))
            cfg = meta.get("config", {})
            info.name = str(meta.get("name", path.name))
            info.model = str(meta.get("model", ""))
            info.source, info.target = str(cfg.get("source", "")), str(cfg.get("target", ""))
            info.step, info.iterations = int(meta.get("step", 0)), int(cfg.get("iterations", 0))
            info.final_loss = meta.get("final_loss")
            info.created, info.updated = str(meta.get("created", "")), str(meta.get("updated", ""))
            info.status = str(meta.get("status", ""))
            info.config = cfg
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            info.damaged = f"session.json unreadable: {exc}"
            info.status = "damaged"
        info.size_bytes = _dir_size(path)
        return info

    def list(self) -> list[SessionInfo]:
        root = self.root()
        if not root.is_dir():
            return []
        return [self._info(p) for p in sorted(root.iterdir()) if p.is_dir()]

    def get(self, sid: str) -> SessionInfo:
        path = self.root() / sid
        if not path.is_dir():
            raise FileNotFoundError(f"No session named '{sid}'")
        return self._info(path)

    def update(self, sid: str, **changes: Any) -> None:
        path = self.root() / sid / "session.json"
        meta = json.loads(path.read_text(encoding="utf-8"))
        meta.update(changes)
        meta["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
        _atomic_write(path, json.dumps(meta, indent=2))

    def append_metrics(self, sid: str, record: dict[str, Any]) -> None:
        with open(self.root() / sid / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def metrics(self, sid: str) -> list[dict[str, Any]]:
        path = self.root() / sid / "metrics.jsonl"
        out = []
        try:
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a torn last line after a kill
        except OSError:
            pass
        return out

    def checkpoint(self, sid: str) -> Callable[[Any, str], Path | None]:
        def save(trainer: Any, reason: str) -> Path:
            import torch

            path = self.root() / sid / "state.pt"
            tmp = path.with_suffix(".tmp")
            torch.save(trainer.state_dict(), tmp)
            os.replace(tmp, path)
            status = {"finish": "finished", "stop": "stopped", "pause": "paused"}.get(reason, "training")
            self.update(sid, step=trainer.step_count, status=status, config=trainer.config.to_dict())
            return path

        return save

    def load_state(self, sid: str) -> dict[str, Any] | None:
        import torch

        path = self.root() / sid / "state.pt"
        if not path.exists():
            return None
        return torch.load(path, weights_only=True)

    def delete(self, sid: str) -> None:
        shutil.rmtree(self.root() / sid)

    def rename(self, sid: str, new_name: str) -> None:
        if not new_name.strip():
            raise ValueError("A session name cannot be empty.")
        self.update(sid, name=new_name.strip())


_store = LocalStore()


def store() -> LocalStore:
    return _store


def list_sessions() -> list[SessionInfo]:
    return _store.list()


def build_generator_with_state(info: SessionInfo, device: str = "cpu") -> Any:
    """The adapted generator of a session (its base model with the saved trainable tensors)."""
    import torch

    gen = load_generator(info.model)
    state = _store.load_state(info.id)
    if state is not None:
        sd = gen.state_dict()
        sd.update({k: v for k, v in state["weights"].items() if k in sd})
        gen.load_state_dict(sd)
    return gen.to(torch.device("cpu" if device == "auto" else device))


def generate_images(info: SessionInfo, n: int, folder: Path, seed: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Render `n` images of the adapted generator into `folder` (PNG), seeds seed..seed+n-1."""
    from engine.sampling import render_seeds, to_pil

    gen = build_generator_with_state(info)
    folder.mkdir(parents=True, exist_ok=True)
    truncation = float(info.config.get("sample_truncation", 0.7))
    out: list[Path] = []
    for start in range(seed, seed + n, 8):
        seeds = list(range(start, min(start + 8, seed + n)))
        for s, img in zip(seeds, to_pil(render_seeds(gen, seeds, truncation)), strict=True):
            p = folder / f"seed{s:05d}.png"
            img.save(p)
            out.append(p)
        if progress:
            progress(len(out), n)
    return out


def export_session(info: SessionInfo, dest: Path) -> Path:
    """Rosinality-format `{"g_ema": state_dict, "latent_avg": tensor}` that NADA tooling loads."""
    import torch

    gen = build_generator_with_state(info)
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"g_ema": gen.state_dict(), "latent_avg": gen.latent_avg.detach().clone()}, dest)
    return dest


def save_preview(folder: Path, step: int, frozen: Any, adapted: Any) -> None:
    """samples/step_NNNNNN.png and grid.png: the frozen row above the adapted row."""
    from PIL import Image

    w, h = frozen.size
    img = Image.new("RGB", (w, 2 * h + 2), (0, 0, 0))
    img.paste(frozen, (0, 0))
    img.paste(adapted, (0, h + 2))
    (folder / "samples").mkdir(exist_ok=True)
    img.save(folder / "samples" / f"step_{step:06d}.png")
    tmp = folder / "grid.tmp.png"
    img.save(tmp)
    os.replace(tmp, folder / "grid.png")


def session_grid(info: SessionInfo) -> Any | None:
    """The session's latest preview grid as a PIL image, or None."""
    from PIL import Image

    path = info.path / "grid.png"
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError):
        return None


# ----- a training run ---------------------------------------------------------------------------
class TrainingRun:
    """One session being trained: loads models, owns the TrainingWorker, taps events into the session.

    `on_event` is called on the worker thread (and on the loader thread for progress); the app's
    callback only posts messages.
    """

    def __init__(self, config: Any, model_id: str, device: str, on_event: Callable[[Any], None],
                 name: str | None = None, resume_from: str | None = None, parent: str | None = None,
                 checkpoint_every: int = 50) -> None:
        self.config = config
        self.model_id = model_id
        self.device = device
        self.on_event = on_event
        self.worker: Any = None
        self.trainer: Any = None
        self.checkpoint_every = checkpoint_every
        if resume_from is not None:
            self.session = _store.get(resume_from)
        else:
            self.session = _store.create(config, model_id, name=name, parent=parent)
        self.resume_from = resume_from
        self._cancel = threading.Event()

    @property
    def session_id(self) -> str:
        return self.session.id

    def build(self, progress: ProgressFn | None = None,
              clips: Sequence[str] | None = None) -> None:
        """Blocking: load the generator and CLIP models, make the Trainer (call from a thread)."""
        from engine.trainer import Trainer, TrainingWorker

        gen = load_generator(self.model_id, progress)
        encoders = {}
        for name, weight in self.config.clip_models:
            if weight > 0:
                encoders[name] = load_clip(name, self.device, progress)
        if self._cancel.is_set():
            return
        trainer = Trainer(self.config, gen, encoders, None if self.device == "auto" else self.device)
        if self.resume_from is not None:
            state = _store.load_state(self.resume_from)
            if state is not None:
                trainer.load_state_dict(state)
        self.trainer = trainer
        self.worker = TrainingWorker(trainer, self._tap, checkpoint=_store.checkpoint(self.session.id),
                                     checkpoint_every=self.checkpoint_every)

    def _tap(self, event: Any) -> None:
        from engine.events import PreviewReady, StepMetrics, TrainingFailed, TrainingFinished

        try:
            if isinstance(event, PreviewReady):
                save_preview(self.session.path, event.step, event.frozen, event.adapted)
            elif isinstance(event, StepMetrics):
                _store.append_metrics(self.session.id, {"step": event.step, "losses": event.losses,
                                                        "it_per_s": event.it_per_s, "k": event.k,
                                                        "trained": list(event.trained_indices)})
            elif isinstance(event, TrainingFinished) and event.losses:
                _store.update(self.session.id, final_loss=event.losses.get("total"))
            elif isinstance(event, TrainingFailed):
                _store.update(self.session.id, status=f"failed ({event.kind})")
        except OSError:
            pass  # a metrics line lost to a full disk must not stop training
        self.on_event(event)

    def start(self) -> None:
        _store.update(self.session.id, status="training")
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

    @property
    def alive(self) -> bool:
        return self.worker is not None and self.worker.alive


# ----- what the UI draws from -------------------------------------------------------------------
@dataclass
class RunBuffer:
    """Everything the screens draw about the current run, appended to by message handlers and read
    by the screens' redraw timers. `version` bumps on every change so a timer can skip clean frames."""

    session_id: str
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
