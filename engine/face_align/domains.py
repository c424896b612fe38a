"""Which generators get face-aligned photos: the human-face domains trained on FFHQ-style crops (FFHQ,
MetFaces). Torch-free, so the command line can decide before loading anything.

AFHQ (cat, dog, wild) is a face domain too, but its crops were made around animal faces and our
landmark detector (S3FD + 2D-FAN) is trained on human faces only: AFHQ photos are resized and
centre-cropped like every other domain, so the user should frame the animal's face first. The demo
generator is not a face domain. Imported checkpoints and files are not aligned by default: nothing tells
us what they were trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.official_models import GENERATORS

ANIMAL_FACES = ("afhqdog", "afhqcat", "afhqwild")


def model_id(model: str | Mapping[str, Any] | Any) -> str:
    """The registry name (or path) behind a model reference: a name, a session's `session.json` data or
    its `base_model` table, the info dict that loading a generator returns, or a SessionInfo."""
    if isinstance(model, str):
        return model
    if isinstance(model, Mapping):
        base = model.get("base_model")
        if isinstance(base, Mapping):
            return str(base.get("id", ""))
        return str(model.get("id") or model.get("name") or "")
    return str(getattr(model, "model_id", "") or "")


def is_face_domain(model: str | Mapping[str, Any] | Any) -> bool:
    """True when photos for this generator are aligned as FFHQ's faces were (see the module docstring)."""
    entry = GENERATORS.get(model_id(model))
    return bool(entry and entry.aligned_faces)


def alignment_note(model: str | Mapping[str, Any] | Any) -> str:
    """One line for the user: how photos are prepared for this generator, and why."""
    name = model_id(model) or "this model"
    if is_face_domain(model):
        return f"{name}: photos are face-aligned as FFHQ was (use --no-align to resize and centre-crop instead)"
    if name in ANIMAL_FACES:
        return (
            f"{name}: photos are resized and centre-cropped (the face detector knows human faces only): "
            "crop your photo around the animal's face first"
        )
    return f"{name}: photos are resized and centre-cropped (not a human-face domain)"
