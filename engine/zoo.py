"""The pretrained model registry: official generators and CLIP weights, the demo models, the cache.

Cache layout (under `engine.paths.cache_dir()`):
    generators/<official file name>   the file as downloaded (e.g. stylegan2-church-config-f.pkl)
    generators/<name>.pt              converted to rosinality format: what is loaded (conversion runs once)
    clip/<official file name>         CLIP TorchScript archives (e.g. ViT-B-32.pt)
    models.json                       sha256 and size of each file, recorded at its first download

Sizes and hashes of the NVIDIA files are not published next to them, so the registry leaves them unknown
and `models.json` records them at the first download; a later download (or a mirror's copy) must match.
CLIP's sha256 is part of its official URL and is always checked.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import atomic, paths, user_files
from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID
from engine.download import DownloadError, ProgressFn, download, mirrored_url, sha256_file
from engine.errors import CheckpointError, UnknownModel
from engine.official_models import CLIP_MODELS, GENERATORS, ClipEntry, GeneratorEntry
from engine.registry import DEMO_CLIP, ModelEntry

if TYPE_CHECKING:  # loading imports torch when called: listing and resolving models never does
    from engine.clip_loss import ClipEncoder
    from engine.stylegan2 import Generator

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_records_lock = threading.Lock()


# ----- cache paths --------------------------------------------------------------------------------------
def generators_dir() -> Path:
    return paths.cache_dir() / "generators"


def clip_dir() -> Path:
    return paths.cache_dir() / "clip"


def records_file() -> Path:
    return paths.cache_dir() / "models.json"


def converted_path(name: str) -> Path:
    """The rosinality .pt that a registry or imported model is loaded from."""
    return generators_dir() / f"{name}.pt"


def raw_path(entry: GeneratorEntry) -> Path:
    """Where the official file is downloaded to (and where to put it by hand when offline)."""
    return generators_dir() / entry.filename


def clip_path(entry: ClipEntry) -> Path:
    return clip_dir() / entry.filename


# ----- first-download records -----------------------------------------------------------------------------
def read_records() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(records_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(name: str, **fields: Any) -> None:
    with _records_lock:
        data = read_records()
        data.setdefault(name, {}).update(fields)
        f = records_file()
        f.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(f, data)


def _record_file(name: str, url: str, dest: Path, sha256: str | None = None) -> None:
    """Record a model file's origin, size and hash (hashed now unless `sha256` is already verified)."""
    _record(name, url=url, file=dest.name, size_bytes=dest.stat().st_size, sha256=sha256 or sha256_file(dest))


# ----- queries --------------------------------------------------------------------------------------------
def imported_names() -> list[str]:
    """Converted .pt files in the cache that are not registry entries: the user's imports."""
    d = generators_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.pt") if p.stem not in GENERATORS and not p.name.endswith(".part"))


def is_downloaded(name: str) -> bool:
    """True when the model loads without network (demo models always do)."""
    if name in GENERATORS:
        e = GENERATORS[name]
        return e.demo or converted_path(name).is_file() or raw_path(e).is_file()
    if name in CLIP_MODELS:
        c = CLIP_MODELS[name]
        return c.demo or clip_path(c).is_file()
    return converted_path(name).is_file() if _NAME_RE.match(name) else False


def local_path(name: str) -> Path | None:
    """The file a model is loaded from, or for one not yet downloaded where its official file goes
    (the path to put it at by hand when offline); None for demo models."""
    if name in GENERATORS:
        e = GENERATORS[name]
        if e.demo:
            return None
        conv = converted_path(name)
        return conv if conv.is_file() else raw_path(e)
    if name in CLIP_MODELS:
        c = CLIP_MODELS[name]
        return None if c.demo else clip_path(c)
    return converted_path(name)


def list_models() -> list[ModelEntry]:
    """One row per generator (registry, then imports) and CLIP model, for `models list` and the app."""
    records = read_records()
    rows: list[ModelEntry] = []
    for e in GENERATORS.values():
        p = local_path(e.name)
        size = p.stat().st_size if p is not None and p.is_file() else records.get(e.name, {}).get("size_bytes")
        rows.append(
            ModelEntry(
                "generator",
                e.name,
                e.description,
                e.resolution,
                e.demo,
                is_downloaded(e.name),
                p,
                size or e.size_bytes,
                e.source_prompt,
            )
        )
    for name in imported_names():
        p = converted_path(name)
        rec = records.get(name, {})
        rows.append(
            ModelEntry(
                "generator",
                name,
                rec.get("description", "imported checkpoint"),
                rec.get("resolution"),
                False,
                True,
                p,
                p.stat().st_size,
                rec.get("source_prompt", ""),
            )
        )
    for c in CLIP_MODELS.values():
        p = local_path(c.name)
        description = DEMO_CLIP.description if c.demo else "OpenAI CLIP"
        size = p.stat().st_size if p is not None and p.is_file() else None
        rows.append(ModelEntry("clip", c.name, description, None, c.demo, is_downloaded(c.name), p, size))
    return rows


