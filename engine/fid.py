"""FID and KID of a session's adapted samples against a folder of real target-domain images, through
torch-fidelity (its `inception-v3-compat` network: the TensorFlow Inception of the FID paper, ported).

Its weights come through engine.weight_files (`inception-fid`: downloaded once, into our cache, with resume
and mirror support), and torch-fidelity is handed that file, so it never downloads on its own. Offline
tests use a stand-in feature network instead (`features="standin"`: a small fixed random convnet), and
every record says which features were used, so a stand-in figure is never mistaken for a real FID.

Real images: the png/jpg/jpeg/webp files of one folder (not searched recursively), at least MIN_REAL_IMAGES,
each read and checked as target images are (engine.target_images), centre-cropped to a square and resized
to the generator's resolution, so both sides reach the feature network alike. Generated: the same fixed
seeds as the CLIP scores (0 .. n-1, truncation 0.7). With few images both figures are noisy and biased
(FID most of all): use hundreds, and compare only figures measured with the same counts.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps
from torch import nn

from engine.errors import FidError
from engine.stylegan2 import Generator
from engine.target_images import IMAGE_EXTENSIONS, TargetImageError, load_image
from engine.weight_files import ensure_weight_file

MIN_REAL_IMAGES = 10  # below this a covariance of image features says nothing at all
MAX_REAL_IMAGES = 50_000
INCEPTION = "inception-fid"  # its row in engine.weight_files.WEIGHT_FILES
STANDIN = "nada-standin"  # torch-fidelity's name for the test stand-in


def find_real_images(folder: Path) -> list[Path]:
    """The real images FID/KID compare with, found (names only, nothing decoded); FidError says what is
    wrong: no such folder, no images in it, or fewer than MIN_REAL_IMAGES."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise FidError(f"--fid {folder} {what}: give a folder of real target-domain images "
                       f"({', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)})")
    try:
        files = [f for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS
                 and not f.name.startswith(".") and f.is_file()]
    except OSError as exc:
        raise FidError(f"--fid {folder} cannot be read ({exc.strerror or exc})") from None
    if len(files) < MIN_REAL_IMAGES:
        raise FidError(
            f"--fid {folder} holds {len(files)} image{'s' if len(files) != 1 else ''}; FID and KID need at least "
            f"{MIN_REAL_IMAGES} (hundreds or more for figures worth comparing): add real images of the target domain"
        )
    if len(files) > MAX_REAL_IMAGES:
        raise FidError(f"--fid {folder} holds {len(files)} images; at most {MAX_REAL_IMAGES} are read: use a subset")
    return files


class _Images(torch.utils.data.Dataset):
    """uint8 [3, H, W] tensors, what torch-fidelity's feature networks take."""

    def __init__(self, images: Sequence[torch.Tensor]) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _real_tensor(path: Path, side: int) -> torch.Tensor:
    try:
        img = load_image(path)
    except TargetImageError as exc:
        raise FidError(f"--fid: {exc}") from None
    square = ImageOps.fit(img, (side, side), Image.Resampling.BICUBIC)
    return torch.frombuffer(bytearray(square.tobytes()), dtype=torch.uint8).view(side, side, 3).permute(2, 0, 1)


@torch.no_grad()
def _generated(adapted: Generator, samples: int, chunk: int = 8) -> list[torch.Tensor]:
    from engine.sampling import seed_latents
    from engine.scores import SCORE_TRUNCATION

    device = adapted.latent_avg.device
    out: list[torch.Tensor] = []
    for i in range(0, samples, chunk):
        z = seed_latents(range(i, min(samples, i + chunk)), adapted.z_dim).to(device)
        img = adapted.render(z, truncation=SCORE_TRUNCATION, noise="const").float().cpu()
        out.extend(((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    return out


def _register_standin() -> None:
    import torch_fidelity
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    if STANDIN in FEATURE_EXTRACTORS_REGISTRY:  # once a process
        return

    class StandIn(FeatureExtractorBase):
        """A fixed random convnet (seed 0): 32 features of colour and coarse shape. For offline tests only."""

        def __init__(self, name: str, features_list: Sequence[str], **kwargs: Any) -> None:
            super().__init__(name, features_list)
            with torch.random.fork_rng():
                torch.manual_seed(0)
                self.net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                         nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.requires_grad_(False)
            self.eval()

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return ("32",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return "32"

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            x = torch.nn.functional.interpolate(x.float() / 127.5 - 1, size=(64, 64), mode="bilinear")
            return (self.net(x),)

    torch_fidelity.register_feature_extractor(STANDIN, StandIn)


def fid_kid(
    adapted: Generator,
    real_files: Sequence[Path],
    samples: int,
    device: torch.device | str,
    features: str = "inception",
    progress: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """{"fid", "kid", "fid_features", "fid_real_images"} of `samples` adapted renders against the real
    images. `features`: "inception" (the real thing; downloads its weights once) or "standin" (tests)."""
    import torch_fidelity

    if samples < 2:
        raise FidError("FID/KID need at least 2 generated samples: raise --samples")
    kwargs: dict[str, Any] = {}
    if features == "standin":
        _register_standin()
        kwargs["feature_extractor"] = STANDIN
        label = "stand-in features (a small random convnet for offline tests: NOT a real FID)"
    else:
        kwargs["feature_extractor"] = "inception-v3-compat"
        kwargs["feature_extractor_weights_path"] = str(ensure_weight_file(INCEPTION, progress))
        label = "Inception-v3 (torch-fidelity inception-v3-compat, 2048-d pool features)"
    side = adapted.size
    real = [_real_tensor(f, side) for f in real_files]
    fake = _generated(adapted, samples)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):  # it prints as it goes
        metrics = torch_fidelity.calculate_metrics(
            input1=_Images(fake), input2=_Images(real), fid=True, kid=True, cuda=torch.device(device).type == "cuda",
            kid_subset_size=min(1000, len(fake), len(real)), cache=False, verbose=False, samples_shuffle=False,
            batch_size=32, save_cpu_ram=True, **kwargs,  # save_cpu_ram: no loader processes (it is all in memory)
        )
    return {
        "fid": float(metrics["frechet_inception_distance"]),
        "kid": float(metrics["kernel_inception_distance_mean"]),
        "fid_features": label,
        "fid_real_images": len(real),
    }
