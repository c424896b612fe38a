"""Turning generator outputs into pictures: fixed-seed renders, PIL conversion, grids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from engine.stylegan2 import Generator

# How a seed becomes z. "ours" (the default): torch's generator seeded with the seed. "nvidia": numpy's
# RandomState(seed).randn(1, z_dim), as NVIDIA's generate.py draws it, so seed 42 of a converted NVIDIA
# model is their seed 42 (their seeds must be below 2**32).
SEED_CONVENTIONS = ("ours", "nvidia")
NVIDIA_MAX_SEED = 2**32 - 1


def seed_latents(seeds: Sequence[int], z_dim: int, convention: str = "ours") -> Tensor:
    """One z [z_dim] per seed, independent of batch composition and device: seed 7 is always the same face."""
    if convention == "nvidia":
        z = np.stack([np.random.RandomState(s).randn(1, z_dim)[0] for s in seeds])
        return torch.from_numpy(z).float()  # NVIDIA's mapping casts its float64 z to float32 the same way
    if convention != "ours":
        raise ValueError(f"seed convention must be one of {SEED_CONVENTIONS}, got {convention!r}")
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


@torch.no_grad()
def render_seeds(
    generator: Generator, seeds: Sequence[int], truncation: float = 0.7, batch: int = 16, convention: str = "ours"
) -> Tensor:
    device = generator.latent_avg.device
    z = seed_latents(seeds, generator.z_dim, convention)
    out = [
        generator.render(z[i : i + batch].to(device), truncation=truncation, noise="const").float().cpu()
        for i in range(0, len(seeds), batch)
    ]
    return torch.cat(out)


def to_pil(images: Tensor) -> list[Image.Image]:
    """[N, 3, H, W] in [-1, 1] -> RGB images (values outside the range are clipped)."""
    arr = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(np.ascontiguousarray(a.permute(1, 2, 0).numpy())) for a in arr]


def grid(images: Sequence[Image.Image], columns: int | None = None, pad: int = 0) -> Image.Image:
    """Tile equally sized images row by row."""
    if not images:
        raise ValueError("grid() needs at least one image")
    cols = columns or len(images)
    rows = (len(images) + cols - 1) // cols
    w, h = images[0].size
    out = Image.new("RGB", (cols * w + (cols - 1) * pad, rows * h + (rows - 1) * pad))
    for i, img in enumerate(images):
        out.paste(img, ((i % cols) * (w + pad), (i // cols) * (h + pad)))
    return out
