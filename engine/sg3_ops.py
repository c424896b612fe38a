"""StyleGAN3's low-level ops in plain PyTorch: filter design, the filtered leaky ReLU and the modulated conv.

The filtered leaky ReLU (bias, upsample + FIR, leaky ReLU x gain, clamp, FIR + downsample) runs in the
polyphase form for sampling and training alike: the upsample is a strided transposed conv (no
multiplications by inserted zeros), the down filter a strided conv (no outputs computed only to be
dropped), separable filters as a width pass then a height pass (2-D filters of low rank, such as the r
config's radial down filters, as a sum of such passes). It equals NVIDIA's published op (zero insertion,
padding, flipped-filter conv, subsampling) to float rounding; tests/_sg3_fakes.py re-derives that op.
With gradients it runs as `FilteredLReLU`, an autograd function that keeps one byte per upsampled value
(which slope the activation took, or that it was clamped) instead of the float tensors autograd would keep
at the upsampled rate, and whose backward pass is the transposed resampling ops.

Filter design (only needed for freshly built generators; files store their filters): a Kaiser-windowed
sinc (separable) or a Kaiser-windowed jinc (radially symmetric, the r config's down filters), scaled to
unit DC gain, as the StyleGAN3 paper describes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar
from fractions import Fraction

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
# A resampling step is a list of depthwise passes (weight, stride, conv padding): one 2-D pass, or for a
# separable filter (f = sum of r outer products fy (x) fx) a width pass into r channels per channel and a
# height pass that sums them. Up: transposed convs (the polyphase form); down: strided convs; each one's
# backward is the other with the same weights.
Pass = tuple[Tensor, tuple[int, int], tuple[int, int]]  # weight, stride, conv padding; groups = channels
_RANK_TOL = 1e-7  # singular values below this share of the largest are below float32 rounding of the taps


def _separable_terms(f: Tensor) -> tuple[Tensor, Tensor] | None:
    """(fy [r, Ky], fx [r, Kx]) with f = sum_i outer(fy_i, fx_i); None when a 2-D filter's rank is too high
    for two 1-D passes to be cheaper than one 2-D pass (random test filters; the r config's radial down
    filters have rank 3 at float precision)."""
    if f.ndim == 1:
        return f[None], f[None]
    u, sv, vh = torch.linalg.svd(f.double())
    r = int((sv > sv[0] * _RANK_TOL).sum())
    if 4 * r > min(f.shape):
        return None
    return (u[:, :r] * sv[:r]).t().to(f.dtype), vh[:r].to(f.dtype)


def _passes(f: Tensor, channels: int, factor: int, crop: tuple[int, int], transposed: bool) -> list[Pass]:
    """Depthwise passes of `f` (scaled, flipped for a down filter, by the caller) over `channels`; `crop`
    (y, x) is what a transposed conv's padding trims from each side."""
    c = channels
    terms = _separable_terms(f)
    if terms is None:
        return [(f[None, None].expand(c, 1, *f.shape).contiguous(), (factor, factor), crop)]
    fy, fx = terms
    r = fy.shape[0]
    wx = fx.reshape(1, r, 1, -1).expand(c, r, 1, -1)
    wy = fy.reshape(1, r, -1, 1).expand(c, r, -1, 1)
    if transposed:  # conv_transpose2d weights: [in, out / groups, kh, kw]
        return [(wx.contiguous(), (1, factor), (0, crop[1])), (wy.reshape(c * r, 1, -1, 1).contiguous(), (factor, 1),
                                                               (crop[0], 0))]
    return [(wx.reshape(c * r, 1, 1, -1).contiguous(), (1, factor), (0, 0)), (wy.contiguous(), (factor, 1), (0, 0))]


def _conv(x: Tensor, p: Pass, groups: int, transposed: bool, output_padding: tuple[int, int] = (0, 0)) -> Tensor:
    w, stride, pad = p
    if transposed:
        return F.conv_transpose2d(x, w.to(x.device, x.dtype), stride=stride, padding=pad, output_padding=output_padding,
                                  groups=groups)
    return F.conv2d(x, w.to(x.device, x.dtype), stride=stride, padding=pad, groups=groups)