# ----- downloads ------------------------------------------------------------------------------------------
def download_generator_file(name: str, progress: ProgressFn | None = None) -> Path:
    """Fetch the official file of a registry generator (verified against the first download's record)."""
    e = GENERATORS[name]
    dest = raw_path(e)
    if dest.is_file():
        if "sha256" not in read_records().get(name, {}):  # put here by hand: record it now
            _record_file(name, e.url, dest)
        return dest
    rec = read_records().get(name, {})
    if rec.get("url") not in (None, e.url):
        rec = {}  # the registry moved to another file: old records do not apply
    return _fetch(name, e.url, dest, progress, e.sha256 or rec.get("sha256"), e.size_bytes or rec.get("size_bytes"))


def download_clip_file(name: str, progress: ProgressFn | None = None) -> Path:
    c = CLIP_MODELS[name]
    dest = clip_path(c)
    return dest if dest.is_file() else _fetch(name, c.url, dest, progress, c.sha256)


def _fetch(
    name: str,
    url: str,
    dest: Path,
    progress: ProgressFn | None,
    sha256: str | None = None,
    expected_size: int | None = None,
) -> Path:
    """Download `url` (or its mirror) to `dest`, verified when the hash or size is known, and record it."""
    download(mirrored_url(url), dest, sha256=sha256, expected_size=expected_size, progress=progress, name=name)
    _record_file(name, url, dest, sha256)
    return dest


def ensure_downloaded(name: str, progress: ProgressFn | None = None) -> Path | None:
    """Download (and for generators convert) a registry model; returns its local file (None for demos)."""
    if name in GENERATORS:
        if GENERATORS[name].demo:
            return None
        _, info = load_generator_by_id(name, progress)
        return Path(info["path"])
    if name in CLIP_MODELS:
        return None if CLIP_MODELS[name].demo else download_clip_file(name, progress)
    raise UnknownModel(unknown_model_message(name))


def unknown_model_message(name: str) -> str:
    gens = ", ".join([*GENERATORS, *imported_names()])
    clips = ", ".join(CLIP_MODELS)
    return f"unknown model {name!r}: generators are {gens} (or a checkpoint path); CLIP models are {clips}"


@dataclass(frozen=True)
class ModelChoice:
    """A generator the user named, resolved without loading it."""

    id: str  # what `load_generator_by_id` takes: a registry or imported name, or a file's absolute path
    source_prompt: str  # the model's own description of what it makes ("" when it has none)
    demo: bool = False


def resolve_model(ref: str) -> ModelChoice:
    """A registry name, an imported name or a generator file's path -> ModelChoice. Reads no weights and
    imports no torch. Raises UnknownModel for a name that is none of these, CheckpointError for a path
    that is not a regular file (a FIFO would block the loader for ever)."""
    if ref in GENERATORS:
        e = GENERATORS[ref]
        return ModelChoice(ref, e.source_prompt, e.demo)
    if _NAME_RE.match(ref) and ref in imported_names():
        return ModelChoice(ref, str(read_records().get(ref, {}).get("source_prompt") or ""))
    path = Path(ref).expanduser()
    if os.path.lexists(path) or "/" in ref or "\\" in ref or ref.endswith((".pt", ".pkl")):
        from engine.generator_files import EXPECTED

        user_files.check(path, CheckpointError, f"; {EXPECTED}")
        return ModelChoice(str(path.resolve()), "")
    raise UnknownModel(unknown_model_message(ref))


# ----- loading --------------------------------------------------------------------------------------------
def _demo_info(name: str = DEMO_GENERATOR_ID) -> dict[str, Any]:
    e = GENERATORS[name]
    return {
        "format": "demo",
        "demo": True,
        "name": e.name,
        "path": None,
        "sha256": None,
        "source_prompt": e.source_prompt,
        "description": e.description,
    }


_convert_locks: dict[str, threading.Lock] = {}


def _lock_for_model(name: str) -> threading.Lock:
    with _records_lock:
        return _convert_locks.setdefault(name, threading.Lock())


