"""Auxiliary weight files that features download on first use (a face-landmark model, LPIPS's VGG16,
FID's Inception): one table and one verified download, so every file goes through `engine.download`
(mirror, resume, size and sha256 checks) and lands in the cache like the generators and CLIP.

Cache layout: `<cache>/weights/<file name>`. A feature adds its row to `WEIGHT_FILES` and calls
`ensure_weight_file(name)`; offline, the error says where to put the file by hand.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from engine import paths
from engine.download import ProgressFn, download, mirrored_url


@dataclass(frozen=True)
class WeightFile:
    name: str  # the key features ask for, e.g. "vgg16-lpips"
    url: str
    sha256: str | None  # checked when known; a file that does not match is removed
    size_bytes: int | None
    purpose: str  # one line for messages: what needs it

    @property
    def filename(self) -> str:
        return urllib.parse.urlsplit(self.url).path.rsplit("/", 1)[-1]


FACE_ALIGNMENT_BASE = "https://www.adrianbulat.com/downloads/python-fan/"

WEIGHT_FILES: dict[str, WeightFile] = {
    w.name: w
    for w in [
        # face-alignment's (BSD-3) published weights, the URLs its 1.5 release loads. The file names carry
        # the first 10 hex digits of each file's sha256 (torch.hub's convention); the full digests below
        # start with them. Exact sizes unknown (about 90 MB each): the server's Content-Length is checked.
        WeightFile(
            "face-detector-s3fd",
            f"{FACE_ALIGNMENT_BASE}s3fd-619a316812.pth",
            "619a31681264d3f7f7fc7a16a42cbbe8b23f31a256f75a366e5a1bcd59b33543",
            None,
            "the S3FD face detector (face alignment)",
        ),
        WeightFile(
            "face-landmarks-2dfan4",
            f"{FACE_ALIGNMENT_BASE}2DFAN4-11f355bf06.pth.tar",
            "11f355bf0693120222f5955ce3f9dc8fb5763ebb30a47d7906e509490d32e4aa",
            None,
            "the 2D-FAN-4 face landmark model (face alignment)",
        ),
        # torchvision's ImageNet VGG16, the backbone LPIPS measures photo inversions with (engine.photos).
        # Its full sha256 is not published; torchvision's file name carries the first 8 hex digits of it,
        # which engine.photos.perceptual checks after the download.
        WeightFile(
            name="vgg16-lpips",
            url="https://download.pytorch.org/models/vgg16-397923af.pth",
            sha256=None,
            size_bytes=None,
            purpose="VGG16 for LPIPS (photo inversion)",
        ),
        # FID/KID (engine/fid.py). No sha256 is published (the name holds only its first 8 hex digits).
        WeightFile(
            "inception-fid",
            "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
            None,
            None,
            "the Inception network of FID/KID (torch-fidelity's port of the TensorFlow weights)",
        ),
    ]
}


def weights_dir() -> Path:
    return paths.cache_dir() / "weights"


def weight_path(name: str) -> Path:
    """Where a weight file lives (or goes, when put there by hand offline)."""
    return weights_dir() / WEIGHT_FILES[name].filename


def ensure_weight_file(name: str, progress: ProgressFn | None = None) -> Path:
    """The local file of a registered weight, downloaded and verified the first time (DownloadError
    says what went wrong and where to place the file by hand)."""
    entry = WEIGHT_FILES[name]
    return download(
        mirrored_url(entry.url),
        weight_path(name),
        sha256=entry.sha256,
        expected_size=entry.size_bytes,
        progress=progress,
        name=entry.purpose,
    )
