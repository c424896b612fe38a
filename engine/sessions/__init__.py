"""The session store: every training run kept as a directory that survives kills, full disks and a second
copy of the app. This package re-exports the public names, so `from engine import sessions;
sessions.create(...)` is the way in. One job a module:

- `layout`: what a session directory holds (file names, schema version, statuses).
- `errors`: the typed errors (SessionError and its subclasses).
- `ids`: display names, slugs, id checks, the directory of an id, timestamps.
- `lock`: the one-writer `flock` (SessionLock, is_locked, lock_owner).
- `info`: reading one session (SessionInfo with damage reported, samples, size on disk).
- `metrics`: metrics.jsonl, a typed `MetricsLine` per logged step.
- `state`: the one codec of saved trainer state (`Trainer.state_dict()` <-> bytes) and of weights files.
- `writer`: SessionWriter, the writer of a session while it trains.
- `store`: list, resolve, load, create, open for resuming, rename, delete, leftovers.
- `targets`: the session's copies of its target images.

Nothing here prints or imports textual.
"""

from engine.sessions.errors import (
    AlreadyFinished,
    AmbiguousSession,
    DamagedSession,
    InvalidName,
    SessionError,
    SessionLocked,
    SessionNotFound,
    SessionsFolderError,
)
from engine.sessions.ids import clean_name, root_dir, session_path, slugify
from engine.sessions.info import SessionInfo, disk_usage, photos, read_info, samples
from engine.sessions.layout import (
    CHECKPOINT_FILE,
    GRID_FILE,
    INIT_FILE,
    METRICS_FILE,
    SAMPLES_DIR,
    SCHEMA_VERSION,
    SESSION_FILE,
    SOURCES_DIR,
    STATUSES,
    TARGETS_DIR,
)
from engine.sessions.lock import SessionLock, is_locked, lock_owner
from engine.sessions.metrics import MetricsLine, read_metrics
from engine.sessions.state import (
    decode_state,
    encode_state,
    encode_weights,
    read_state,
    read_weights_file,
    weights_sha256,
)
from engine.sessions.store import (
    adapted_weights,
    checkpoint_weights,
    create,
    delete,
    list_sessions,
    load,
    open_writer,
    remove_leftovers,
    rename,
    resolve,
    source_images,
    start_weights,
    target_images,
)
from engine.sessions.writer import SessionWriter

__all__ = [
    "CHECKPOINT_FILE",
    "GRID_FILE",
    "INIT_FILE",
    "METRICS_FILE",
    "SAMPLES_DIR",
    "SCHEMA_VERSION",
    "SESSION_FILE",
    "SOURCES_DIR",
    "STATUSES",
    "TARGETS_DIR",
    "AlreadyFinished",
    "AmbiguousSession",
    "DamagedSession",
    "InvalidName",
    "MetricsLine",
    "SessionError",
    "SessionInfo",
    "SessionLock",
    "SessionLocked",
    "SessionNotFound",
    "SessionsFolderError",
    "SessionWriter",
    "adapted_weights",
    "checkpoint_weights",
    "clean_name",
    "create",
    "decode_state",
    "delete",
    "disk_usage",
    "encode_state",
    "encode_weights",
    "is_locked",
    "list_sessions",
    "load",
    "lock_owner",
    "open_writer",
    "read_info",
    "read_metrics",
    "read_state",
    "read_weights_file",
    "remove_leftovers",
    "rename",
    "resolve",
    "root_dir",
    "photos",
    "samples",
    "session_path",
    "slugify",
    "source_images",
    "start_weights",
    "target_images",
    "weights_sha256",
]
