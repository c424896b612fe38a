"""Numbers as people read them: byte sizes and clock times, shared by the app and the command line."""

from __future__ import annotations

import math


def fmt_bytes(n: int | float | None) -> str:
    """1536 -> "1.5 KiB"; None -> "?"."""
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def fmt_clock(seconds: float | None) -> str:
    """83 -> "1:23", 3723 -> "1:02:03"; unknown or infinite -> "–"."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
