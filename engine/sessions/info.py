"""Reading one session directory: `SessionInfo` from `session.json` (damage reported, never raised), the
metrics lines, the sample grids and the size on disk. Read-only: nothing here takes the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import TrainConfig
from engine.sessions import layout
from engine.sessions.lock import is_locked
from engine.sessions.scores import read_scores
from engine.sessions.targets import missing_targets, target_count
from engine.target_images import describe


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
    parent_id: str | None = None  # the session this one was forked from
    sweep: Mapping[str, Any] | None = None  # {"name": ..., "values": {setting: value}} for runs of a sweep
    scores: Mapping[str, Any] | None = None  # scores.json (engine.sessions.scores), None before any
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.damaged is None

    @property
    def config(self) -> TrainConfig:
        """The run's settings (raises for a damaged session whose config is unreadable)."""
        return TrainConfig.from_dict(self.data["config"])

    @property
    def target_image_count(self) -> int:
        """How many target images the run adapts towards (0: the target prompt alone)."""
        return target_count(self.data)

    @property
    def target_text(self) -> str:
        """The target in a few words: the prompt, "3 images", or "a sketch + 3 images"."""
        return describe(self.target, self.target_image_count)

    @property
    def base_model(self) -> dict[str, Any]:
        return dict(self.data.get("base_model") or {})

    def disk_usage(self) -> int:
        """Bytes the session takes on disk. Walks the directory: call it off a UI thread."""
        return disk_usage(self.path)


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _mapping(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _load_json(path: Path) -> tuple[dict[str, Any], str | None]:
    """session.json as a dict, or ({}, why not)."""
    try:
        raw = (path / layout.SESSION_FILE).read_bytes()
    except FileNotFoundError:
        return {}, "session.json is missing"
    except OSError as exc:
        return {}, f"session.json cannot be read: {exc.strerror or exc}"
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {}, f"session.json is not valid JSON ({exc})"
    if not isinstance(data, dict):
        return {}, "session.json does not hold a JSON object"
    return data, None


_SHAPES = (  # the fields whose JSON type is checked before their contents
    ("config", dict, "a table of settings"),
    ("base_model", dict, "a table"),
    ("clip_models", list, "a list of [name, weight] pairs"),
)


def _json_kind(value: Any) -> str:
    kinds = {list: "a list", dict: "a table", str: "a string", bool: "true/false", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _problem(path: Path, data: Mapping[str, Any]) -> str | None:
    """Why a parsed session.json cannot be used, or None."""
    version = data.get("schema_version")
    if version != layout.SCHEMA_VERSION:
        return (
            f"session.json has schema version {version!r}; this nada-tui reads version {layout.SCHEMA_VERSION} "
            "(made by another version of nada-tui?)"
        )
    for key, kind, want in _SHAPES:
        if key not in data:
            return f"session.json has no {key!r}"
        if not isinstance(data[key], kind):
            return f"session.json's {key!r} is {_json_kind(data[key])}, not {want}"
    try:
        TrainConfig.from_dict(data["config"])
        str(data["base_model"]["id"])
        if data["status"] not in layout.STATUSES:
            raise ValueError(f"unknown status {data['status']!r}")
        int(data["step"])
        [(str(n), float(w)) for n, w in data["clip_models"]]
        if data.get("final_loss") is not None:
            float(data["final_loss"])
    except Exception as exc:  # any malformed field: report it, never break the list
        return f"session.json is incomplete or malformed: {type(exc).__name__}: {exc}"
    if not (path / layout.CHECKPOINT_FILE).is_file():
        return f"the weights file {layout.CHECKPOINT_FILE} is missing"
    if data.get("init") and not (path / layout.INIT_FILE).is_file():
        return f"the starting weights file {layout.INIT_FILE} is missing"
    for name in (layout.CHECKPOINT_FILE, layout.INIT_FILE) if data.get("init") else (layout.CHECKPOINT_FILE,):
        if (why := safetensors_problem(path / name)) is not None:
            return why
    if (why := missing_targets(path, data)) is not None:
        return why
    return None


MAX_HEADER = 100 * 1024 * 1024  # what the safetensors library accepts


def safetensors_problem(file: Path) -> str | None:
    """Why a safetensors file is not whole, from its header alone: an 8-byte length, that much JSON, then
    the bytes the tensors' offsets promise. Cheap enough for every listing (no tensor is read)."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{file.name} is truncated ({size} bytes, not even its header)"
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER:
                return f"{file.name} is not a safetensors file (its header length is {n} bytes)"
            if 8 + n > size:
                return f"{file.name} is truncated ({size} bytes; its header alone needs {8 + n}), an interrupted copy?"
            header = json.loads(f.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except OSError as exc:
        return f"{file.name} cannot be read: {exc.strerror or exc}"
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError, AttributeError):
        return f"{file.name} is not a safetensors file (its header is not what safetensors writes)"
    if 8 + n + end > size:
        return f"{file.name} is truncated ({size} of the {8 + n + end} bytes its header promises), an interrupted copy?"
    return None


def read_info(path: Path, check_lock: bool = True) -> SessionInfo:
    """Read one session's `session.json`; never raises for damage (it is reported in `damaged`)."""
    data, damaged = _load_json(path)
    if damaged is None:
        damaged = _problem(path, data)
    cfg = _mapping(data.get("config"))
    status = "damaged" if damaged else str(data["status"])
    if check_lock and status in ("running", "paused") and not is_locked(path):
        status = "interrupted"  # its process died; resume continues from the last checkpoint
    sweep = data.get("sweep")
    return SessionInfo(
        id=path.name,
        path=path,
        name=str(data.get("name") or path.name),
        status=status,
        step=_int(data.get("step")),
        iterations=_int(cfg.get("iterations")),
        model_id=str(_mapping(data.get("base_model")).get("id", "?")),
        source=str(cfg.get("source", "")),
        target=str(cfg.get("target", "")),
        created=str(data.get("created", "")),
        updated=str(data.get("updated", "")),
        final_loss=None if damaged or data.get("final_loss") is None else float(data["final_loss"]),
        clip_models=() if damaged else tuple((str(n), float(w)) for n, w in data["clip_models"]),
        damaged=damaged,
        parent_id=str(parent["id"]) if (parent := _mapping(data.get("parent"))).get("id") else None,
        sweep=dict(sweep) if isinstance(sweep, Mapping) else None,
        scores=None if damaged else read_scores(path),
        data=data,
    )


def samples(path: Path) -> list[Path]:
    """The preview grids, oldest step first."""
    return sorted((path / layout.SAMPLES_DIR).glob("step_*.png"))


def photos(path: Path) -> list[str]:
    """The names (stems) of the photos inverted through the session (`photos/<stem>.latent.npz`), sorted."""
    suffix = ".latent.npz"
    try:
        names = os.listdir(path / layout.PHOTOS_DIR)
    except OSError:
        return []
    return sorted(n[: -len(suffix)] for n in names if n.endswith(suffix) and not n.startswith("."))


def disk_usage(path: Path) -> int:
    """Bytes under `path` (files that vanish while walking are skipped)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total
