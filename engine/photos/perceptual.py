"""The perceptual distance that photo inversion minimises: LPIPS on VGG16 (the `lpips` package) for real
generators, and a weight-free stand-in for the demo models.

LPIPS: the package's own linear-layer weights ship inside its wheel; its VGG16 backbone is built empty
(`pnet_rand=True`, so lpips never calls torch.hub) and filled from torchvision's ImageNet file, which
`engine.weight_files` downloads and we check against the hash prefix in its name. Images larger than
256 px are area-downsampled to 256 first, as NVIDIA's projector does: VGG's features were learnt at about
that scale, and it keeps the cost flat at 1024 px.

Inversion compares many renders with the same photos, so each distance splits in two: `features(y)` of
the photos, computed once, and `compare(x, features)` for each render (`forward(x, y)` does both). For
LPIPS that saves a VGG16 forward pass per photo and step, about a tenth of a step on the CPU.

Demo stand-in (`PixelGradientDistance`): mean absolute difference of pixels and of their horizontal and
vertical gradients, over an image pyramid down to 8 px. It needs no weights and no network; it is not a
learnt perceptual metric, and outputs made with it say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LPIPS_SIZE = 256
VGG_HASH_PREFIX = "397923af"  # torchvision names its files <arch>-<first 8 hex of the sha256>.pth


class PixelGradientDistance(nn.Module):
    """Multi-scale pixel + gradient L1 distance per sample ([N] from two [N, 3, H, W] batches in [-1, 1])."""

    name = "demo stand-in (multi-scale pixel/gradient distance, not LPIPS)"

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.compare(x, self.features(y))

    def features(self, y: Tensor) -> Tensor:
        """Nothing to precompute: the photos themselves."""
        return y

    def compare(self, x: Tensor, y: Tensor) -> Tensor:
        total = x.new_zeros(x.shape[0])
        while True:
            d = x - y
            total = total + d.abs().mean(dim=(1, 2, 3))
            total = total + (d[..., 1:, :] - d[..., :-1, :]).abs().mean(dim=(1, 2, 3))
            total = total + (d[..., :, 1:] - d[..., :, :-1]).abs().mean(dim=(1, 2, 3))
            if min(x.shape[-2:]) <= 8:
                return total
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)


class LpipsVgg(nn.Module):
    """LPIPS (VGG16, v0.1) per sample, inputs in [-1, 1] downsampled to at most LPIPS_SIZE px."""

    name = "LPIPS (VGG16)"

    def __init__(self, vgg_state: dict[str, Tensor] | None) -> None:
        """`vgg_state`: torchvision's VGG16 tensors; None keeps random ones (benchmarks: same cost)."""
        super().__init__()
        import warnings

        import lpips

        with warnings.catch_warnings():  # torchvision's notice about lpips' old `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            self.lpips = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
        if vgg_state is not None:
            load_backbone(self.lpips.net, vgg_state)
        self.eval().requires_grad_(False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.compare(x, self.features(y))

    def features(self, y: Tensor) -> list[Tensor]:
        """The unit-normalised VGG16 activations of `y` at LPIPS' five layers."""
        import lpips

        if y.shape[-1] > LPIPS_SIZE:
            y = F.interpolate(y, size=(LPIPS_SIZE, LPIPS_SIZE), mode="area")
        return [lpips.normalize_tensor(f) for f in self.lpips.net(self.lpips.scaling_layer(y))]

    def compare(self, x: Tensor, y_features: list[Tensor]) -> Tensor:
        """LPIPS between `x` and the images of `y_features`, as `lpips.LPIPS.forward` computes it."""
        terms = [lin(f.sub(g).square()).mean([2, 3], keepdim=True)
                 for lin, f, g in zip(self.lpips.lins, self.features(x), y_features, strict=True)]
        return sum(terms[1:], terms[0]).reshape(-1)


def load_backbone(net: nn.Module, vgg_state: dict[str, Tensor]) -> None:
    """Copy torchvision's `features.<i>.*` tensors into lpips' slices (`slice<k>.<i>.*`, the same i)."""
    with torch.no_grad():
        for name, param in net.named_parameters():
            _slice, index, kind = name.split(".")
            key = f"features.{index}.{kind}"
            if key not in vgg_state or vgg_state[key].shape != param.shape:
                raise ValueError(f"the VGG16 weights file has no {key} of shape {tuple(param.shape)}")
            param.copy_(vgg_state[key])


def read_vgg16(progress: Callable[..., Any] | None = None) -> dict[str, Tensor]:
    """torchvision's VGG16 state dict from our verified download (only the conv features are kept)."""
    from engine.download import sha256_file
    from engine.weight_files import ensure_weight_file

    path = ensure_weight_file("vgg16-lpips", progress)
    if not sha256_file(path).startswith(VGG_HASH_PREFIX):
        path.unlink(missing_ok=True)
        raise ValueError(f"{path} is not torchvision's VGG16 (its sha256 does not start with {VGG_HASH_PREFIX}); "
                         "it was removed: run again to download it afresh")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if k.startswith("features.")}


def perceptual_distance(demo: bool, device: str | torch.device = "cpu",
                        progress: Callable[..., Any] | None = None) -> nn.Module:
    """The distance for a session: the stand-in for the demo models, LPIPS otherwise (may download)."""
    module: nn.Module = PixelGradientDistance() if demo else LpipsVgg(read_vgg16(progress))
    return module.to(device)
