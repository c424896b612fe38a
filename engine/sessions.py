"""The session store: every training run kept as a directory that survives kills, full disks and a second
copy of the app.

Layout of `<root>/<YYYYmmdd-HHMMSS-slug>/` (root: `engine.paths.sessions_dir()` unless given):

- `session.json`: schema version, id, display name, base model (id, file sha256, weights sha256), CLIP
  models, the full training config, status, the step of the last checkpoint, timestamps, last losses.
- `metrics.jsonl`: one JSON object per step, appended and flushed. A kill may leave a torn last line;
  readers skip it. On resume, lines past the checkpoint step are dropped so the curve continues cleanly.
- `checkpoint.safetensors`: the trainable tensors that differ from the generator the run started from,
  the Adam state, the layer scores and the RNG state; the step and settings sit in its metadata. This file
  alone decides where a resume starts; `session.json` may lag it by one checkpoint after a kill.
- `init.safetensors` (forks only): the starting weights, as tensors that differ from the base model.
- `samples/step_NNNNNN.png`: the preview seeds, frozen row over adapted row (tiles at most 256 px).
- `grid.png`: the same at full size, written when the run stops or finishes.
- `lock`: `flock`ed by the one process allowed to write the session; holds its pid.

Every file is replaced atomically (`engine.atomic`), so a kill at any moment leaves the last good state.
Nothing here prints or imports textual; `SessionWriter` may be driven from a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from engine import atomic, paths
from engine.events import (
    Event,
    PreviewReady,
    StepMetrics,
    TrainingFailed,
    TrainingFinished,
)

SCHEMA_VERSION = 1
CHECKPOINT_FORMAT = "nada-tui-checkpoint"
SESSION_FILE = "session.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.safetensors"
INIT_FILE = "init.safetensors"
LOCK_FILE = "lock"
SAMPLES_DIR = "samples"
GRID_FILE = "grid.png"
SAMPLE_TILE_MAX = 256
MAX_NAME_CHARS = 120
SLUG_CHARS = 40

STATUSES = ("running", "paused", "stopped", "finished", "failed")
REASON_STATUS = {
    "interval": "running",
    "manual": "running",
    "pause": "paused",
    "stop": "stopped",
    "signal": "stopped",
    "finish": "finished",
}


# ----- errors -------------------------------------------------------------------------------------
class SessionError(Exception):
    """A session operation that cannot be done; the message says why and what to do."""


class SessionNotFound(SessionError):
    pass


class AmbiguousSession(SessionError):
    def __init__(self, ref: str, candidates: list[str]) -> None:
        shown = ", ".join(candidates[:10]) + (" ..." if len(candidates) > 10 else "")
        super().__init__(f"'{ref}' matches {len(candidates)} sessions: {shown}. Type more of the id.")
        self.candidates = candidates


class SessionLocked(SessionError):
    def __init__(self, session_id: str, pid: int | None) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"Session {session_id} is being written by {who}. Stop that run first (or fork the session).")
        self.pid = pid


class DamagedSession(SessionError):
    pass


class InvalidName(SessionError):
    pass


class AlreadyFinished(SessionError):
    """Resuming a session that has run all its iterations; give more."""


# ----- names and paths ----------------------------------------------------------------------------
def root_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The sessions root, resolved now (tests and `--data-dir` style overrides pass `root`)."""
    return Path(root) if root is not None else paths.sessions_dir()


def clean_name(name: str) -> str:
    """A display name: printable, one line, at most 120 characters. Empty after cleaning is an error."""
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in str(name))
    text = " ".join(text.split())[:MAX_NAME_CHARS].strip()
    if not text:
        raise InvalidName("A session name needs at least one visible character.")
    return text


def slugify(name: str) -> str:
    """Lower-case ASCII letters, digits and dashes: never a path separator, never `..`."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:SLUG_CHARS].strip("-")
    return text or "session"


def _check_id(session_id: str) -> None:
    if (
        not session_id
        or session_id in (".", "..")
        or session_id.startswith(".")
        or any(c in session_id for c in ("/", "\\", "\x00"))
        or os.sep in session_id
        or (os.altsep and os.altsep in session_id)
    ):
        raise SessionNotFound(
            f"'{session_id}' is not a session id: ids look like 20250101-120000-name (see `nada-tui sessions list`)."
        )


def session_path(session_id: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The directory of `session_id`, checked to stay directly under the root."""
    _check_id(session_id)
    base = root_dir(root)
    path = base / session_id
    if path.resolve().parent != base.resolve():
        raise SessionNotFound(f"'{session_id}' does not name a directory inside {base}.")
    return path