def _load_or_convert(e: GeneratorEntry, conv: Path, progress: ProgressFn | None) -> tuple[Generator, dict]:
    """The cached rosinality file if present, else download + convert + cache (once per model)."""
    from engine.generator_files import generator_info, load_generator, save_rosinality

    if conv.is_file():
        return load_generator(conv)
    raw = download_generator_file(e.name, progress)
    g, raw_info = load_generator(raw)
    if g.size != e.resolution:
        raise CheckpointError(
            f"{raw} is a {g.size} px generator, but {e.name} should be {e.resolution} px: "
            "the file (or the mirror's copy) is not the one the registry names"
        )
    save_rosinality(g, conv)
    conv_sha = sha256_file(conv)
    _record(e.name, converted=conv.name, converted_sha256=conv_sha, source_format=raw_info["format"], resolution=g.size)
    # Same info as loading the converted file would give, without reading it back.
    return g, {**generator_info(g, "rosinality"), "path": str(conv), "sha256": conv_sha}


def load_generator_by_id(name_or_path: str | Path, progress: ProgressFn | None = None) -> tuple[Generator, dict]:
    """A registry name, the demo id, an imported name or a file path -> (Generator, info).

    Registry models are downloaded and converted on first use; the converted rosinality .pt is cached
    so the conversion runs once. Raises DownloadError (offline: says where to put the file) or
    CheckpointError.
    """
    from engine.demo import DEMO_GENERATORS
    from engine.generator_files import generator_info, load_generator

    key = str(name_or_path)
    if key in DEMO_GENERATORS:
        g = DEMO_GENERATORS[key]()
        info = {**generator_info(g, "demo"), **_demo_info(key)}
        return g, info
    if key in GENERATORS:
        e = GENERATORS[key]
        conv = converted_path(key)
        with _lock_for_model(key):  # one conversion per model at a time
            g, info = _load_or_convert(e, conv, progress)
        info.update(
            name=key,
            demo=False,
            source_format=e.format,
            source_prompt=e.source_prompt,
            description=e.description,
        )
        return g, info
    path = Path(key).expanduser()
    if _NAME_RE.match(key) and not path.exists() and converted_path(key).is_file():
        g, info = load_generator(converted_path(key))
        rec = read_records().get(key, {})
        info.update(
            name=key,
            demo=False,
            source_prompt=rec.get("source_prompt", ""),
            description=rec.get("description", "imported checkpoint"),
        )
        return g, info
    if not os.path.lexists(path) and ("/" not in key and "\\" not in key and not key.endswith((".pt", ".pkl"))):
        raise UnknownModel(unknown_model_message(key))
    g, info = load_generator(path)
    info.update(name=path.stem, demo=False, source_prompt="", description=f"local file {path}")
    return g, info


def load_clip_by_name(name: str, device: str = "cpu", progress: ProgressFn | None = None) -> ClipEncoder:
    """A CLIP registry name (downloaded and verified on first use), the demo id, or a local file."""
    from engine.clip_loss import load_clip
    from engine.demo import colour_oracle

    if name == DEMO_CLIP_ID:
        return colour_oracle().to(device)
    if name in CLIP_MODELS:
        return load_clip(download_clip_file(name, progress), name, device)
    path = Path(name).expanduser()
    if os.path.lexists(path):
        found = user_files.problem(path)
        if found is not None:  # a FIFO would block the loader for ever
            raise UnknownModel(f"CLIP model {name}: the file {found}")
        return load_clip(path, path.stem, device)
    raise UnknownModel(f"unknown CLIP model {name!r}: choose one of {', '.join(CLIP_MODELS)} or give a file path")


def import_checkpoint(path: str | Path, name: str, description: str = "", source_prompt: str = "") -> dict:
    """Convert (or copy) a user's checkpoint into the cache as `name`, so it is listed and loads by name."""
    if not _NAME_RE.match(name):
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' (no path separators), "
            "at most 64 characters"
        )
    if name in GENERATORS or name in CLIP_MODELS:
        raise ValueError(f"{name!r} is a registry model name: choose another name for your checkpoint")
    dest = converted_path(name)
    if dest.exists():
        raise ValueError(f"a model named {name!r} already exists at {dest}: choose another name or delete it")
    from engine.generator_files import load_generator, save_rosinality

    g, info = load_generator(path)
    save_rosinality(g, dest)
    _record(
        name,
        imported_from=str(Path(path).expanduser().absolute()),
        source_format=info["format"],
        source_sha256=info["sha256"],
        resolution=g.size,
        size_bytes=dest.stat().st_size,
        description=description or f"imported from {Path(path).name}",
        source_prompt=source_prompt,
    )
    return {**info, "name": name, "path": str(dest)}


__all__ = [
    "CLIP_MODELS",
    "GENERATORS",
    "CheckpointError",
    "ClipEntry",
    "DownloadError",
    "GeneratorEntry",
    "ModelChoice",
    "UnknownModel",
    "download_clip_file",
    "download_generator_file",
    "ensure_downloaded",
    "import_checkpoint",
    "is_downloaded",
    "list_models",
    "load_clip_by_name",
    "load_generator_by_id",
    "resolve_model",
]
