"""What a video export may be asked for (kinds, formats, seconds, fps, size), checked without torch so
that the command line and the app can refuse bad settings before any model loads."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.errors import ExportError

VIDEO_FORMATS = ("mp4", "webp", "gif")
VIDEO_KINDS = ("walk", "strength", "timelapse")
MAX_SECONDS = 600


@dataclass(frozen=True)
class VideoSettings:
    seconds: float = 8.0
    fps: int = 24
    size: int | None = None  # side of one image in pixels; None: the generator's (at least engine.video.MIN_TILE)
    format: str = "mp4"

    def check(self) -> VideoSettings:
        """Self, or ExportError saying which setting is out of range and what is allowed."""
        if not (math.isfinite(self.seconds) and 0.5 <= self.seconds <= MAX_SECONDS):
            raise ExportError(f"--seconds must be from 0.5 to {MAX_SECONDS}; got {self.seconds:g}")
        if not 1 <= int(self.fps) <= 60:
            raise ExportError(f"--fps must be from 1 to 60; got {self.fps}")
        if self.size is not None and not 16 <= int(self.size) <= 2048:
            raise ExportError(f"--size must be from 16 to 2048 pixels; got {self.size}")
        if self.format not in VIDEO_FORMATS:
            raise ExportError(f"--video-format must be one of {', '.join(VIDEO_FORMATS)}; got {self.format!r}")
        return self

    @property
    def frames(self) -> int:
        return max(2, round(self.seconds * self.fps))