def _now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _session_dirs(base: Path) -> Iterator[os.DirEntry[str]]:
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return
    for e in entries:
        # Hidden entries are in-progress creations/deletions and temp files.
        if not e.name.startswith(".") and e.is_dir(follow_symlinks=False):
            yield e


def resolve(ref: str, root: str | os.PathLike[str] | None = None) -> Path:
    """A session by full id, unique id prefix, or (failing those) unique display name."""
    ref = str(ref).strip()
    _check_id(ref)
    base = root_dir(root)
    ids = sorted(e.name for e in _session_dirs(base))
    if ref in ids:
        return session_path(ref, base)
    matches = [i for i in ids if i.startswith(ref)]
    if not matches:
        matches = [i.id for i in list_sessions(base) if i.name.casefold() == ref.casefold()]
    if len(matches) == 1:
        return session_path(matches[0], base)
    if matches:
        raise AmbiguousSession(ref, matches)
    raise SessionNotFound(f"No session '{ref}' in {base}. `nada-tui sessions list` shows them.")


# ----- the lock -----------------------------------------------------------------------------------
class SessionLock:
    """An exclusive `flock` on `<session>/lock`; released when closed or when the process dies."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd: int | None = None

    def acquire(self) -> SessionLock:
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SessionLocked(self.directory.name, lock_owner(self.directory)) from None
            raise
        with contextlib.suppress(OSError):  # the pid is only for messages: a full disk must not block
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> SessionLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_owner(directory: Path) -> int | None:
    try:
        text = (directory / LOCK_FILE).read_text().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def is_locked(directory: Path) -> bool:
    """True while some process (this one included) holds the session's write lock."""
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# ----- reading ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionInfo:
    """What `session.json` says, plus `damaged` (a reason) when the session cannot be used."""

    id: str
    path: Path
    name: str
    status: str  # running/paused/stopped/finished/failed, "interrupted" (died while running), "damaged"
    step: int
    iterations: int
    model_id: str
    source: str
    target: str
    created: str
    updated: str
    final_loss: float | None
    clip_models: tuple[tuple[str, float], ...]
    damaged: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.damaged is None

    @property
    def config(self) -> Any:
        from engine.trainer import TrainConfig

        return TrainConfig.from_dict(self.data["config"])

    @property
    def base_model(self) -> dict[str, Any]:
        return dict(self.data.get("base_model") or {})