class Resampling:
    """The up and down steps of one filtered leaky ReLU, with the activation gain folded into the up filter
    (leaky ReLU commutes with a positive scale), and the adjoints its backward pass uses."""

    def __init__(self, fu: Tensor | None, fd: Tensor | None, up: int, down: int, padding: Padding, gain: float,
                 channels: int) -> None:
        self.channels, self.gain = channels, gain
        fu = torch.ones(1) if fu is None else fu
        ky, kx = fu.shape[0], fu.shape[-1]
        px0, px1, py0, py1 = padding
        # The full transposed conv gives (n - 1) up + k outputs; the published padding keeps [k - 1 - p0,
        # ... - (k - up - p1)); the conv's own padding trims the shared part, `self.trim` the rest.
        cuts = (ky - 1 - py0, ky - up - py1, kx - 1 - px0, kx - up - px1)
        cy = max(0, min(cuts[0], cuts[1], ky - 1))
        cx = max(0, min(cuts[2], cuts[3], kx - 1))
        self.trim = (cuts[0] - cy, cuts[1] - cy, cuts[2] - cx, cuts[3] - cx)
        self.up_passes: list[Pass] = []
        if up > 1 or fu.numel() > 1 or cy or cx:
            if fu.ndim == 1:  # both passes use fu: `up` per axis (the published gain up**2), `gain` once
                self.up_passes = _passes(fu * up, channels, up, (cy, cx), transposed=True)
                w, stride, pad = self.up_passes[0]
                self.up_passes[0] = (w * gain, stride, pad)
            else:
                self.up_passes = _passes(fu * (up**2 * gain), channels, up, (cy, cx), transposed=True)
            self.gain = 1.0
        self.down_passes: list[Pass] = []
        if fd is not None:
            self.down_passes = _passes(torch.flip(fd, list(range(fd.ndim))), channels, down, (0, 0), transposed=False)
        elif down > 1:
            self.down_passes = [(torch.ones(channels, 1, 1, 1), (down, down), (0, 0))]

    def upsample(self, x: Tensor) -> Tensor:
        """Upsample and filter (times the activation gain); the result may be a view (no copy)."""
        for p in self.up_passes:
            x = _conv(x, p, self.channels, transposed=True)
        t0, t1, t2, t3 = self.trim
        if min(self.trim) >= 0:
            return x[:, :, t0:x.shape[2] - t1, t2:x.shape[3] - t3]
        return F.pad(x, [-t2, -t3, -t0, -t1])

    def upsample_adjoint(self, g: Tensor) -> Tensor:
        t0, t1, t2, t3 = self.trim
        if any(self.trim):
            g = F.pad(g, [t2, t3, t0, t1])
        for p in reversed(self.up_passes):
            g = _conv(g, p, self.channels, transposed=False)
        return g if self.gain == 1 else g * self.gain

    def downsample(self, a: Tensor) -> tuple[Tensor, list[torch.Size]]:
        """Filter and downsample, computing only the outputs kept; also each pass's input shape."""
        shapes = []
        for p in self.down_passes:
            shapes.append(a.shape)
            a = _conv(a, p, self.channels, transposed=False)
        return a, shapes

    def downsample_adjoint(self, g: Tensor, shapes: list[torch.Size]) -> Tensor:
        for p, shape in zip(reversed(self.down_passes), reversed(shapes), strict=True):
            w, (sy, sx), _ = p
            extra = (shape[2] - ((g.shape[2] - 1) * sy + w.shape[2]), shape[3] - ((g.shape[3] - 1) * sx + w.shape[3]))
            g = _conv(g, p, self.channels, transposed=True, output_padding=extra)
        return g


