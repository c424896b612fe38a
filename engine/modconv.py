"""StyleGAN2's modulated convolution, fused or split, and the layers around it (equalised linear, biased
leaky ReLU), with the constants a frozen layer derives from its weights computed once.

Two ways to run a modulated conv (see `modconv_path`):
- "fused" (rosinality's, and NVIDIA's for inference): the weight is modulated per sample and run as one
  grouped conv; resampling filters go through `upfirdn2d`. Cheapest without gradients, and what sampling
  uses: its output is bit-for-bit the one this module has always produced.
- "split" (NVIDIA's ada-pytorch formulation while training): scale the input by the style, run one
  ordinary conv with the shared weight, multiply the output by the demodulation coefficients. Gradients
  to the styles then come from the input gradient that backprop computes anyway instead of a
  per-sample weight gradient [N, out, in, k, k] for every layer, and the filters run as depthwise
  convs (the FIR upsample as a stride-2 transposed conv: no multiplications by inserted zeros).
  "auto" (the default) picks split for a whole render whenever gradients flow through it, fused otherwise.

On a GPU every op is a kernel launch, so the split path takes its styles ready-made (`SplitStyle`, all
of a render's from one matmul: engine.styles) and a layer whose weights do not require gradients reuses
what it derives from them (`derived`): the frozen generator computes them once for the whole run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.fir import BLUR_KERNEL, Blur

LRELU_GAIN = math.sqrt(2.0)
DEMOD_EPS = 1e-8
MODCONV_PATHS = ("auto", "fused", "split")

# Set by `modconv_path()`; a ContextVar so that a forced path in the training thread does not leak into
# a preview rendered by another thread.
_forced_path: ContextVar[str | None] = ContextVar("nada_modconv_path", default=None)


@contextlib.contextmanager
def modconv_path(path: str) -> Iterator[None]:
    """Force "fused" or "split" (or "auto") for every modulated conv run inside the block, this thread only.

    It overrides `Generator.set_modconv_path()`; "auto" restores the per-call rule.
    """
    if path not in MODCONV_PATHS:
        raise ValueError(f"modconv path must be one of {MODCONV_PATHS}, got {path!r}")
    token = _forced_path.set(path)
    try:
        yield
    finally:
        _forced_path.reset(token)


def forced_modconv_path() -> str | None:
    """The path a `modconv_path()` block forces in this thread (None outside one)."""
    return _forced_path.get()


def choose_path(module: nn.Module, *tensors: Tensor) -> str:
    """The rule: split whenever autograd will differentiate through `module`, fused otherwise.

    Measured on CPU at 256 px (engine.bench): with gradients to the styles or weights the grouped conv
    builds a per-sample weight gradient, and `upfirdn2d`'s single-channel convs are slow to
    differentiate; even when only the input needs a gradient, split and depthwise filters are faster.
    """
    path = _forced_path.get() or getattr(module, "path", "auto")
    if path != "auto":
        return path
    if not torch.is_grad_enabled():
        return "fused"
    if any(t.requires_grad for t in tensors):
        return "split"
    return "split" if any(p.requires_grad for p in module.parameters()) else "fused"


def derived(module: nn.Module, name: str, make: Callable[[], Tensor], *params: Tensor) -> Tensor:
    """`make()`, a tensor computed from `params` only, kept on `module` while those stay unchanged.

    Recomputed every call while one of them requires grad (autograd must see the ops); otherwise kept
    per (version, storage) of every param: an in-place op (load_state_dict, copy_) bumps the version,
    `.to()` moves the storage. The fused Adam kernel does not bump it: the trainer does, after each step.
    Nothing is kept under inference mode (such a tensor could not be saved for a later backward). Under
    torch.compile (engine.compiled) the graph computes it instead: the
    compiler folds or fuses it, and the cache's bookkeeping cannot be traced.
    """
    if torch.compiler.is_compiling() or (torch.is_grad_enabled() and any(p.requires_grad for p in params)):
        return make()
    key = tuple((p._version, p.data_ptr(), p.dtype) for p in params)
    cache: dict = module.__dict__.setdefault("_derived", {})
    hit = cache.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    with torch.no_grad():
        value = make()
    if not torch.is_inference_mode_enabled():
        cache[name] = (key, value)
    return value


class SplitStyle(NamedTuple):
    """One layer's style for the split path: `scale` [N, in, 1, 1] multiplies its input (the modulation
    output times the weight scale); `square` [N, in] is that squared, for the demodulation."""

    scale: Tensor
    square: Tensor


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights stored at unit scale, scaled at run time."""

    def __init__(
        self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        weight = derived(self, "weight", lambda: self.weight * self.scale, self.weight)
        # x * 1 is x: one op fewer
        bias = self.bias if self.lr_mul == 1 else derived(self, "bias", lambda: self.bias * self.lr_mul, self.bias)
        if self.activate:
            return F.leaky_relu(F.linear(x, weight) + bias, 0.2) * LRELU_GAIN
        return F.linear(x, weight, bias)


class FusedLeakyReLU(nn.Module):
    """Bias, leaky ReLU, gain sqrt(2), then (ada-pytorch generators) the clamp to +-conv_clamp."""

    def __init__(self, channels: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.conv_clamp = conv_clamp

    def forward(self, x: Tensor) -> Tensor:
        bias = derived(self, "bias", lambda: self.bias.view(1, -1, 1, 1), self.bias)
        out = F.leaky_relu(x + bias, 0.2) * LRELU_GAIN
        if self.conv_clamp is not None:
            out = out.clamp(-self.conv_clamp, self.conv_clamp)
        return out


class ModulatedConv2d(nn.Module):
    """Per-sample style modulation (and demodulation) of one conv weight, fused or split (module docstring).

    `path` ("auto", "fused" or "split") is this layer's choice; `modconv_path()` overrides it.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        self.upsample, self.demodulate = upsample, demodulate
        if upsample:
            p = (len(BLUR_KERNEL) - 2) - (kernel_size - 1)
            self.blur = Blur(BLUR_KERNEL, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.path = "auto"

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        if choose_path(self, x, style) == "split":
            return self.forward_split(x, style)
        return self.forward_fused(x, style)

    def split_style(self, style: Tensor) -> SplitStyle:
        """This layer's SplitStyle from its own W+ code [N, style_dim] (engine.styles does all at once)."""
        s = self.modulation(style).float() * self.scale
        return SplitStyle(s.view(-1, self.in_ch, 1, 1), s.square())

    def forward_split(self, x: Tensor, style: Tensor | SplitStyle) -> Tensor:
        """Input scaled by the style, one conv with the shared weight, output scaled by demodulation."""
        out, demod = self.split_parts(x, style if isinstance(style, SplitStyle) else self.split_style(style))
        return out if demod is None else out * demod.to(out.dtype)

    def split_parts(self, x: Tensor, style: SplitStyle, gain: float = 1.0) -> tuple[Tensor, Tensor | None]:
        """The conv of the style-scaled input, and the demodulation [N, out, 1, 1] it still needs (None
        without demodulation), times `gain` (folded in: rsqrt(a / gain^2) = gain * rsqrt(a)); a
        StyledConv fuses that multiplication with its noise."""
        x = x * style.scale.to(x.dtype)
        k = self.kernel_size
        # a view, not weight[0]: its backward is a view too, where select's allocates and copies
        weight = derived(self, "weight", lambda: self.weight.view(self.out_ch, self.in_ch, k, k), self.weight)
        if self.upsample:
            out = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
            out = self.blur(out, fast=True)
        else:
            out = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if not self.demodulate:
            return out, None
        # sum over (in, kh, kw) of (w * s)^2 = (s^2) @ (sum over kh, kw of w^2): no [N, out, in, k, k]
        # tensor. In fp32, autocast off: it is tiny, and bf16 would round the coefficients.
        with torch.autocast(x.device.type, enabled=False):
            wsq = derived(self, f"wsq{gain}", lambda: weight.float().square().sum([2, 3]).t() / gain**2, self.weight)
            demod = torch.rsqrt(torch.addmm(_eps(x.device, gain), style.square, wsq))
        return out, demod.view(x.shape[0], self.out_ch, 1, 1)

    def forward_fused(self, x: Tensor, style: Tensor) -> Tensor:
        """Per-sample modulated weights in one grouped conv (rosinality's formulation)."""
        batch, in_ch, h, w = x.shape
        s = self.modulation(style).view(batch, 1, in_ch, 1, 1)
        weight = self.scale * self.weight * s
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + DEMOD_EPS)
            weight = weight * demod.view(batch, self.out_ch, 1, 1, 1)
        k = self.kernel_size
        x = x.reshape(1, batch * in_ch, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_ch, self.out_ch, k, k)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
            out = self.blur(out.view(batch, self.out_ch, out.shape[2], out.shape[3]))
        else:
            weight = weight.reshape(batch * self.out_ch, in_ch, k, k)
            out = F.conv2d(x, weight, padding=self.padding, groups=batch)
            out = out.view(batch, self.out_ch, out.shape[2], out.shape[3])
        return out


_EPS: dict[tuple[torch.device, float], Tensor] = {}


def _eps(device: torch.device, gain: float) -> Tensor:
    """DEMOD_EPS / gain^2 as a 0-d fp32 tensor on `device`, made once (addmm adds it: one op, not two)."""
    if torch.compiler.is_compiling():
        return torch.full((), DEMOD_EPS / gain**2, device=device)
    if (t := _EPS.get((device, gain))) is None:
        with torch.inference_mode(False), torch.no_grad():
            t = _EPS[(device, gain)] = torch.tensor(DEMOD_EPS / gain**2, device=device)
    return t
