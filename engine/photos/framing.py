"""From a loaded photo to the square the generator is asked to reproduce: face alignment (FFHQ-style,
engine.face_align, imported only when asked for) or, with `--no-align`, a centre crop of the largest
square resized to the generator's resolution. `wants_alignment` is the default for a model. Torch-free
until alignment runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image


def wants_alignment(model: Any) -> bool:
    """Whether photos for `model` (a registry name, a file path or a model info) are face-aligned by
    default: engine.face_align knows which domains are human faces."""
    from engine.face_align import is_face_domain

    return bool(is_face_domain(model))


def centre_crop(image: Image.Image, resolution: int) -> Image.Image:
    """The largest centred square of `image`, resized (Lanczos) to resolution x resolution."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = image.crop((left, top, left + side, top + side))
    if side == resolution:
        return square
    return square.resize((resolution, resolution), Image.Resampling.LANCZOS)


def frame_photo(
    image: Image.Image,
    resolution: int,
    align: bool,
    device: str = "cpu",
    progress: Callable[..., Any] | None = None,
    source: str | None = None,
) -> Image.Image:
    """What is inverted: the aligned face (NoFaceFound when there is none) or the centre crop. `source`
    names the photo in alignment's messages."""
    if not align:
        return centre_crop(image, resolution)
    from engine.face_align import align_face

    return align_face(image, resolution, device=device, progress=progress, source=source)