def _damaged(path: Path, reason: str, data: Mapping[str, Any] | None = None) -> SessionInfo:
    d = data if isinstance(data, Mapping) else {}
    cfg = d.get("config") if isinstance(d.get("config"), Mapping) else {}
    return SessionInfo(
        id=path.name,
        path=path,
        name=str(d.get("name") or path.name),
        status="damaged",
        step=_int(d.get("step")),
        iterations=_int(cfg.get("iterations")),
        model_id=str((d.get("base_model") or {}).get("id", "?")) if isinstance(d.get("base_model"), Mapping) else "?",
        source=str(cfg.get("source", "")),
        target=str(cfg.get("target", "")),
        created=str(d.get("created", "")),
        updated=str(d.get("updated", "")),
        final_loss=None,
        clip_models=(),
        damaged=reason,
        data=d,
    )


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def read_info(path: Path, check_lock: bool = True) -> SessionInfo:
    """Read one session's `session.json`; never raises for damage (it is reported in `damaged`)."""
    try:
        raw = (path / SESSION_FILE).read_bytes()
    except FileNotFoundError:
        return _damaged(path, "session.json is missing")
    except OSError as exc:
        return _damaged(path, f"session.json cannot be read: {exc.strerror or exc}")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _damaged(path, f"session.json is not valid JSON ({exc})")
    if not isinstance(data, dict):
        return _damaged(path, "session.json does not hold a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        return _damaged(
            path,
            f"session.json has schema version {version!r}; this nada-tui reads version {SCHEMA_VERSION} "
            "(made by another version of nada-tui?)",
            data,
        )
    try:
        cfg = data["config"]
        from engine.trainer import TrainConfig

        TrainConfig.from_dict(cfg)
        base = data["base_model"]
        model_id = str(base["id"])
        status = str(data["status"])
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        step = int(data["step"])
        clip = tuple((str(n), float(w)) for n, w in data["clip_models"])
        final_loss = data.get("final_loss")
        final_loss = None if final_loss is None else float(final_loss)
    except Exception as exc:  # any malformed field: report it, never break the list
        return _damaged(path, f"session.json is incomplete or malformed: {type(exc).__name__}: {exc}", data)
    if not (path / CHECKPOINT_FILE).is_file():
        return _damaged(path, f"the weights file {CHECKPOINT_FILE} is missing", data)
    if data.get("init") and not (path / INIT_FILE).is_file():
        return _damaged(path, f"the starting weights file {INIT_FILE} is missing", data)
    if check_lock and status in ("running", "paused") and not is_locked(path):
        status = "interrupted"  # its process died; resume continues from the last checkpoint
    return SessionInfo(
        id=path.name,
        path=path,
        name=str(data.get("name") or path.name),
        status=status,
        step=step,
        iterations=int(cfg.get("iterations", 0)),
        model_id=model_id,
        source=str(cfg.get("source", "")),
        target=str(cfg.get("target", "")),
        created=str(data.get("created", "")),
        updated=str(data.get("updated", "")),
        final_loss=final_loss,
        clip_models=clip,
        damaged=None,
        data=data,
    )


def list_sessions(root: str | os.PathLike[str] | None = None) -> list[SessionInfo]:
    """All sessions, newest first; damaged ones included with their reason. Reads session.json only."""
    base = root_dir(root)
    infos = [read_info(Path(e.path)) for e in _session_dirs(base)]
    return sorted(infos, key=lambda i: i.id, reverse=True)


def load(ref: str, root: str | os.PathLike[str] | None = None) -> SessionInfo:
    """A usable session (raises DamagedSession with the reason when it is not)."""
    info = read_info(resolve(ref, root))
    if info.damaged:
        raise DamagedSession(
            f"Session {info.id} is damaged: {info.damaged}. Delete it with `nada-tui sessions delete {info.id}`."
        )
    return info


