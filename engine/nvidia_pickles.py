"""NVIDIA StyleGAN2 pickles (TensorFlow and stylegan2-ada-pytorch), read without running their code."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor


class PickleRefused(ValueError):
    """The pickle names something outside the allowed stubs (it may try to run code)."""


def read_nvidia_pickle(path: str | Path) -> tuple[dict[str, Tensor], Tensor | None, str]:
    """-> (rosinality g_ema state dict, latent_avg, format name)."""
    raise PickleRefused("NVIDIA pickle conversion is not available yet")
