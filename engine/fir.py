"""FIR filtering for StyleGAN2: NVIDIA's upfirdn2d semantics in plain PyTorch, and its fast depthwise forms.

`upfirdn2d` (zero insertion, pad, single-channel conv) is the reference formulation that sampling uses;
`blur_depthwise` and `upsample_transposed` give the same results as depthwise convs, which autograd
differentiates much faster. `Blur` and `Upsample` are the generator's filter modules (buffer names as in
rosinality's model), and keep their depthwise weights between calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BLUR_KERNEL = (1, 3, 3, 1)


def make_kernel(k: Sequence[float]) -> Tensor:
    t = torch.tensor(k, dtype=torch.float32)
    if t.ndim == 1:
        t = t[None, :] * t[:, None]
    return t / t.sum()


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad, FIR filter, downsample; the same result as NVIDIA's op."""
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    if up > 1:
        x = x.reshape(n * c, 1, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n * c, 1, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    if p0 < 0 or p1 < 0:  # negative padding crops
        x = x[:, :, max(-p0, 0) : x.shape[2] - max(-p1, 0), max(-p0, 0) : x.shape[3] - max(-p1, 0)]
    weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None]
    x = F.conv2d(x, weight)
    x = x[:, :, ::down, ::down]
    return x.reshape(n, c, x.shape[2], x.shape[3])


def depthwise_kernel(kernel: Tensor, channels: int, dtype: torch.dtype, flip: bool) -> Tensor:
    """`kernel` (flipped for a correlation) as a depthwise conv weight [channels, 1, kh, kw]."""
    k = torch.flip(kernel, [0, 1]) if flip else kernel
    return k.to(dtype)[None, None].expand(channels, 1, *kernel.shape).contiguous()


def blur_depthwise(x: Tensor, kernel: Tensor, pad: tuple[int, int], weight: Tensor | None = None) -> Tensor:
    """`upfirdn2d(x, kernel, pad=pad)` (pad >= 0) as one depthwise conv over all channels at once.

    The same multiply-adds; `upfirdn2d` folds channels into the batch and runs a 1-channel conv, which
    PyTorch's CPU kernels (im2col) differentiate very slowly. `weight`: depthwise_kernel(..., flip=True).
    """
    c = x.shape[1]
    p0, p1 = pad
    if weight is None:
        weight = depthwise_kernel(kernel, c, x.dtype, flip=True)
    if p0 == p1:  # the conv pads: one op fewer
        return F.conv2d(x, weight, padding=p0, groups=c)
    return F.conv2d(F.pad(x, (p0, p1, p0, p1)), weight, groups=c)


def upsample_transposed(
    x: Tensor, kernel: Tensor, factor: int, pad: tuple[int, int], weight: Tensor | None = None
) -> Tensor:
    """`upfirdn2d(x, kernel, up=factor, pad=pad)` as a depthwise stride-`factor` transposed conv.

    Zero insertion makes factor**2 - 1 of every factor**2 filter taps multiply zeros; the transposed
    conv visits only the real samples (the polyphase form: 1 / factor**2 of the multiply-adds).
    Requires pad[0] <= kernel size - 1 and pad[1] <= kernel size - factor (true for StyleGAN2's filters).
    `weight`: depthwise_kernel(..., flip=False).
    """
    c = x.shape[1]
    kh = kernel.shape[0]
    p0, p1 = pad
    # Output pixel o of upfirdn2d is pixel o + (kh - 1 - p0) of the transposed conv's full output, which
    # is (h - 1) * factor + kh long against upfirdn2d's h * factor + p0 + p1 - kh + 1.
    lo, hi = kh - 1 - p0, kh - factor - p1
    if lo < 0 or hi < 0:
        raise ValueError("upsample_transposed needs pad[0] <= kernel size - 1 and pad[1] <= kernel size - factor")
    if weight is None:
        weight = depthwise_kernel(kernel, c, x.dtype, flip=False)
    if lo == hi:
        return F.conv_transpose2d(x, weight, stride=factor, padding=lo, groups=c)
    out = F.conv_transpose2d(x, weight, stride=factor, groups=c)
    return out[:, :, lo : out.shape[2] - hi, lo : out.shape[3] - hi]

class _Filter(nn.Module):
    """A fixed FIR filter (buffer `kernel`) whose depthwise conv weight is built once per (channels, dtype,
    device) and kept (not under inference mode: such a tensor could not be saved for a later backward)."""

    flip = True

    def depthwise(self, x: Tensor) -> Tensor:
        cache: dict = self.__dict__.setdefault("_depthwise", {})
        key = (x.shape[1], x.dtype, x.device)
        if (weight := cache.get(key)) is None:
            weight = depthwise_kernel(self.kernel, x.shape[1], x.dtype, self.flip)
            if not torch.is_inference_mode_enabled():
                cache[key] = weight
        return weight


class Blur(_Filter):
    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        k = make_kernel(kernel)
        if upsample_factor > 1:
            k = k * upsample_factor**2
        self.register_buffer("kernel", k)
        self.pad = pad

    def forward(self, x: Tensor, fast: bool = False) -> Tensor:
        if fast:
            return blur_depthwise(x, self.kernel, self.pad, self.depthwise(x))
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(_Filter):
    flip = False

    def __init__(self, kernel: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)
        p = len(kernel) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor, fast: bool = False) -> Tensor:
        if fast:
            return upsample_transposed(x, self.kernel, self.factor, self.pad, self.depthwise(x))
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)
