"""68-point face landmarks from a face detector and a heatmap landmark network (FAN-style): the face box
-> the network's 256 px input crop -> 64 px heatmaps -> sub-pixel peaks -> photo coordinates.

The detector and the network are parameters (any detector with `detect`, any module that maps
[N, 3, 256, 256] in [0, 1] to [N, 68, 64, 64] heatmaps), so tests drive this with stand-ins and
`pretrained.py` plugs in the real S3FD detector and 2D-FAN network. The crop follows the convention the
2D-FAN weights were trained with (face-alignment's documented constants): a square of side
200 * (box width + box height) / 195 around the box centre moved up by 12% of the box height.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from PIL import Image

NUM_LANDMARKS = 68
INPUT_SIZE = 256  # the network's input crop
HEATMAP_SIZE = 64
REFERENCE_SCALE = 195.0  # box (width + height) that fills 200 crop units
CROP_UNITS = 200.0
CENTRE_SHIFT = 0.12  # box heights the crop centre moves up (boxes sit low on the face)
DETECT_MAX_SIDE = 640  # photos are shrunk to this long side for detection (speed; faces stay findable)


class FaceDetector(Protocol):
    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """Faces in an [H, W, 3] uint8 RGB array -> [N, 5] rows of (x1, y1, x2, y2, score), pixels."""
        ...


def crop_frame(box: np.ndarray) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square crop the landmark network sees for a face box."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    w, h = x2 - x1, y2 - y1
    return (x1 + x2) / 2, (y1 + y2) / 2 - CENTRE_SHIFT * h, CROP_UNITS * (w + h) / REFERENCE_SCALE


def decode_heatmaps(heatmaps: torch.Tensor) -> torch.Tensor:
    """[N, K, H, W] heatmaps -> [N, K, 2] (x, y) peaks in heatmap pixel-index coordinates: the arg-max,
    moved a quarter pixel towards the larger neighbour on each axis (the usual sub-pixel refinement)."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    idx = flat.argmax(-1)
    ys, xs = torch.div(idx, w, rounding_mode="floor"), idx % w
    pts = torch.stack([xs, ys], -1).to(torch.float32)
    hm = heatmaps.reshape(n * k, h, w)
    xi, yi = xs.reshape(-1), ys.reshape(-1)
    inner = (xi > 0) & (xi < w - 1) & (yi > 0) & (yi < h - 1)
    rows = torch.arange(n * k)[inner]
    xin, yin = xi[inner], yi[inner]
    dx = hm[rows, yin, xin + 1] - hm[rows, yin, xin - 1]
    dy = hm[rows, yin + 1, xin] - hm[rows, yin - 1, xin]
    shift = torch.zeros(n * k, 2)
    shift[inner] = torch.stack([dx.sign(), dy.sign()], -1).to(torch.float32) * 0.25
    return pts + shift.reshape(n, k, 2)


class LandmarkFinder:
    """The largest face's 68 landmarks in a photo, from `detector` and `network` on `device`."""

    def __init__(self, detector: FaceDetector, network: torch.nn.Module, device: str = "cpu") -> None:
        self.detector, self.network, self.device = detector, network, device

    def largest_face(self, image: Image.Image) -> np.ndarray | None:
        """[68, 2] (x, y) pixel-index coordinates of the largest detected face, or None for no face."""
        rgb = image.convert("RGB")
        box = self._largest_box(rgb)
        if box is None:
            return None
        return self._landmarks(rgb, box)

    def _largest_box(self, rgb: Image.Image) -> np.ndarray | None:
        factor = min(1.0, DETECT_MAX_SIDE / max(rgb.size))
        small = rgb if factor == 1.0 else rgb.resize(
            (max(1, round(rgb.width * factor)), max(1, round(rgb.height * factor))), Image.Resampling.BOX
        )
        boxes = np.asarray(self.detector.detect(np.asarray(small)), dtype=np.float64).reshape(-1, 5)
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        if len(boxes) == 0:
            return None
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        box = boxes[int(areas.argmax())].copy()
        box[:4] /= factor
        return box

    @torch.no_grad()
    def _landmarks(self, rgb: Image.Image, box: np.ndarray) -> np.ndarray:
        cx, cy, side = crop_frame(box)
        left, top = cx - side / 2, cy - side / 2  # PIL's continuous coordinates
        crop = rgb.transform(
            (INPUT_SIZE, INPUT_SIZE),
            Image.Transform.EXTENT,
            (left, top, left + side, top + side),
            Image.Resampling.BILINEAR,
        )
        x = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        out = self.network(x.to(self.device))
        if isinstance(out, (list, tuple)):  # FAN returns one heatmap set per stacked hourglass: the last is best
            out = out[-1]
        heatmaps = out.detach().to("cpu", torch.float32)
        if heatmaps.shape[1:] != (NUM_LANDMARKS, HEATMAP_SIZE, HEATMAP_SIZE):
            raise ValueError(f"landmark network returned heatmaps of shape {tuple(heatmaps.shape)}, "
                             f"expected [1, {NUM_LANDMARKS}, {HEATMAP_SIZE}, {HEATMAP_SIZE}]")
        peaks = decode_heatmaps(heatmaps)[0].numpy().astype(np.float64)
        # Heatmap pixel centres -> the photo's continuous coordinates -> pixel-index coordinates.
        return np.stack([left + (peaks[:, 0] + 0.5) * side / HEATMAP_SIZE - 0.5,
                         top + (peaks[:, 1] + 0.5) * side / HEATMAP_SIZE - 0.5], -1)
