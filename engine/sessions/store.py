"""The store of sessions: list, resolve a reference, load, create, open for resuming, rename, delete, the
weights a session holds, and the sweep of leftovers from killed creations and deletions.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import atomic
from engine.sessions import layout
from engine.sessions.errors import AmbiguousSession, DamagedSession, SessionError, SessionNotFound
from engine.sessions.ids import (
    check_id,
    clean_name,
    folder_error,
    new_id,
    now_iso,
    root_dir,
    session_dirs,
    session_path,
)
from engine.sessions.info import SessionInfo, read_info, samples
from engine.sessions.lock import SessionLock
from engine.sessions.metrics import MetricsLine, metrics_text, read_metrics
from engine.sessions.state import encode_state, encode_weights, read_state, read_weights_file
from engine.sessions.targets import read_targets, write_targets
from engine.sessions.writer import SessionWriter
from engine.target_images import SOURCE_FIELD, TargetImage, describe

if TYPE_CHECKING:  # reading sessions never imports torch (`sessions list` starts at once)
    import torch

Root = str | os.PathLike[str] | None
LEFTOVER_PREFIXES = (".creating-", ".deleting-")


# ----- finding and reading ------------------------------------------------------------------------
def list_sessions(root: Root = None) -> list[SessionInfo]:
    """All sessions, newest first; damaged ones included with their reason. Reads session.json only."""
    base = root_dir(root)
    infos = [read_info(Path(e.path)) for e in session_dirs(base)]
    return sorted(infos, key=lambda i: i.id, reverse=True)


def resolve(ref: str, root: Root = None) -> Path:
    """A session by full id, exact display name (any name: "a/b" too), unique id prefix, or (failing
    those) unique display name in any case."""
    ref = str(ref).strip()
    base = root_dir(root)
    ids = sorted(e.name for e in session_dirs(base))
    if ref in ids:
        return session_path(ref, base)
    infos = list_sessions(base) if ref else []
    matches = [i.id for i in infos if i.name == ref]  # before the id rules, which refuse "/" and ".."
    try:
        check_id(ref)
    except SessionNotFound as exc:
        not_an_id: SessionNotFound | None = exc
    else:
        not_an_id = None
        matches = matches or [i for i in ids if i.startswith(ref)]
    matches = matches or [i.id for i in infos if i.name.casefold() == ref.casefold()]
    if not matches and not_an_id is not None:
        raise not_an_id
    if len(matches) == 1:
        return session_path(matches[0], base)
    if matches:
        raise AmbiguousSession(ref, matches)
    raise SessionNotFound(f"No session '{ref}' in {base}. `nada-tui sessions list` shows them.")


def _usable(info: SessionInfo) -> SessionInfo:
    if info.damaged:
        raise DamagedSession(
            f"Session {info.id} is damaged: {info.damaged}. Delete it with `nada-tui sessions delete {info.id}`."
        )
    return info


def load(ref: str, root: Root = None) -> SessionInfo:
    """A usable session (raises DamagedSession with the reason when it is not)."""
    return _usable(read_info(resolve(ref, root)))


def start_weights(info: SessionInfo) -> dict[str, torch.Tensor]:
    """Tensors (differing from the base model) the session started from: empty unless it is a fork."""
    if not info.data.get("init"):
        return {}
    return read_weights_file(info.path / layout.INIT_FILE)


def checkpoint_weights(info: SessionInfo) -> dict[str, torch.Tensor]:
    """Tensors in which the session's latest checkpoint differs from the generator it started from."""
    return read_weights_file(info.path / layout.CHECKPOINT_FILE)


def adapted_weights(info: SessionInfo) -> dict[str, torch.Tensor]:
    """Every tensor in which the session's latest checkpoint differs from the base model."""
    return {**start_weights(info), **checkpoint_weights(info)}


def target_images(info: SessionInfo) -> list[TargetImage]:
    """The session's own copies of its target images ([] for a text-only run); DamagedSession if unusable."""
    return read_targets(info.path, info.data)


