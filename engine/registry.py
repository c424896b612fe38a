"""Typed rows of the model list (`zoo.list_models()`): what the CLI's `models list` and the app's model
picker show. Torch-free, so the app can list the built-in demo model before torch has loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, DEMO_SOURCE


@dataclass(frozen=True)
class ModelEntry:
    kind: str  # "generator" or "clip"
    name: str  # what --model / --clip and the form take
    description: str
    resolution: int | None = None
    demo: bool = False
    downloaded: bool = False  # loads without network (demo models always do)
    path: Path | None = None  # the local file, or where the official file goes; None for demo models
    size_bytes: int | None = None
    source_prompt: str = ""  # the domain's default source prompt

    @property
    def label(self) -> str:
        text = f"{self.name} ({self.resolution} px)" if self.resolution else self.name
        return text + " DEMO" if self.demo else text


DEMO_GENERATOR = ModelEntry(
    "generator", DEMO_GENERATOR_ID, "DEMO: tiny random 64 px generator, offline, for trying the app", 64,
    demo=True, downloaded=True, source_prompt=DEMO_SOURCE,
)
DEMO_CLIP = ModelEntry("clip", DEMO_CLIP_ID, "DEMO: colour-oracle CLIP stand-in, offline", demo=True, downloaded=True)
