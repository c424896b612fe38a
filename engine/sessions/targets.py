"""A session's own copies of its target images (`targets/NNN.png`), so that resume, fork, export and the
sessions screen work after the original files are gone.

The copies are the images exactly as they trained (RGB, longer side at most 512 px, at most 64: see
`engine.target_images`), stored losslessly, so a resumed run computes the same image direction. session.json
records them as `"target_images": {"dir": "targets", "files": ["000.png", ...], "sources": [original
paths]}` (null for a run without images).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine import atomic
from engine.sessions import layout
from engine.sessions.errors import DamagedSession
from engine.target_images import TargetImage, TargetImageError, load_image


def write_targets(directory: Path, images: Sequence[TargetImage]) -> dict[str, Any] | None:
    """Store `images` under `directory/targets/`; the record for session.json (None for no images)."""
    if not images:
        return None
    folder = directory / layout.TARGETS_DIR
    folder.mkdir(exist_ok=True)
    files = []
    for i, t in enumerate(images):
        name = f"{i:03d}.png"
        atomic.write_with(folder / name, lambda buf, img=t.image: img.save(buf, format="PNG"))
        files.append(name)
    return {"dir": layout.TARGETS_DIR, "files": files, "sources": [str(t.source) for t in images]}


def _record(data: Mapping[str, Any]) -> Mapping[str, Any]:
    rec = data.get("target_images")
    return rec if isinstance(rec, Mapping) else {}


def target_count(data: Mapping[str, Any]) -> int:
    """How many target images a session's session.json records (0 for a text-only run)."""
    files = _record(data).get("files")
    return len(files) if isinstance(files, list) else 0


def _paths(path: Path, data: Mapping[str, Any]) -> list[Path]:
    rec = _record(data)
    folder = path / str(rec.get("dir") or layout.TARGETS_DIR)
    return [folder / str(name) for name in rec.get("files") or []]


def missing_targets(path: Path, data: Mapping[str, Any]) -> str | None:
    """Why a session's target image copies cannot be used, or None (also None for a text-only run)."""
    files = _paths(path, data)
    gone = [f for f in files if not f.is_file()]
    if gone:
        return f"{len(gone)} of its {len(files)} target image copies in {layout.TARGETS_DIR}/ are missing"
    return None


def read_targets(path: Path, data: Mapping[str, Any]) -> list[TargetImage]:
    """The session's target images from its copies (sources: the original paths, for display)."""
    rec = _record(data)
    sources = list(rec.get("sources") or [])
    out = []
    for i, f in enumerate(_paths(path, data)):
        try:
            image = load_image(f)
        except TargetImageError as exc:
            raise DamagedSession(f"Session {path.name} cannot use its target images: {exc}") from None
        out.append(TargetImage(Path(sources[i]) if i < len(sources) else f, image))
    return out
