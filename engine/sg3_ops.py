"""StyleGAN3's low-level ops in plain PyTorch: filter design, the filtered leaky ReLU and the modulated conv.

Two ways to run the filtered leaky ReLU (bias, upsample + FIR, leaky ReLU x gain, clamp, FIR + downsample),
with the same result to float rounding:
- "reference" (what sampling uses): NVIDIA's published semantics step by step: zero insertion, the stored
  padding, a full-rate conv with the flipped filter (separable filters width first, then height), and a
  full-rate down filter whose output is then subsampled.
- "polyphase" (what training uses): the upsample is a strided transposed conv (no multiplications by the
  inserted zeros), the down filter a strided conv (no outputs computed only to be dropped). With
  gradients it runs as `FilteredLReLU`, an autograd function that keeps one byte per upsampled value
  (which slope the activation took, or that it was clamped) instead of the float tensors autograd
  would keep at the upsampled rate (the upsampled input, the activation and the clamp's input).

Filter design (only needed for freshly built generators; files store their filters): a Kaiser-windowed
sinc (separable) or a Kaiser-windowed jinc (radially symmetric, the r config's down filters), scaled to
unit DC gain, as the StyleGAN3 paper describes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

Padding = tuple[int, int, int, int]  # x0, x1, y0, y1 (as the files store it)


# ----- filter design -----------------------------------------------------------------------------------
def _kaiser_beta(atten: float) -> float:
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def _kaiser_window(numtaps: int, width: float, fs: float) -> np.ndarray:
    """Kaiser window whose beta gives the stopband attenuation of a transition band `width` wide."""
    atten = 2.285 * (numtaps - 1) * math.pi * (width / (fs / 2)) + 7.95
    return np.kaiser(numtaps, _kaiser_beta(atten))


def design_lowpass(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> Tensor | None:
    """A windowed low-pass filter (1-D, or 2-D radially symmetric); None for a single tap (no filter)."""
    if numtaps == 1:
        return None
    if not radial:
        m = np.arange(numtaps) - (numtaps - 1) / 2
        c = cutoff / (fs / 2)
        h = c * np.sinc(c * m) * _kaiser_window(numtaps, width, fs)
        return torch.as_tensor(h / h.sum(), dtype=torch.float32)
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = torch.as_tensor(np.hypot(*np.meshgrid(x, x)), dtype=torch.float64)
    a = 2 * math.pi * cutoff
    safe = torch.where(r == 0, torch.ones_like(r), r)
    jinc = torch.where(r == 0, torch.full_like(r, cutoff), torch.special.bessel_j1(a * safe) / (math.pi * safe))
    w = _kaiser_window(numtaps, width, fs)
    f = jinc.numpy() * np.outer(w, w)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


# ----- FIR resampling ------------------------------------------------------------------------------------
def _depthwise(f: Tensor, channels: int, dtype: torch.dtype, axis: str) -> Tensor:
    """A 1-D filter as a depthwise weight along width ("x"), height ("y"), or a 2-D one as is ("xy")."""
    f = f.to(dtype)
    if axis == "x":
        f = f[None, :]
    elif axis == "y":
        f = f[:, None]
    return f[None, None].expand(channels, 1, *f.shape)


def upfirdn_reference(x: Tensor, f: Tensor | None, up: int = 1, down: int = 1,
                      padding: Padding = (0, 0, 0, 0), gain: float = 1.0) -> Tensor:
    """Zero insertion, pad (negative crops), conv with the flipped filter, subsample: the published op."""
    n, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, list(padding))  # F.pad crops where a pad is negative
    if f is not None:
        f = torch.flip(f * gain ** (f.ndim / 2), list(range(f.ndim)))
        if f.ndim == 2:
            x = F.conv2d(x, _depthwise(f, c, x.dtype, "xy"), groups=c)
        else:
            x = F.conv2d(x, _depthwise(f, c, x.dtype, "x"), groups=c)
            x = F.conv2d(x, _depthwise(f, c, x.dtype, "y"), groups=c)
    elif gain != 1:
        x = x * gain
    return x[:, :, ::down, ::down]


def upsample_polyphase(x: Tensor, f: Tensor | None, up: int, padding: Padding) -> Tensor:
    """`upfirdn_reference(x, f, up=up, padding=padding, gain=up**2)` as strided transposed convs.

    A transposed conv with stride `up` and the unflipped filter gives y[j] = sum_i x[i] f[j - i up], the
    reference's output shifted by taps - 1 - pad0; the pads below shift and extend it to the same span.
    """
    if f is None or up == 1:
        return upfirdn_reference(x, f, up=up, padding=padding, gain=up**2)
    c = x.shape[1]
    taps = f.shape[-1]
    px0, px1, py0, py1 = padding
    x = F.conv_transpose2d(x, _depthwise(f * up, c, x.dtype, "x"), stride=(1, up), groups=c)
    x = F.conv_transpose2d(x, _depthwise(f * up, c, x.dtype, "y"), stride=(up, 1), groups=c)
    return F.pad(x, [px0 - taps + 1, px1 + up - taps, py0 - taps + 1, py1 + up - taps])


def downsample_strided(x: Tensor, f: Tensor | None, down: int) -> Tensor:
    """`upfirdn_reference(x, f, down=down)` computing only the outputs that are kept."""
    if f is None:
        return x[:, :, ::down, ::down]
    c = x.shape[1]
    f = torch.flip(f, list(range(f.ndim)))
    if f.ndim == 2:
        return F.conv2d(x, _depthwise(f, c, x.dtype, "xy"), stride=down, groups=c)
    x = F.conv2d(x, _depthwise(f, c, x.dtype, "x"), stride=(1, down), groups=c)
    return F.conv2d(x, _depthwise(f, c, x.dtype, "y"), stride=(down, 1), groups=c)


# ----- filtered leaky ReLU --------------------------------------------------------------------------------
def _activate(x: Tensor, gain: float, slope: float, clamp: float | None) -> Tensor:
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if gain != 1:
        x = x * gain
    return x if clamp is None else x.clamp(-clamp, clamp)


def filtered_lrelu_reference(x: Tensor, bias: Tensor, fu: Tensor | None, fd: Tensor | None, up: int, down: int,
                             padding: Padding, gain: float, slope: float, clamp: float | None) -> Tensor:
    x = x + bias.to(x.dtype).view(1, -1, 1, 1)
    x = upfirdn_reference(x, fu, up=up, padding=padding, gain=up**2)
    return upfirdn_reference(_activate(x, gain, slope, clamp), fd, down=down)


class FilteredLReLU(torch.autograd.Function):
    """The polyphase filtered leaky ReLU, keeping one byte per upsampled value for the backward pass.

    The code saved per upsampled value is 2 (positive: slope 1), 1 (negative: `slope`) or 0 (clamped:
    no gradient); the resampling steps are linear, so their backward passes are vector-Jacobian products
    that need no saved values at all.
    """

    @staticmethod
    def forward(ctx, x: Tensor, bias: Tensor, fu: Tensor | None, fd: Tensor | None, up: int, down: int,  # type: ignore[override]
                padding: Padding, gain: float, slope: float, clamp: float | None) -> Tensor:
        u = upsample_polyphase(x + bias.to(x.dtype).view(1, -1, 1, 1), fu, up, padding)
        a = _activate(u, gain, slope, clamp)
        code = (u > 0).to(torch.uint8) + 1
        if clamp is not None:
            code = code * (a.abs() < clamp)
        ctx.save_for_backward(code, fu, fd)
        ctx.conf = (x.shape, x.dtype, up, down, padding, gain, slope)
        return downsample_strided(a, fd, down)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        code, fu, fd = ctx.saved_tensors
        shape, dtype, up, down, padding, gain, slope = ctx.conf
        with torch.enable_grad():
            a0 = torch.zeros(code.shape, dtype=grad.dtype, device=grad.device, requires_grad=True)
            (g,) = torch.autograd.grad(downsample_strided(a0, fd, down), a0, grad)
            g = g * torch.where(code == 2, gain, torch.where(code == 1, gain * slope, 0.0)).to(g.dtype)
            x0 = torch.zeros(shape, dtype=grad.dtype, device=grad.device, requires_grad=True)
            (gx,) = torch.autograd.grad(upsample_polyphase(x0, fu, up, padding), x0, g)
        gb = gx.sum((0, 2, 3)) if ctx.needs_input_grad[1] else None
        return gx.to(dtype), gb, None, None, None, None, None, None, None, None


# Off only to measure what the autograd function saves (engine.bench_sg3 --plain-autograd).
_SAVING_FUNCTION: ContextVar[bool] = ContextVar("sg3_saving_function", default=True)


@contextlib.contextmanager
def plain_autograd() -> Iterator[None]:
    """Within the block, the polyphase path lets autograd keep its own tensors (for measurements)."""
    token = _SAVING_FUNCTION.set(False)
    try:
        yield
    finally:
        _SAVING_FUNCTION.reset(token)


def filtered_lrelu(x: Tensor, bias: Tensor, fu: Tensor | None, fd: Tensor | None, up: int, down: int,
                   padding: Padding, gain: float, slope: float, clamp: float | None, path: str) -> Tensor:
    """Bias, upsample + filter, leaky ReLU x gain, clamp, filter + downsample; `path` is "reference" or
    "polyphase" (module docstring)."""
    if path == "reference":
        return filtered_lrelu_reference(x, bias, fu, fd, up, down, padding, gain, slope, clamp)
    if torch.is_grad_enabled() and (x.requires_grad or bias.requires_grad) and _SAVING_FUNCTION.get():
        return FilteredLReLU.apply(x, bias, fu, fd, up, down, padding, gain, slope, clamp)
    u = upsample_polyphase(x + bias.to(x.dtype).view(1, -1, 1, 1), fu, up, padding)
    return downsample_strided(_activate(u, gain, slope, clamp), fd, down)


# ----- modulated conv ------------------------------------------------------------------------------------
def modulated_conv(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool, padding: int,
                   input_gain: Tensor, fused: bool) -> Tensor:
    """Modulate `weight` [O, I, k, k] per sample by `styles` [N, I], optionally demodulate, then scale the
    input channels by `input_gain`; run as one grouped conv (`fused`, the published form) or as an
    ordinary conv between input and output scalings (the same numbers, cheaper to differentiate)."""
    n = x.shape[0]
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    if fused:
        w = weight.unsqueeze(0) * styles.view(n, 1, -1, 1, 1)
        if demodulate:
            w = w * (w.square().sum([2, 3, 4], keepdim=True) + 1e-8).rsqrt()
        w = w * input_gain.view(1, 1, -1, 1, 1) if input_gain.ndim else w * input_gain
        out = F.conv2d(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, *w.shape[2:]), padding=padding, groups=n)
        return out.reshape(n, -1, *out.shape[2:])
    out = F.conv2d(x * (styles * input_gain).view(n, -1, 1, 1), weight, padding=padding)
    if demodulate:
        demod = (styles.square() @ weight.square().sum([2, 3]).t() + 1e-8).rsqrt()
        out = out * demod.view(n, -1, 1, 1)
    return out
