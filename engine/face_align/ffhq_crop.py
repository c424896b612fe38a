"""FFHQ's crop geometry: from a face's 68 landmarks to the oriented square that FFHQ's images were cut
from, and the cut itself. Torch-free (numpy and PIL).

The rule, as published with the FFHQ dataset (Karras et al. 2019), written here from its description:
eye centres (mean of landmarks 36-41 and 42-47), mouth corners (48 and 54); the square's x axis is the
eye-to-eye vector minus the eye-to-mouth vector turned by 90 degrees (so both the eye line and the
face's vertical axis set the roll), its half side is the larger of 2 x eye distance and 1.8 x
eye-to-mouth distance, and its centre sits a tenth of the eye-to-mouth vector below the eyes' midpoint.
Before sampling, a huge image is shrunk by an integer factor, the image is cut to the square's bounding
box plus a border, and where the square leaves the photo the photo is reflected outwards and the
reflection faded into a blur of itself and the photo's median colour, so no hard edge or black corner
reaches the generator.

Our variant (same output geometry, less memory): a photo is shrunk (any factor) until the square is at
most twice the output size, where FFHQ shrank by whole factors to under four times and always sampled
at 4096 px; the square is sampled at its own pixel size and resized to the output with Lanczos; the blur
is PIL's Gaussian blur. Coordinates are pixel-index coordinates:
the centre of pixel (i, j) is (x=i, y=j).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

LEFT_EYE = slice(36, 42)  # the eye on the image's left (the subject's right eye)
RIGHT_EYE = slice(42, 48)
MOUTH_LEFT, MOUTH_RIGHT = 48, 54
SUPERSAMPLE = 2  # the square is sampled at up to twice the output size, then resized down


@dataclass(frozen=True)
class FaceQuad:
    """The oriented square to cut: corners top-left, bottom-left, bottom-right, top-right ([4, 2], pixel
    index coordinates) and its side length in source pixels."""

    corners: np.ndarray
    side: float


def ffhq_quad(landmarks: np.ndarray) -> FaceQuad:
    """The square FFHQ would cut for a face with these 68 (x, y) landmarks."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected 68 (x, y) landmarks, got an array of shape {pts.shape}")
    eye_left, eye_right = pts[LEFT_EYE].mean(0), pts[RIGHT_EYE].mean(0)
    eyes_mid = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (pts[MOUTH_LEFT] + pts[MOUTH_RIGHT]) / 2 - eyes_mid
    # The eye-to-mouth vector turned a quarter turn (down the face -> left to right along it) joins the
    # eye-to-eye vector: the roll comes from both, robust to a tilted mouth or a wink.
    along = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    norm = math.hypot(*along)
    if norm == 0 or not np.isfinite(norm):
        raise ValueError("degenerate landmarks: the eyes and mouth coincide")
    half = max(2.0 * math.hypot(*eye_to_eye), 1.8 * math.hypot(*eye_to_mouth))
    x = along / norm * half
    y = np.array([-x[1], x[0]])  # x turned back: down the face
    centre = eyes_mid + 0.1 * eye_to_mouth
    corners = np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])
    return FaceQuad(corners, 2.0 * half)


def crop_quad(image: Image.Image, quad: FaceQuad, resolution: int) -> Image.Image:
    """Cut `quad` out of `image` as FFHQ did (shrink, crop, reflect-pad with blur) -> RGB `resolution`²."""
    img = image.convert("RGB")
    corners, side = quad.corners.copy(), quad.side

    # 1. Shrink a photo whose square is over twice the output (antialiased): sampling it whole would alias,
    #    and its padding would take gigabytes.
    shrink = side / (SUPERSAMPLE * resolution)
    if shrink > 1:
        size = (max(1, round(img.width / shrink)), max(1, round(img.height / shrink)))
        img = img.resize(size, Image.Resampling.BOX)
        scale = np.array([size[0] / image.width, size[1] / image.height])
        corners, side = (corners + 0.5) * scale - 0.5, side * float(scale.mean())

    # 2. Cut to the square's bounding box plus a border (less to pad and blur).
    border = max(round(side * 0.1), 3)
    lo = np.floor(corners.min(0)).astype(int) - border
    hi = np.ceil(corners.max(0)).astype(int) + border
    box = (max(lo[0], 0), max(lo[1], 0), min(hi[0], img.width), min(hi[1], img.height))
    if box[2] - box[0] < img.width or box[3] - box[1] < img.height:
        img = img.crop(box)
        corners = corners - np.array(box[:2], dtype=np.float64)

    # 3. Where the square leaves the photo, reflect the photo outwards and fade the reflection.
    pad = (max(box[0] - lo[0], 0), max(box[1] - lo[1], 0), max(hi[0] - box[2], 0), max(hi[1] - box[3], 0))
    if max(pad) > border - 4:
        pad = tuple(max(p, round(side * 0.3)) for p in pad)
        img = _reflect_and_fade(img, pad, side)
        corners = corners + np.array(pad[:2], dtype=np.float64)

    # 4. Sample the square (pixel-index corners -> PIL's continuous coordinates: +0.5), then resize.
    sample = max(resolution, math.ceil(side))
    out = img.transform(
        (sample, sample), Image.Transform.QUAD, tuple((corners + 0.5).flatten()), Image.Resampling.BILINEAR
    )
    if sample != resolution:
        out = out.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return out


def _reflect_and_fade(img: Image.Image, pad: tuple[int, int, int, int], side: float) -> Image.Image:
    """Pad (left, top, right, bottom) by reflection; blend the padding towards a blur of itself and then
    towards the photo's median colour, the more the further it lies from the photo."""
    left, top, right, bottom = pad
    arr = np.asarray(img, dtype=np.float32)
    arr = np.pad(arr, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w = arr.shape[:2]
    # A ramp per padded side: 1 at its outer edge, 0 where the photo begins, negative inside the photo.
    fade_x = _ramp(w, left, right)
    fade_y = _ramp(h, top, bottom)
    fade = np.maximum(fade_x[None, :], fade_y[:, None])[..., None]
    blur_radius = max(side * 0.02, 1.0)
    padded = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    blurred = np.asarray(padded.filter(ImageFilter.GaussianBlur(blur_radius)), dtype=np.float32)
    # The blur reaches a third of a pad into the photo, softening the seam; the colour fade starts at it.
    arr = arr + (blurred - arr) * np.clip(fade * 3.0 + 1.0, 0.0, 1.0)
    median = np.median(arr[::4, ::4].reshape(-1, 3), axis=0)  # every 16th pixel: the same colour, faster
    arr = arr + (median - arr) * np.clip(fade, 0.0, 1.0)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def _ramp(n: int, before: int, after: int) -> np.ndarray:
    pos = np.arange(n, dtype=np.float32)
    ramp = np.full(n, -np.inf, dtype=np.float32)
    if before > 0:
        ramp = np.maximum(ramp, 1.0 - pos / before)
    if after > 0:
        ramp = np.maximum(ramp, 1.0 - (n - 1 - pos) / after)
    return ramp
