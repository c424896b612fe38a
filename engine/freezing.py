"""Adaptive layer freezing: which StyledConvs train, and when that choice is remade.

Selection (as in StyleGAN-NADA): take W+ codes of a batch from the frozen mapping, optimise only the
codes for a few SGD steps on the global CLIP loss through the trainable generator, and score each W+
index by its mean |delta w|. The top k indices that feed a StyledConv are trained (index 0 -> conv1,
index i >= 1 -> convs[i - 1]; the reference maps i >= 2 to convs[i - 2], one layer early).

Schedule (our addition): selection runs at step 0 and every `interval` steps after; in between, the
trained set is the top k(t) of the last scores, with k(t) = max(min_k, k0 - t // falloff).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from engine.stylegan2 import Generator


@dataclass(frozen=True)
class LayerSchedule:
    k0: int  # 0 = no selection: every StyledConv trains
    interval: int = 10
    falloff: int = 0  # 0 = k stays k0
    min_k: int = 1

    def k_at(self, step: int) -> int:
        if self.k0 == 0 or self.falloff == 0:
            return self.k0
        return max(min(self.min_k, self.k0), self.k0 - step // self.falloff)

    def selects_at(self, step: int) -> bool:
        return self.k0 > 0 and step % self.interval == 0

    def next_selection(self, step: int) -> int | None:
        """First step after `step` that reruns selection (None without selection)."""
        if self.k0 == 0:
            return None
        return (step // self.interval + 1) * self.interval


def rankable_indices(n_latent: int) -> int:
    """W+ indices that feed a StyledConv: all but the last, which feeds only the final to_rgb."""
    return n_latent - 1


def top_k(scores: Tensor, k: int) -> tuple[int, ...]:
    """The k best-scoring indices among those that feed a StyledConv, in ascending index order."""
    ranked = scores[: rankable_indices(len(scores))]
    k = min(k, len(ranked))
    # Stable tie-break by index so identical scores give identical sets on every platform.
    order = sorted(range(len(ranked)), key=lambda i: (-float(ranked[i]), i))
    return tuple(sorted(order[:k]))


def score_layers(
    generator: Generator,
    w: Tensor,
    global_loss: Callable[[Tensor], Tensor],
    iters: int = 1,
    lr: float = 0.01,
    noise: list[Tensor] | str = "const",
) -> Tensor:
    """Mean |delta w| per W+ index after `iters` SGD steps on the codes alone.

    The generator's parameters are switched to requires_grad=False for the duration, so the backward
    pass computes gradients for the codes only: no weight gradients are built or kept.
    """
    saved = [p.requires_grad for p in generator.parameters()]
    for p in generator.parameters():
        p.requires_grad_(False)
    try:
        w0 = generator.w_plus(w.detach())
        codes = w0.clone().requires_grad_(True)
        for _ in range(iters):
            loss = global_loss(generator.synthesis(codes, noise))
            (grad,) = torch.autograd.grad(loss, codes)
            with torch.no_grad():
                codes -= lr * grad
        return (codes.detach() - w0).abs().mean(-1).mean(0)
    finally:
        for p, flag in zip(generator.parameters(), saved, strict=True):
            p.requires_grad_(flag)
