"""Checks on tensors read from files: which ones hold a NaN or an inf (a damaged or diverged checkpoint
makes black images without this check)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


def nonfinite_names(tensors: Mapping[str, Tensor]) -> list[str]:
    """The names of the floating-point tensors that contain a NaN or an inf, in the mapping's order."""
    import torch

    items = [(k, v) for k, v in tensors.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not items:
        return []
    # A NaN or inf anywhere makes its tensor's sum non-finite (an inf can also come from summing large
    # finite values, so a non-finite sum is confirmed element-wise): one cheap reduction per tensor.
    sums = torch.stack([v.detach().float().sum() for _, v in items])
    suspects = [item for item, ok in zip(items, torch.isfinite(sums).tolist(), strict=True) if not ok]
    return [k for k, v in suspects if not bool(torch.isfinite(v).all())]
