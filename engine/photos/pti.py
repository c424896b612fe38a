"""Pivotal tuning (PTI, Roich et al. 2021): after inversion, tune a copy of the frozen generator so that
the found code (the pivot, held fixed) reproduces the photo more closely, then carry the session's
adaptation over to the tuned copy by adding its weight change (adapted minus start) to it.

It helps when the plain inversion misses identity detail (real photos, off-domain faces): the tuned copy
reconstructs better, and the adaptation, a weight change, applies to it as it did to the original. It
costs a generator copy per photo and N more optimisation steps through the whole generator, and the
tuned weights are not kept: the latent file renders without them elsewhere.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn

from engine.photos.heap import reuse_freed_memory
from engine.photos.inversion import ReconstructionLoss
from engine.stylegan2 import Generator

PTI_LEARNING_RATE = 3e-4


def pivotal_tune(
    frozen: Generator,
    w_pivot: Tensor,
    target: Tensor,
    distance: nn.Module,
    steps: int,
    stop: Callable[[], bool] | None = None,
) -> Generator:
    """A copy of `frozen` tuned for `steps` so that w_pivot [1, L, D] renders closer to target [1, 3, H, W]."""
    tuned = copy.deepcopy(frozen).requires_grad_(False)
    params = tuned.synthesis_parameters()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=PTI_LEARNING_RATE)
    w = w_pivot.detach()
    loss_of = ReconstructionLoss(distance, target)
    with reuse_freed_memory(target.device.type == "cpu"):
        for _ in range(steps):
            if stop is not None and stop():
                break
            loss = loss_of(tuned.synthesis(w, noise="const")).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return tuned.requires_grad_(False).eval()


@torch.no_grad()
def apply_adaptation(tuned: Generator, start: Generator, adapted: Generator) -> Generator:
    """A copy of `tuned` plus the session's weight change (adapted - start), tensor by tensor."""
    out = copy.deepcopy(tuned)
    s = dict(start.named_parameters())
    a = dict(adapted.named_parameters())
    for name, p in out.named_parameters():
        p.add_(a[name] - s[name])
    return out