# ----- filtered leaky ReLU --------------------------------------------------------------------------------
def _activate(u: Tensor, slope: float, clamp: float | None, gain: float, in_place: bool) -> Tensor:
    """Leaky ReLU (times `gain`, when the up filter did not take it), clamp; `in_place` overwrites `u`."""
    if not in_place:
        u = F.leaky_relu(u, slope) if slope != 1 else u
        u = u * gain if gain != 1 else u
        return u if clamp is None else u.clamp(-clamp, clamp)
    if slope != 1:
        F.leaky_relu_(u, slope)
    if gain != 1:
        u.mul_(gain)
    return u if clamp is None else u.clamp_(-clamp, clamp)


class FilteredLReLU(torch.autograd.Function):
    """The filtered leaky ReLU keeping one byte per upsampled value for the backward pass.

    The byte saved per upsampled value is the activation's slope there times a scale q: q (positive), p
    (negative, `slope` = p / q) or 0 (clamped), so the backward pass multiplies by it in one pass; the
    resampling steps are linear, and their backward passes are the transposed ops (`Resampling.*_adjoint`),
    so no float tensor at the upsampled rate is kept.
    """

    @staticmethod
    def forward(ctx, x: Tensor, bias: Tensor, rs: Resampling, slope: float,  # type: ignore[override]
                clamp: float | None) -> Tensor:
        u = rs.upsample(x + bias.to(x.dtype).view(1, -1, 1, 1))  # a fresh tensor (or a view of one)
        ratio = Fraction(slope).limit_denominator(255)
        if float(ratio) != slope or ratio <= 0:
            raise ValueError(f"the filtered leaky ReLU's slope must be p / q with 0 < p <= q <= 255, not {slope}")
        p, q = (torch.tensor(v, dtype=torch.uint8, device=u.device) for v in (ratio.numerator, ratio.denominator))
        code = torch.where(u > 0, q, p)
        if clamp is not None:  # the clamp acts on leaky ReLU x gain, which has u's sign
            limit = clamp / rs.gain
            code.masked_fill_((u > limit).logical_or_(u < -limit / slope), 0)
        out, shapes = rs.downsample(_activate(u, slope, clamp, rs.gain, in_place=True))
        ctx.save_for_backward(code)
        ctx.conf = (x.dtype, rs, ratio.denominator, shapes)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (code,) = ctx.saved_tensors
        dtype, rs, q, shapes = ctx.conf
        gx = rs.upsample_adjoint(rs.downsample_adjoint(grad, shapes).mul_(code))
        gx = gx / q if q != 1 else gx
        gb = gx.sum((0, 2, 3)) if ctx.needs_input_grad[1] else None
        return gx.to(dtype), gb, None, None, None


# Off only to measure what the autograd function saves (engine.bench_sg3 --plain-autograd).
_SAVING_FUNCTION: ContextVar[bool] = ContextVar("sg3_saving_function", default=True)


@contextlib.contextmanager
def plain_autograd() -> Iterator[None]:
    """Within the block, the filtered leaky ReLU lets autograd keep its own tensors (for measurements)."""
    token = _SAVING_FUNCTION.set(False)
    try:
        yield
    finally:
        _SAVING_FUNCTION.reset(token)


def filtered_lrelu(x: Tensor, bias: Tensor, fu: Tensor | None, fd: Tensor | None, up: int, down: int,
                   padding: Padding, gain: float, slope: float, clamp: float | None) -> Tensor:
    """Bias, upsample + filter, leaky ReLU x gain, clamp, filter + downsample (module docstring)."""
    rs = Resampling(fu, fd, up, down, padding, gain, x.shape[1])
    if torch.is_grad_enabled() and (x.requires_grad or bias.requires_grad) and _SAVING_FUNCTION.get():
        return FilteredLReLU.apply(x, bias, rs, slope, clamp)
    u = rs.upsample(x + bias.to(x.dtype).view(1, -1, 1, 1))
    return rs.downsample(_activate(u, slope, clamp, rs.gain, in_place=not torch.is_grad_enabled()))[0]


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