def source_images(info: SessionInfo) -> list[TargetImage]:
    """The session's own copies of its source images ([] when the run had none); DamagedSession if unusable."""
    return read_targets(info.path, info.data, SOURCE_FIELD)


# ----- creating and resuming ----------------------------------------------------------------------
def _sweep_record(sweep: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return {"name": str(sweep["name"]), "values": dict(sweep["values"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"sweep must be {{'name': str, 'values': {{setting: value}}}}; got {sweep!r}") from exc


def create(
    state: Mapping[str, Any],
    base_model: Mapping[str, Any],
    name: str | None = None,
    root: Root = None,
    init_weights: Mapping[str, torch.Tensor] | None = None,
    parent: Mapping[str, Any] | None = None,
    sweep: Mapping[str, Any] | None = None,
    target_images: Sequence[TargetImage] = (),
    source_images: Sequence[TargetImage] = (),
) -> SessionWriter:
    """Make a new session (locked, status "running") from a trainer's initial `state_dict()` and return
    its writer.

    `base_model`: {"id", "sha256"?, "weights_sha256", "format"?, ...}. `init_weights`: for forks, the
    tensors (differing from the base model) the run starts from. `parent`: for forks, {"id", "step",
    "from_weights"}. `sweep`: for runs of a sweep, {"name": ..., "values": {setting: value}}.
    `target_images`: the checked images the run adapts towards, copied into the session (`source_images`,
    the images its image direction starts from, alike). The
    directory is built under a hidden name and renamed into place, so a kill during creation leaves
    nothing half-made in the list.
    """
    config = dict(state["config"])
    target = describe(str(config["target"]), len(target_images))
    display = clean_name(name) if name else clean_name(f"{config['source']} -> {target}")
    sweep_data = _sweep_record(sweep) if sweep is not None else None
    step = int(state["step"])
    base = root_dir(root)
    tmp = base / f"{LEFTOVER_PREFIXES[0]}{os.getpid()}-{os.urandom(4).hex()}"
    try:
        base.mkdir(parents=True, exist_ok=True)
        remove_leftovers(base)
        tmp.mkdir()
    except OSError as exc:  # a file in place of a folder, a read-only mount, a full disk
        raise folder_error(base, exc, "save") from None
    lock = SessionLock(tmp)
    try:
        lock.acquire()
        (tmp / layout.SAMPLES_DIR).mkdir()
        if init_weights:
            atomic.write_bytes(tmp / layout.INIT_FILE, encode_weights(init_weights))
        atomic.write_bytes(tmp / layout.CHECKPOINT_FILE, encode_state(state))
        targets = write_targets(tmp, target_images)
        sources = write_targets(tmp, source_images, SOURCE_FIELD)
        (tmp / layout.METRICS_FILE).touch()
        now = now_iso()
        data: dict[str, Any] = {
            "schema_version": layout.SCHEMA_VERSION,
            "id": "",
            "name": display,
            "created": now,
            "updated": now,
            "status": "running",
            "step": step,
            "base_model": dict(base_model),
            "clip_models": [list(m) for m in config["clip_models"]],
            "config": config,
            "final_loss": None,
            "losses": {},
            "checkpoint": {"file": layout.CHECKPOINT_FILE, "step": step, "reason": "create"},
            "init": {"file": layout.INIT_FILE} if init_weights else None,
            "parent": dict(parent) if parent else None,
            "sweep": sweep_data,
            "target_images": targets,
            "source_images": sources,
            "message": None,
        }
        for attempt in range(1000):
            final = session_path(new_id(display, attempt), base)
            if final.exists():
                continue
            data["id"] = final.name
            atomic.write_json(tmp / layout.SESSION_FILE, data)
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
    except BaseException as exc:
        lock.release()
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, SessionError):  # a full disk, a folder gone read-only
            raise folder_error(base, exc, "save") from None
        raise
    lock.directory = final
    return SessionWriter(final, data, lock)


def open_writer(ref: str, root: Root = None) -> tuple[SessionWriter, dict[str, Any]]:
    """Take a session's lock for resuming: sweeps temp files, drops metrics and previews past the
    checkpoint, and returns the writer with the saved trainer state (`Trainer.load_state_dict` input)."""
    path = resolve(ref, root)
    lock = SessionLock(path).acquire()
    try:
        info = _usable(read_info(path, check_lock=False))
        state = read_state(path / layout.CHECKPOINT_FILE)
        step = state["step"]
        atomic.clean_temp_files(path)
        atomic.clean_temp_files(path / layout.SAMPLES_DIR)
        kept = read_metrics(path, max_step=step)
        atomic.write_text(path / layout.METRICS_FILE, metrics_text(kept))
        for png in samples(path):  # previews past the checkpoint belong to steps that will be redone
            with contextlib.suppress(ValueError, OSError):
                if int(png.stem.split("_")[1]) > step:
                    png.unlink()
        last = {k: v for k, v in kept[-1].losses.items() if v is not None} if kept else {}
        writer = SessionWriter(path, {**info.data, "step": step}, lock, last_losses=last)
        writer.warnings.extend(_metrics_gaps(kept, step))
        return writer, state
    except BaseException:
        lock.release()
        raise


def _metrics_gaps(kept: list[MetricsLine], step: int) -> list[str]:
    """A warning when metrics.jsonl lacks lines for saved steps (a truncated or damaged file): the loss
    curve will have a gap there, though the weights continue unharmed."""
    have = {r.step for r in kept}
    gaps = [s for s in range(1, step + 1) if s not in have]
    if not gaps:
        return []
    spans: list[str] = []
    start = prev = gaps[0]
    for s in [*gaps[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    where = ", ".join(spans[:5]) + (", ..." if len(spans) > 5 else "")
    return [
        f"{layout.METRICS_FILE} has no lines for {len(gaps)} of the {step} saved steps (steps {where}): it was "
        f"truncated or damaged, so the loss curve has a gap there. The weights are intact and training "
        f"continues from step {step}."
    ]


# ----- renaming and deleting ----------------------------------------------------------------------
def rename(ref: str, new_name: str, root: Root = None) -> SessionInfo:
    """Change the display name (the id and directory stay). Refused while another process writes it."""
    path = resolve(ref, root)
    name = clean_name(new_name)
    with SessionLock(path):
        info = read_info(path, check_lock=False)
        if not info.data or info.data.get("schema_version") != layout.SCHEMA_VERSION:
            raise DamagedSession(f"Session {info.id} is damaged ({info.damaged}); it cannot be renamed.")
        atomic.write_json(path / layout.SESSION_FILE, {**info.data, "name": name, "updated": now_iso()})
    return read_info(path)


def delete(ref: str, root: Root = None) -> Path:
    """Remove a session (damaged ones too). Refused while a process writes it. Returns the old path."""
    path = resolve(ref, root)
    with SessionLock(path):
        # Rename first: a kill during the removal leaves a hidden directory, not a half session.
        trash = path.with_name(f"{LEFTOVER_PREFIXES[1]}{path.name}-{os.urandom(4).hex()}")
        os.rename(path, trash)
        atomic.fsync_dir(path.parent)
    shutil.rmtree(trash, ignore_errors=True)
    return path


def remove_leftovers(root: Root = None, older_than_s: float = 3600.0) -> int:
    """Remove hidden leftovers of killed creations and deletions (older than an hour by default)."""
    base = root_dir(root)
    removed = 0
    try:
        entries = list(os.scandir(base))
    except OSError:  # no folder yet, or not a usable one (creating a session says what is wrong with it)
        return 0
    now = time.time()
    for e in entries:
        if e.name.startswith(LEFTOVER_PREFIXES) and e.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                if now - e.stat(follow_symlinks=False).st_mtime > older_than_s:
                    shutil.rmtree(e.path)
                    removed += 1
    return removed
