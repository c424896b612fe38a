"""Face alignment for photos: find the largest face and cut it out as FFHQ's faces were cut, so a face
generator can invert it. `align_face` does it; `is_face_domain` says which generators want it.

Parts: `domains` (which generators, torch-free), `ffhq_crop` (the crop geometry, torch-free),
`landmarks` (detector + heatmap network -> 68 landmarks), `pretrained` (the real models from our
verified weight files).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image

from engine.download import ProgressFn
from engine.errors import NoFaceFound
from engine.face_align.domains import alignment_note, is_face_domain
from engine.face_align.ffhq_crop import crop_quad, ffhq_quad

__all__ = ["FaceLandmarks", "NoFaceFound", "align_face", "alignment_note", "is_face_domain"]


class FaceLandmarks(Protocol):
    def largest_face(self, image: Image.Image) -> np.ndarray | None:
        """[68, 2] landmarks of the photo's largest face, or None."""
        ...


def no_face_message(source: str | None) -> str:
    where = source or "the photo"
    return (
        f"No face was found in {where}. Use a photo where the face is clearly visible (frontal, not too "
        "small), or pass --no-align to resize and centre-crop it instead."
    )


def align_face(
    image: Image.Image,
    resolution: int,
    *,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    source: str | None = None,
    landmarks: FaceLandmarks | None = None,
) -> Image.Image:
    """The photo's largest face, cut as FFHQ's faces were, as an RGB `resolution`² image.

    `progress` follows the landmark weights' download on first use (about 180 MB). `source` names the
    photo in messages (e.g. its file name). `landmarks` replaces the pretrained detector (tests, other
    detectors). Raises NoFaceFound when no face is found, DownloadError when the weights cannot be had.
    """
    if landmarks is None:
        from engine.face_align.pretrained import pretrained_finder

        landmarks = pretrained_finder(device, progress)
    points = landmarks.largest_face(image)
    try:
        quad = None if points is None else ffhq_quad(points)
    except ValueError:  # eyes and mouth on one spot: not a face the crop can use
        quad = None
    if quad is None:
        raise NoFaceFound(no_face_message(source))
    return crop_quad(image, quad, resolution)