def disk_usage(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def read_metrics(path: Path, max_step: int | None = None) -> list[dict[str, Any]]:
    """The per-step records of a session (torn or garbled lines are skipped), in step order."""
    out: dict[int, dict[str, Any]] = {}
    try:
        with open(path / METRICS_FILE, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    step = int(rec["step"])
                except (ValueError, KeyError, TypeError):
                    continue
                if max_step is None or step <= max_step:
                    out[step] = rec  # a later line for the same step (after a resume) wins
    except FileNotFoundError:
        return []
    return [out[s] for s in sorted(out)]


def samples(path: Path) -> list[Path]:
    return sorted((path / SAMPLES_DIR).glob("step_*.png"))


# ----- checkpoint files ---------------------------------------------------------------------------
@dataclass
class Checkpoint:
    step: int
    config: dict[str, Any]
    weights: dict[str, torch.Tensor]  # only tensors that differ from the starting generator
    optimizer_state: dict[int, dict[str, torch.Tensor]]
    optimizer_params: list[str]
    scores: torch.Tensor | None
    rng: torch.Tensor | None


def encode_checkpoint(trainer: Any) -> bytes:
    """Serialise a Trainer's resumable state; weights equal to the starting generator are left out."""
    import safetensors.torch as st

    frozen = dict(trainer.frozen.named_parameters())
    tensors: dict[str, torch.Tensor] = {}
    for name, p in trainer.trainable_state().items():
        if not torch.equal(p, frozen[name]):
            tensors[f"weights/{name}"] = p.detach().cpu().contiguous().clone()
    names = {id(p): n for n, p in trainer.generator.named_parameters()}
    opt_params = [names[id(p)] for g in trainer.optimizer.param_groups for p in g["params"]]
    opt = trainer.optimizer.state_dict()
    for idx, state in opt["state"].items():
        for key, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(float(value))
            tensors[f"optimizer/{idx}/{key}"] = t.detach().cpu().contiguous().clone()
    if trainer.scores is not None:
        tensors["scores"] = trainer.scores.detach().cpu().contiguous().clone()
    tensors["rng"] = trainer.rng.get_state().contiguous().clone()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "schema_version": str(SCHEMA_VERSION),
        "step": str(int(trainer.step_count)),
        "config": json.dumps(trainer.config.to_dict()),
        "optimizer_params": json.dumps(opt_params),
    }
    return st.save(tensors, metadata=meta)


def read_checkpoint(path: Path) -> Checkpoint:
    """Parse a checkpoint file; a truncated or foreign file raises DamagedSession naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise DamagedSession(f"{path} cannot be read ({exc}); the session is damaged.") from None
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("schema_version") != str(SCHEMA_VERSION):
        raise DamagedSession(f"{path} is not a nada-tui checkpoint of schema version {SCHEMA_VERSION}.")
    try:
        step = int(meta["step"])
        config = json.loads(meta["config"])
        opt_params = list(json.loads(meta["optimizer_params"]) or [])  # null: the step-0 checkpoint
    except (KeyError, ValueError) as exc:
        raise DamagedSession(f"{path} has broken metadata ({exc}).") from None
    weights: dict[str, torch.Tensor] = {}
    opt: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key.startswith("weights/"):
            weights[key[len("weights/") :]] = t
        elif key.startswith("optimizer/"):
            _, idx, name = key.split("/", 2)
            opt.setdefault(int(idx), {})[name] = t
    return Checkpoint(step, config, weights, opt, opt_params, tensors.get("scores"), tensors.get("rng"))


def apply_checkpoint(trainer: Any, ckpt: Checkpoint) -> None:
    """Put a checkpoint into a Trainer built from the same starting generator and config."""
    if _is_empty_checkpoint(ckpt):
        return  # the step-0 checkpoint of a new session: a fresh Trainer is already that state
    names = {id(p): n for n, p in trainer.generator.named_parameters()}
    current = [names[id(p)] for g in trainer.optimizer.param_groups for p in g["params"]]
    if current != ckpt.optimizer_params:
        raise DamagedSession("The checkpoint was made for a different generator architecture.")
    frozen = dict(trainer.frozen.named_parameters())
    weights = {n: ckpt.weights.get(n, frozen[n].detach().cpu()) for n in trainer.trainable_state()}
    opt_sd = trainer.optimizer.state_dict()
    device = next(iter(frozen.values())).device
    opt_sd["state"] = {
        i: {k: (v if k == "step" else v.to(device)) for k, v in s.items()} for i, s in ckpt.optimizer_state.items()
    }
    trainer.load_state_dict(
        {
            "step": ckpt.step,
            "weights": weights,
            "optimizer": opt_sd,
            "scores": ckpt.scores,
            "rng": ckpt.rng if ckpt.rng is not None else trainer.rng.get_state(),
        }
    )


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Just the weight tensors of a checkpoint or init file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k[len("weights/") :]: f.get_tensor(k) for k in f.keys() if k.startswith("weights/")}
    except (SafetensorError, OSError, ValueError) as exc:
        raise DamagedSession(f"{path} cannot be read ({exc}); the session is damaged.") from None


def encode_weights(weights: Mapping[str, torch.Tensor], meta: Mapping[str, str] | None = None) -> bytes:
    import safetensors.torch as st

    tensors = {f"weights/{k}": v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    return st.save(tensors, metadata={"format": "nada-tui-weights", **(meta or {})})


def weights_sha256(generator: torch.nn.Module) -> str:
    """A hash of a generator's state dict (keys and values), independent of the file it came from."""
    h = hashlib.sha256()
    for k, v in sorted(generator.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def start_weights(info: SessionInfo) -> dict[str, torch.Tensor]:
    """Tensors (differing from the base model) the session started from: empty unless it is a fork."""
    if not info.data.get("init"):
        return {}
    return read_weights_file(info.path / INIT_FILE)


def adapted_weights(info: SessionInfo) -> dict[str, torch.Tensor]:
    """Every tensor in which the session's latest checkpoint differs from the base model."""
    weights = start_weights(info)
    weights.update(read_weights_file(info.path / CHECKPOINT_FILE))
    return weights


# ----- writing ------------------------------------------------------------------------------------
def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _losses(losses: Mapping[str, float]) -> dict[str, float | None]:
    return {k: _finite(v) for k, v in losses.items()}


def _row_image(preview: PreviewReady, tile_max: int | None) -> Image.Image:
    frozen, adapted = preview.frozen, preview.adapted
    if tile_max is not None:
        n = max(1, len(preview.seeds))
        tile = frozen.height
        if tile > tile_max:
            size = (tile_max * n, tile_max)
            frozen = frozen.resize(size, Image.Resampling.LANCZOS)
            adapted = adapted.resize(size, Image.Resampling.LANCZOS)
    out = Image.new("RGB", (max(frozen.width, adapted.width), frozen.height + adapted.height))
    out.paste(frozen, (0, 0))
    out.paste(adapted, (0, frozen.height))
    return out


def _save_png(path: Path, image: Image.Image) -> None:
    atomic.write_with(path, lambda buf: image.save(buf, format="PNG"))


class SessionWriter:
    """The one writer of a session (holds its lock). Use `checkpoint` as TrainingWorker's checkpoint
    callback and feed every worker event to `record`. Thread-safe; close() releases the lock."""

    def __init__(self, path: Path, data: dict[str, Any], lock: SessionLock) -> None:
        self.path = path
        self.data = data
        self._lock = lock
        self._mutex = threading.RLock()
        self._metrics = open(path / METRICS_FILE, "ab")  # noqa: SIM115 (kept open for the whole run)
        self._metrics_torn = False
        self._last_preview: PreviewReady | None = None
        self._last_losses: dict[str, float] = {}
        self.last_checkpoint_error: str | None = None
        self.last_checkpoint_time_s: float | None = None
        self.stop_reason: str | None = None  # e.g. "SIGTERM": recorded with the stop checkpoint

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def checkpoint_step(self) -> int:
        return int(self.data.get("step", 0))

    def info(self) -> SessionInfo:
        return read_info(self.path, check_lock=False)

    # -- session.json
    def _write_json(self, **changes: Any) -> None:
        data = {**self.data, **changes, "updated": _now_iso()}
        atomic.write_json(self.path / SESSION_FILE, data)
        self.data = data  # only after the write succeeded, so memory matches the disk

    def set_name(self, name: str) -> None:
        with self._mutex:
            self._write_json(name=clean_name(name))

    def set_status(self, status: str, message: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        with self._mutex:
            self._write_json(status=status, message=message)

    # -- the TrainingWorker checkpoint callback
    def checkpoint(self, trainer: Any, reason: str) -> Path:
        """Save weights + optimiser + RNG, then session.json. OSError (a full disk) propagates with
        the previous checkpoint intact; TrainingWorker reports it as a LogMessage."""
        with self._mutex:
            t0 = time.perf_counter()
            try:
                blob = encode_checkpoint(trainer)
                atomic.write_bytes(self.path / CHECKPOINT_FILE, blob)
                if reason in ("stop", "signal", "finish") and self._last_preview is not None:
                    _save_png(self.path / GRID_FILE, _row_image(self._last_preview, None))
                status = REASON_STATUS.get(reason, "running")
                losses = _losses(self._last_losses)
                self._write_json(
                    status=status,
                    step=int(trainer.step_count),
                    config=trainer.config.to_dict(),
                    final_loss=losses.get("total"),
                    losses=losses,
                    checkpoint={
                        "file": CHECKPOINT_FILE,
                        "step": int(trainer.step_count),
                        "reason": reason,
                        "bytes": len(blob),
                        "saved": _now_iso(),
                    },
                    stop_reason=self.stop_reason if status == "stopped" else None,
                    message=None,
                )
            except OSError as exc:
                full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                self.last_checkpoint_error = (
                    f"{'The disk is full' if full else 'Saving failed'} ({exc.strerror or exc}) at step "
                    f"{trainer.step_count}; the previous checkpoint (step {self.checkpoint_step}) is intact."
                )
                raise OSError(exc.errno, self.last_checkpoint_error) from exc
            self.last_checkpoint_error = None
            self.last_checkpoint_time_s = time.perf_counter() - t0
            return self.path / CHECKPOINT_FILE

    # -- worker events
    def record(self, event: Event) -> None:
        """Store what an event says (metrics line, sample grid, failure). Raises OSError on a full disk;
        `runs.Run.on_event` turns that into a LogMessage."""
        with self._mutex:
            if isinstance(event, StepMetrics):
                self._last_losses = dict(event.losses)
                self._append_metrics(event)
            elif isinstance(event, PreviewReady):
                self._last_preview = event
                (self.path / SAMPLES_DIR).mkdir(exist_ok=True)
                _save_png(self.path / SAMPLES_DIR / f"step_{event.step:06d}.png", _row_image(event, SAMPLE_TILE_MAX))
            elif isinstance(event, TrainingFailed):
                self._write_json(status="failed", message=event.message)
            elif isinstance(event, TrainingFinished):
                self._flush_metrics()

    def _append_metrics(self, m: StepMetrics) -> None:
        rec = {
            "step": m.step,
            "losses": _losses(m.losses),
            "lr": m.lr,
            "it_per_s": round(m.it_per_s, 4),
            "elapsed_s": round(m.elapsed_s, 4),
            "k": m.k,
            "trained": list(m.trained_indices),
            "global_weight": m.global_weight,
            "time": round(time.time(), 3),
        }
        line = json.dumps(rec, allow_nan=False) + "\n"
        if self._metrics_torn:  # a failed write may have left half a line: start a fresh one
            line = "\n" + line
        try:
            self._metrics.write(line.encode())
            self._metrics.flush()
        except OSError:
            self._metrics_torn = True
            raise
        self._metrics_torn = False

    def _flush_metrics(self) -> None:
        with contextlib.suppress(OSError):
            self._metrics.flush()
            os.fsync(self._metrics.fileno())

    def close(self) -> None:
        with self._mutex:
            if self._metrics.closed:
                return
            self._flush_metrics()
            with contextlib.suppress(OSError):
                self._metrics.close()
            self._lock.release()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reserve_id(base: Path, name: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{slugify(name)}"


def create(
    config: Any,
    base_model: Mapping[str, Any],
    name: str | None = None,
    root: str | os.PathLike[str] | None = None,
    init_weights: Mapping[str, torch.Tensor] | None = None,
    parent: Mapping[str, Any] | None = None,
    initial_checkpoint: bytes | None = None,
) -> SessionWriter:
    """Make a new session (locked, status "running", step 0) and return its writer.

    `base_model`: {"id", "sha256"?, "weights_sha256", "format"?, ...}. `init_weights`: for forks, the
    tensors (differing from the base model) the run starts from. The directory is built under a hidden
    name and renamed into place, so a kill during creation leaves nothing half-made in the list.
    """
    display = clean_name(name) if name else clean_name(f"{config.source} -> {config.target}")
    base = root_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    sweep(base)
    tmp = base / f".creating-{os.getpid()}-{os.urandom(4).hex()}"
    tmp.mkdir()
    lock = SessionLock(tmp)
    try:
        lock.acquire()
        (tmp / SAMPLES_DIR).mkdir()
        if init_weights:
            atomic.write_bytes(tmp / INIT_FILE, encode_weights(init_weights))
        if initial_checkpoint is None:
            import safetensors.torch as st

            initial_checkpoint = st.save(
                {},
                metadata={
                    "format": CHECKPOINT_FORMAT,
                    "schema_version": str(SCHEMA_VERSION),
                    "step": "0",
                    "config": json.dumps(config.to_dict()),
                    "optimizer_params": "null",
                },
            )
        atomic.write_bytes(tmp / CHECKPOINT_FILE, initial_checkpoint)
        (tmp / METRICS_FILE).touch()
        now = _now_iso()
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "id": "",
            "name": display,
            "created": now,
            "updated": now,
            "status": "running",
            "step": 0,
            "base_model": dict(base_model),
            "clip_models": [list(m) for m in config.clip_models],
            "config": config.to_dict(),
            "final_loss": None,
            "losses": {},
            "checkpoint": {"file": CHECKPOINT_FILE, "step": 0, "reason": "create"},
            "init": {"file": INIT_FILE} if init_weights else None,
            "parent": dict(parent) if parent else None,
            "message": None,
        }
        for attempt in range(1000):
            sid = _reserve_id(base, display) + (f"-{attempt + 1}" if attempt else "")
            final = session_path(sid, base)
            if final.exists():
                continue
            data["id"] = sid
            atomic.write_json(tmp / SESSION_FILE, data)
            try:
                os.rename(tmp, final)  # fails if a non-empty directory took the name meanwhile
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue
                raise
            break
        else:
            raise SessionError("Could not find a free session id; try again in a second.")
        atomic.fsync_dir(base)
    except BaseException:
        lock.release()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    lock.directory = final
    return SessionWriter(final, data, lock)


def _is_empty_checkpoint(ckpt: Checkpoint) -> bool:
    return ckpt.step == 0 and not ckpt.optimizer_state and not ckpt.weights


def open_writer(ref: str, root: str | os.PathLike[str] | None = None) -> tuple[SessionWriter, Checkpoint]:
    """Take a session's lock for resuming: sweeps temp files, drops metrics past the checkpoint, and
    returns the writer with the checkpoint to start from."""
    path = resolve(ref, root)
    lock = SessionLock(path).acquire()
    try:
        info = read_info(path, check_lock=False)
        if info.damaged:
            raise DamagedSession(
                f"Session {info.id} is damaged: {info.damaged}. Delete it with `nada-tui sessions delete {info.id}`."
            )
        ckpt = read_checkpoint(path / CHECKPOINT_FILE)
        atomic.clean_temp_files(path)
        atomic.clean_temp_files(path / SAMPLES_DIR)
        kept = read_metrics(path, max_step=ckpt.step)
        atomic.write_text(path / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))
        for png in samples(path):  # previews past the checkpoint belong to steps that will be redone
            with contextlib.suppress(ValueError, OSError):
                if int(png.stem.split("_")[1]) > ckpt.step:
                    png.unlink()
        data = dict(info.data)
        data["step"] = ckpt.step
        writer = SessionWriter(path, data, lock)
        if kept:
            writer._last_losses = {k: v for k, v in kept[-1].get("losses", {}).items() if v is not None}
        return writer, ckpt
    except BaseException:
        lock.release()
        raise


def rename(ref: str, new_name: str, root: str | os.PathLike[str] | None = None) -> SessionInfo:
    """Change the display name (the id and directory stay). Refused while another process writes it."""
    path = resolve(ref, root)
    name = clean_name(new_name)
    with SessionLock(path):
        info = read_info(path, check_lock=False)
        if not info.data or info.data.get("schema_version") != SCHEMA_VERSION:
            raise DamagedSession(f"Session {info.id} is damaged ({info.damaged}); it cannot be renamed.")
        atomic.write_json(path / SESSION_FILE, {**info.data, "name": name, "updated": _now_iso()})
    return read_info(path)


def delete(ref: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Remove a session (damaged ones too). Refused while a process writes it. Returns the old path."""
    path = resolve(ref, root)
    with SessionLock(path):
        # Rename first: a kill during the removal leaves a hidden directory, not a half session.
        trash = path.with_name(f".deleting-{path.name}-{os.urandom(4).hex()}")
        os.rename(path, trash)
        atomic.fsync_dir(path.parent)
    shutil.rmtree(trash, ignore_errors=True)
    return path


def sweep(root: str | os.PathLike[str] | None = None, older_than_s: float = 3600.0) -> int:
    """Remove hidden leftovers of killed creations and deletions (older than an hour by default)."""
    base = root_dir(root)
    removed = 0
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return 0
    now = time.time()
    for e in entries:
        if e.name.startswith((".creating-", ".deleting-")) and e.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                if now - e.stat(follow_symlinks=False).st_mtime > older_than_s:
                    shutil.rmtree(e.path)
                    removed += 1
    return removed
