"""What both generator families share about their latent space: the mean of mapped z (the truncation
centre when a file stores none) and truncation toward `latent_avg`. A generator derives from `LatentSpace`
and supplies `mapping`, `z_dim` and the `latent_avg` buffer."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LatentSpace(nn.Module):
    latent_avg: Tensor

    @property
    def z_dim(self) -> int:
        raise NotImplementedError

    def mapping(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def mean_latent(self, samples: int = 4096, seed: int = 0) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(samples, self.z_dim, generator=gen).to(self.latent_avg.device)
        return self.mapping(z).mean(0)

    def truncate(self, w: Tensor, truncation: float) -> Tensor:
        if truncation >= 1.0:
            return w
        return self.latent_avg + truncation * (w - self.latent_avg)
