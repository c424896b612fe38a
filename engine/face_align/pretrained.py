"""The real landmark models: face-alignment's S3FD face detector and 2D-FAN-4 landmark network, built
from the `face-alignment` package's model classes and loaded from OUR verified weight files
(`engine.weight_files`: downloaded once with a sha256 check into the cache). The library's own
downloaders (torch.hub) are never called: we construct the networks ourselves and load the state dicts
with `torch.load(weights_only=True)`.

Loaded once per device and kept (about 190 MB of weights); safe to call from worker threads.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from engine.download import DownloadError, ProgressFn
from engine.errors import FaceAlignUnavailable
from engine.face_align.landmarks import LandmarkFinder
from engine.weight_files import ensure_weight_file

DETECTOR_WEIGHTS = "face-detector-s3fd"
LANDMARK_WEIGHTS = "face-landmarks-2dfan4"
FAN_HOURGLASSES = 4  # the "LARGE" 2D-FAN the published weights are for
SCORE_THRESHOLD = 0.5  # face-alignment's default for S3FD
NMS_IOU = 0.3

_cache: dict[tuple[str, str, str], LandmarkFinder] = {}  # (device, weight files) -> finder
_cache_lock = threading.Lock()


class S3fdDetector:
    """S3FD (face-alignment's network) -> face boxes with their scores, duplicates merged."""

    def __init__(self, network: torch.nn.Module, device: str) -> None:
        self.network, self.device = network, device

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        from face_alignment.detection.sfd.detect import detect
        from torchvision.ops import nms

        found = np.asarray(detect(self.network, rgb, device=self.device)[0], dtype=np.float64).reshape(-1, 5)
        if len(found) == 0:
            return found
        boxes = torch.from_numpy(found)
        keep = nms(boxes[:, :4], boxes[:, 4], NMS_IOU).numpy()
        found = found[keep]
        return found[found[:, 4] > SCORE_THRESHOLD]


def _load_state(path) -> dict:
    # map_location: files saved from a GPU still load on a CPU-only machine.
    return torch.load(path, map_location="cpu", weights_only=True)


def build_finder(detector_path, landmark_path, device: str = "cpu") -> LandmarkFinder:
    """A LandmarkFinder from local S3FD and 2D-FAN state-dict files (no network)."""
    try:
        from face_alignment.detection.sfd.net_s3fd import s3fd
        from face_alignment.models import FAN
    except ImportError as exc:  # e.g. OpenCV without libGL.so.1 on a bare server
        raise FaceAlignUnavailable(
            f"Face alignment cannot start: {exc}. Install the missing piece (`pip install face-alignment`; "
            "for libGL.so.1: `apt-get install libgl1`, or `pip install opencv-python-headless`), "
            "or pass --no-align to resize and centre-crop photos instead."
        ) from None

    det = s3fd()
    det.load_state_dict(_load_state(detector_path))
    fan = FAN(FAN_HOURGLASSES)
    fan.load_state_dict(_load_state(landmark_path))
    return LandmarkFinder(S3fdDetector(det.to(device).eval(), device), fan.to(device).eval(), device)


def pretrained_finder(device: str = "cpu", progress: ProgressFn | None = None) -> LandmarkFinder:
    """The real finder on `device`, its weights downloaded and verified on first use. Offline, the
    DownloadError says where to put the files by hand, and that `--no-align` skips alignment."""
    try:
        paths = [ensure_weight_file(name, progress) for name in (DETECTOR_WEIGHTS, LANDMARK_WEIGHTS)]
    except DownloadError as exc:
        raise DownloadError(f"{exc} Or skip face alignment with --no-align.") from None
    key = (device, *map(str, paths))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = build_finder(*paths, device=device)
        return _cache[key]


def unload(device: str | None = None) -> None:
    """Drop the loaded models (all, or those on `device`), e.g. to give their ~190 MB of GPU memory to
    the inversion once every photo is aligned; the next alignment loads them again from the cache."""
    with _cache_lock:
        for key in [k for k in _cache if device is None or k[0] == device]:
            del _cache[key]
