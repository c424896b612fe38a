"""A session's own copies of its target images (`targets/NNN.png`), so that resume, fork, export and the
sessions screen work after the original files are gone.

The copies are the images exactly as they trained (RGB, longer side at most 512 px, at most 64: see
`engine.target_images`), stored losslessly, so a resumed run computes the same image direction. session.json
records them as `"target_images": {"dir": "targets", "files": ["000.png", ...], "sources": [original
paths]}` (null for a run without images). Source images (`source_images`) are kept the same way, in
`sources/NNN.png` under session.json's `"source_images"`: every function takes `key`, the record's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine import atomic
from engine.sessions import layout
from engine.sessions.errors import DamagedSession
from engine.target_images import FIELD, SOURCE_FIELD, TargetImage, TargetImageError, load_image

FOLDERS = {FIELD: layout.TARGETS_DIR, SOURCE_FIELD: layout.SOURCES_DIR}  # session.json key -> its folder


def write_targets(directory: Path, images: Sequence[TargetImage], key: str = FIELD) -> dict[str, Any] | None:
    """Store `images` under `directory/targets/` (`sources/` for source images); the record for
    session.json (None for no images)."""
    if not images:
        return None
    folder = directory / FOLDERS[key]
    folder.mkdir(exist_ok=True)
    files = []
    for i, t in enumerate(images):
        name = f"{i:03d}.png"
        atomic.write_with(folder / name, lambda buf, img=t.image: img.save(buf, format="PNG"))
        files.append(name)
    return {"dir": FOLDERS[key], "files": files, "sources": [str(t.source) for t in images]}


def _record(data: Mapping[str, Any], key: str = FIELD) -> Mapping[str, Any]:
    rec = data.get(key)
    return rec if isinstance(rec, Mapping) else {}


def target_count(data: Mapping[str, Any], key: str = FIELD) -> int:
    """How many target (or source) images a session's session.json records (0 for a text-only run)."""
    files = _record(data, key).get("files")
    return len(files) if isinstance(files, list) else 0


def _paths(path: Path, data: Mapping[str, Any], key: str = FIELD) -> list[Path]:
    rec = _record(data, key)
    folder = path / str(rec.get("dir") or FOLDERS[key])
    return [folder / str(name) for name in rec.get("files") or []]


def missing_targets(path: Path, data: Mapping[str, Any]) -> str | None:
    """Why a session's target or source image copies cannot be used, or None (also None for a text-only run)."""
    for key, folder in FOLDERS.items():
        files = _paths(path, data, key)
        gone = [f for f in files if not f.is_file()]
        if gone:
            role = key.split("_")[0]
            return f"{len(gone)} of its {len(files)} {role} image copies in {folder}/ are missing"
    return None


def read_targets(path: Path, data: Mapping[str, Any], key: str = FIELD) -> list[TargetImage]:
    """The session's target (or source) images from its copies (sources: the original paths, for display)."""
    rec = _record(data, key)
    sources = list(rec.get("sources") or [])
    out = []
    for i, f in enumerate(_paths(path, data, key)):
        try:
            image = load_image(f)
        except TargetImageError as exc:
            role = key.split("_")[0]
            raise DamagedSession(f"Session {path.name} cannot use its {role} images: {exc}") from None
        out.append(TargetImage(Path(sources[i]) if i < len(sources) else f, image))
    return out
