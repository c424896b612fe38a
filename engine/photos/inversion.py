"""Finding W+ codes whose render reproduces a batch of photos (GAN inversion by optimisation).

Each photo's W+ code starts at the generator's mean latent (`latent_avg`, every index) and Adam moves it
to lower  perceptual(render, photo) + MSE_WEIGHT * mean((render - photo)^2)  with the learning rate
warmed up over the first 5% of the steps and cosine-decayed to zero over the last 25% (the shape of
NVIDIA's projector schedule, our own code).

Noise: the generator's stored noise maps stay fixed (`noise="const"`); they are not optimised. So a W+
code alone reproduces its render through the frozen generator and through any adaptation of it (what
`generate --latents` relies on), and photo detail cannot hide in noise maps that an adaptation would then
carry over unchanged. Hence no noise regularisation either: it only exists to keep optimised noise maps
from soaking up the image.

Batching: the photos of a batch are optimised together, each with its own code, the loss being the sum
of the per-photo losses, so each code gets the gradient it would get alone (Adam is per element); only
the numerics of batched convolutions differ. On the CPU the steps run inside `reuse_freed_memory()`
(engine.photos.heap): without it, a batch's large tensors were mapped afresh at every step and a batch
cost more per photo than one photo alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from engine.photos.heap import reuse_freed_memory
from engine.stylegan2 import Generator

LEARNING_RATE = 0.1
MSE_WEIGHT = 1.0
WARMUP = 0.05
RAMPDOWN = 0.25

# on_step(step, per-photo losses [B], current renders [B, 3, H, W] or None between previews)
StepFn = Callable[[int, list[float], Tensor | None], None]


@dataclass
class BatchInversion:
    w_plus: Tensor  # [B, n_latent, style_dim], detached
    losses: list[float]  # each photo's loss at the last step
    renders: Tensor  # [B, 3, H, W] in [-1, 1] from the final codes, detached
    stopped: bool = False


def learning_rate(step: int, steps: int, base: float | None = None) -> float:
    """Warm-up, plateau, cosine ramp-down to 0 (step 0-based)."""
    t = step / max(1, steps)
    ramp_up = min(1.0, t / WARMUP)
    ramp_down = 0.5 - 0.5 * math.cos(math.pi * min(1.0, (1.0 - t) / RAMPDOWN))
    return (LEARNING_RATE if base is None else base) * ramp_up * ramp_down


class ReconstructionLoss:
    """Per-photo loss [B] of renders against fixed photos: perceptual distance plus weighted pixel MSE.
    The distance's features of the photos are computed once, here, not at every step."""

    def __init__(self, distance: nn.Module, targets: Tensor) -> None:
        self.distance, self.targets = distance, targets
        with torch.no_grad():
            self.target_features = distance.features(targets)

    def __call__(self, images: Tensor) -> Tensor:
        mse = (images - self.targets).pow(2).mean(dim=(1, 2, 3))
        return self.distance.compare(images, self.target_features) + MSE_WEIGHT * mse


def invert_batch(
    generator: Generator,
    targets: Tensor,
    distance: nn.Module,
    steps: int,
    on_step: StepFn | None = None,
    preview_every: int = 0,
    stop: Callable[[], bool] | None = None,
) -> BatchInversion:
    """Optimise one W+ code per target ([B, 3, H, W] in [-1, 1], on the generator's device)."""
    with reuse_freed_memory(targets.device.type == "cpu"):
        return _optimise(generator, targets, distance, steps, on_step, preview_every, stop)


def _optimise(generator: Generator, targets: Tensor, distance: nn.Module, steps: int, on_step: StepFn | None,
              preview_every: int, stop: Callable[[], bool] | None) -> BatchInversion:
    generator.requires_grad_(False)
    start = generator.latent_avg.detach().reshape(1, 1, -1)
    w = start.repeat(targets.shape[0], generator.n_latent, 1).clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=LEARNING_RATE, betas=(0.9, 0.999))
    losses = [math.nan] * targets.shape[0]
    loss_of = ReconstructionLoss(distance, targets)
    stopped = False
    for step in range(steps):
        if stop is not None and stop():
            stopped = True
            break
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, steps)
        images = generator.synthesis(w, noise="const")
        per_photo = loss_of(images)
        opt.zero_grad(set_to_none=True)
        per_photo.sum().backward()
        opt.step()
        if on_step is not None:
            losses = per_photo.detach().cpu().tolist()
            show = preview_every > 0 and ((step + 1) % preview_every == 0 or step + 1 == steps)
            on_step(step + 1, losses, images.detach() if show else None)
    with torch.no_grad():
        renders = generator.synthesis(w, noise="const")
        losses = loss_of(renders).cpu().tolist()
    return BatchInversion(w.detach(), losses, renders, stopped)


def psnr_db(images: Tensor, targets: Tensor) -> list[float]:
    """Peak signal-to-noise ratio per image (both in [-1, 1], renders clamped), in dB on the 0..1 scale."""
    a = (images.clamp(-1, 1) + 1) / 2
    b = (targets.clamp(-1, 1) + 1) / 2
    mse = (a - b).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-12)
    return (-10.0 * torch.log10(mse)).cpu().tolist()
