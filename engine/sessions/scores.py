"""A session's scores (`scores.json`): what `nada-tui eval` and the end of every run measured, read and
written without torch, so lists, tables and `sweep status` can show and sort by them.

The record (see engine/scores.py for how each figure is measured):

    {"session": "20261205-...", "clip_direction": 0.71, "clip_target": 0.28, "diversity": 0.19,
     "diversity_frozen": 0.22, "fid": null, "kid": null, "samples": 64, "seeds": "0-63", "truncation": 0.7,
     "clip_model": "ViT-B/32", "step": 300, "by": "eval", "computed": "2026-12-05T08:00:00"}

(with --fid also "fid_features", "fid_real_images" and "fid_folder"; the end of a run writes no "session").

A missing, unreadable or malformed file reads as "no scores" (the session itself is unharmed); writes are
atomic, so a kill leaves the previous scores or the new ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine import atomic
from engine.sessions.layout import SCORES_FILE

EVAL_SAMPLES = 64  # `nada-tui eval`'s default
RUN_END_SAMPLES = 16  # what every run measures when it ends: cheap (two renders and CLIP passes of 16)

SCORE_KEYS = ("clip_direction", "clip_target", "diversity", "diversity_frozen", "fid", "kid")
# Higher is better for these; FID and KID are distances (lower is better). Sorting puts the best first.
HIGHER_IS_BETTER = {"clip_direction": True, "clip_target": True, "diversity": True, "diversity_frozen": True,
                    "fid": False, "kid": False}
SHORT_NAMES = {"clip_direction": "DIR", "clip_target": "TGT", "diversity": "DIV", "diversity_frozen": "DIV0",
               "fid": "FID", "kid": "KID"}


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def read_scores(path: Path) -> dict[str, Any] | None:
    """The session's scores, or None when it has none (or the file is not a scores record). Every
    score key is present in the result, None where it was not measured."""
    try:
        data = json.loads((Path(path) / SCORES_FILE).read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or _number(data.get("clip_direction")) is None:
        return None
    out = dict(data)
    for key in SCORE_KEYS:
        out[key] = _number(data.get(key))
    return out


def write_scores(path: Path, record: Mapping[str, Any]) -> Path:
    """Replace the session's scores atomically (non-finite figures are stored as null)."""
    clean = {k: (_number(v) if k in SCORE_KEYS else v) for k, v in record.items()}
    file = Path(path) / SCORES_FILE
    atomic.write_json(file, clean)
    return file


def score(scores: Mapping[str, Any] | None, key: str) -> float | None:
    """One figure of a record (None for no record, or one that was not measured)."""
    return None if not scores else _number(scores.get(key))


def format_score(value: float | None, key: str = "", places: int = 3) -> str:
    """A figure as tables show it: `places` decimals (FID: 1), '-' when not measured."""
    if value is None:
        return "-"
    return f"{value:.1f}" if key == "fid" else f"{value:.{places}f}"


def sort_key(key: str):
    """A key function for sorting rows by `key` (rows: anything with a `scores` mapping), best first and
    rows without that score last. Raises ValueError for an unknown score name."""
    if key not in SCORE_KEYS:
        raise ValueError(f"unknown score {key!r}: choose one of {', '.join(SCORE_KEYS)}")
    sign = -1.0 if HIGHER_IS_BETTER[key] else 1.0

    def by(row: Any) -> tuple[int, float]:
        v = score(getattr(row, "scores", None), key)
        return (1, 0.0) if v is None else (0, sign * v)

    return by


def describe(scores: Mapping[str, Any]) -> str:
    """How they were measured, in a line: '64 samples, CLIP ViT-B/32, step 300'."""
    return (f"{scores.get('samples', '?')} samples, CLIP {scores.get('clip_model', '?')}, "
            f"step {scores.get('step', '?')}")


def brief(scores: Mapping[str, Any]) -> str:
    """The figures in a few words, for narrow places (the compare view's heads): 'dir 0.84 tgt 0.92 div
    0.11/0.60' (diversity adapted/frozen), FID when measured."""
    def two(key: str) -> str:
        return format_score(score(scores, key), key, 2)

    parts = [f"dir {two('clip_direction')}", f"tgt {two('clip_target')}",
             f"div {two('diversity')}/{two('diversity_frozen')}"]
    if score(scores, "fid") is not None:
        parts.append(f"fid {format_score(score(scores, 'fid'), 'fid')}")
    return " ".join(parts)
