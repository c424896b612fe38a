"""StyleGAN2 generator in plain PyTorch, state-dict compatible with rosinality's `Generator`.

The module tree and parameter/buffer names match rosinality's stylegan2-pytorch `model.py`, so a
`g_ema` dict from any of its checkpoints (or from NADA) loads with `strict=True`. No compiled
extensions: upfirdn2d is zero-insertion + pad + conv2d, fused leaky ReLU is `leaky_relu(x + b) * sqrt(2)`.

Two ways to run a modulated conv, picked per call (see `modconv_path`):
- "fused" (rosinality's, and NVIDIA's for inference): the weight is modulated per sample and run as one
  grouped conv; resampling filters go through `upfirdn2d`. Cheapest without gradients, and what sampling
  uses: its output is bit-for-bit the one this module has always produced.
- "split" (NVIDIA's ada-pytorch formulation while training): scale the input by the style, run one
  ordinary conv with the shared weight, multiply the output by the demodulation coefficients. Gradients
  to the styles then come from the input gradient that backprop computes anyway instead of a
  per-sample weight gradient [N, out, in, k, k] for every layer, and the filters run as depthwise
  convs (the FIR upsample as a stride-2 transposed conv: no multiplications by inserted zeros).
  "auto" (the default) picks split whenever gradients flow through the layer, fused otherwise.

`conv_clamp` (stylegan2-ada-pytorch generators; None elsewhere) clamps where NVIDIA's networks.py does:
each synthesis layer's output after bias, leaky ReLU and its sqrt(2) gain, and each ToRGB output after
its bias (before the upsampled skip is added), both to [-conv_clamp, conv_clamp].

W+ index i is consumed by conv1 (i = 0) or convs[i - 1] (i >= 1); each to_rgb shares its index with the
next block's first conv (to_rgb1 with w1, to_rgbs[j] with w[2j + 3]). The last index feeds only the
final to_rgb.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.fir import BLUR_KERNEL, Blur, Upsample

LRELU_GAIN = math.sqrt(2.0)
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


def _choose_path(module: nn.Module, *tensors: Tensor) -> str:
    """The rule: split whenever autograd will differentiate through this layer, fused otherwise.

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


def default_channels(size: int, channel_multiplier: int = 2) -> dict[int, int]:
    """The channel table of the official configs (config-f: channel_multiplier 2)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return {res: ch * (channel_multiplier if res >= 64 else 1) for res, ch in table.items() if res <= size}


@dataclass(frozen=True)
class GeneratorConfig:
    size: int
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    lr_mlp: float = 0.01
    # Explicit per-resolution channel counts; tiny test models override the official table.
    channels: Mapping[int, int] = field(default_factory=dict)
    # stylegan2-ada-pytorch's activation clamp (256 in its released configs); None = no clamping.
    # Not in the state dict: generator files carry it as a top-level "conv_clamp" entry.
    conv_clamp: float | None = None

    def __post_init__(self) -> None:
        log = math.log2(self.size)
        if self.size < 8 or log != int(log):
            raise ValueError(f"generator size must be a power of two >= 8, got {self.size}")
        if self.conv_clamp is not None and not (math.isfinite(self.conv_clamp) and self.conv_clamp > 0):
            raise ValueError(f"conv_clamp must be a positive number or None, got {self.conv_clamp}")
        if not self.channels:
            object.__setattr__(self, "channels", default_channels(self.size, self.channel_multiplier))
        missing = [2**r for r in range(2, int(log) + 1) if 2**r not in self.channels]
        if missing:
            raise ValueError(f"channel table lacks resolutions {missing}")

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def n_latent(self) -> int:
        return 2 * self.log_size - 2

    @property
    def num_noises(self) -> int:
        return 2 * (self.log_size - 2) + 1

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, Tensor], conv_clamp: float | None = None) -> GeneratorConfig:
        """Infer size, mapping depth, style width and the whole channel table from the weights.

        `conv_clamp` is not stored in a state dict: the caller passes it from the file it read.
        """
        if "input.input" not in sd or "style.1.weight" not in sd:
            raise ValueError("not a StyleGAN2 generator state dict (no 'input.input' / 'style.1.weight')")
        n_rgbs = len({k.split(".")[1] for k in sd if k.startswith("to_rgbs.")})
        size = 2 ** (n_rgbs + 2)
        n_mlp = len({k.split(".")[1] for k in sd if k.startswith("style.") and k.endswith(".weight")})
        style_dim = sd["style.1.weight"].shape[1]
        channels = {4: int(sd["input.input"].shape[1])}
        for j in range(n_rgbs):
            channels[2 ** (j + 3)] = int(sd[f"convs.{2 * j}.conv.weight"].shape[1])
        cm = channels[64] // 256 if 64 in channels and channels[64] % 256 == 0 else 0
        return cls(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=cm, channels=channels,
                   conv_clamp=conv_clamp)


class PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


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
        bias = self.bias if self.lr_mul == 1 else self.bias * self.lr_mul  # x * 1 is x: one op fewer
        if self.activate:
            out = F.linear(x, self.weight * self.scale)
            return F.leaky_relu(out + bias, 0.2) * LRELU_GAIN
        return F.linear(x, self.weight * self.scale, bias)


class FusedLeakyReLU(nn.Module):
    """Bias, leaky ReLU, gain sqrt(2), then (ada-pytorch generators) the clamp to +-conv_clamp."""

    def __init__(self, channels: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.conv_clamp = conv_clamp

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * LRELU_GAIN
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
        if _choose_path(self, x, style) == "split":
            return self.forward_split(x, style)
        return self.forward_fused(x, style)

    def forward_split(self, x: Tensor, style: Tensor) -> Tensor:
        """Input scaled by the style, one conv with the shared weight, output scaled by demodulation."""
        batch = x.shape[0]
        s = self.modulation(style)
        weight = self.weight[0] * self.scale
        x = x * s.to(x.dtype).view(batch, self.in_ch, 1, 1)
        if self.upsample:
            out = F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2)
            out = self.blur(out, fast=True)
        else:
            out = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            # sum over (in, kh, kw) of (w * s)^2 = (s^2) @ (sum over kh, kw of w^2): no [N, out, in, k, k]
            # tensor. In fp32, autocast off: it is tiny, and bf16 would round the coefficients.
            with torch.autocast(x.device.type, enabled=False):
                demod = torch.rsqrt(s.float().pow(2) @ weight.float().pow(2).sum([2, 3]).t() + 1e-8)
            out = out * demod.to(out.dtype).view(batch, self.out_ch, 1, 1)
        return out

    def forward_fused(self, x: Tensor, style: Tensor) -> Tensor:
        """Per-sample modulated weights in one grouped conv (rosinality's formulation)."""
        batch, in_ch, h, w = x.shape
        s = self.modulation(style).view(batch, 1, in_ch, 1, 1)
        weight = self.scale * self.weight * s
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
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


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, x.shape[2], x.shape[3]).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.repeat(batch, 1, 1, 1)


class StyledConv(nn.Module):
    """Modulated conv + noise + biased leaky ReLU: the unit that adaptive freezing trains or freezes."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch, conv_clamp)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True, conv_clamp: float | None = None) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(BLUR_KERNEL)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.conv_clamp = conv_clamp
        self.path = "auto"

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if self.conv_clamp is not None:
            out = out.clamp(-self.conv_clamp, self.conv_clamp)
        if skip is not None:
            fast = _choose_path(self, skip) == "split"
            # The image being built stays fp32 under autocast, as NVIDIA's networks keep it: 3 channels,
            # so it costs nothing, and bf16 rounding would otherwise accumulate over the resolutions.
            with torch.autocast(skip.device.type, enabled=False):
                up = self.upsample(skip.float(), fast=fast)
            out = out + up
        return out


class NoiseBuffers(nn.Module):
    """Holds the checkpoint's fixed noise maps as buffers `noise_0 ... noise_{n-1}`."""

    def __init__(self, num: int) -> None:
        super().__init__()
        for i in range(num):
            res = 2 ** ((i + 5) // 2)
            self.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))

    def as_list(self) -> list[Tensor]:
        return [getattr(self, f"noise_{i}") for i in range(len(self._buffers))]


NoiseSpec = str | Sequence[Tensor]


class Generator(nn.Module):
    train_truncation = 1.0  # training batches are not truncated (StyleGAN3's are: engine.stylegan3)

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        d = config.style_dim
        layers: list[nn.Module] = [PixelNorm()]
        layers += [EqualLinear(d, d, lr_mul=config.lr_mlp, activate=True) for _ in range(config.n_mlp)]
        self.style = nn.Sequential(*layers)
        clamp = config.conv_clamp
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, d, conv_clamp=clamp)
        self.to_rgb1 = ToRGB(ch[4], d, upsample=False, conv_clamp=clamp)
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()  # empty; kept for rosinality's module tree
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for r in range(3, config.log_size + 1):
            out_ch = ch[2**r]
            self.convs.append(StyledConv(in_ch, out_ch, 3, d, upsample=True, conv_clamp=clamp))
            self.convs.append(StyledConv(out_ch, out_ch, 3, d, conv_clamp=clamp))
            self.to_rgbs.append(ToRGB(out_ch, d, conv_clamp=clamp))
            in_ch = out_ch
        self.noises = NoiseBuffers(config.num_noises)
        # Not part of the state dict: set from a checkpoint's latent_avg or computed by mean_latent().
        self.register_buffer("latent_avg", torch.zeros(d), persistent=False)
        self.has_latent_avg = False

    # ----- construction -------------------------------------------------------------------------
    @classmethod
    def from_state_dict(
        cls, sd: Mapping[str, Tensor], latent_avg: Tensor | None = None, config: GeneratorConfig | None = None
    ) -> Generator:
        """Build from a rosinality `g_ema` dict; config inferred unless given; keys must match exactly."""
        g = cls(config or GeneratorConfig.from_state_dict(sd))
        g.load_state_dict(dict(sd), strict=True)
        g.set_latent_avg(latent_avg)
        return g.eval()

    def set_latent_avg(self, latent_avg: Tensor | None, samples: int = 4096, seed: int = 0) -> None:
        """Truncation centre: the checkpoint's latent_avg if present, else a seeded mean of mapped z."""
        if latent_avg is not None:
            self.latent_avg.copy_(latent_avg.reshape(-1)[: self.config.style_dim].to(self.latent_avg))
            self.has_latent_avg = True
        else:
            self.latent_avg.copy_(self.mean_latent(samples, seed))
            self.has_latent_avg = False

    # ----- properties ---------------------------------------------------------------------------
    @property
    def n_latent(self) -> int:
        return self.config.n_latent

    @property
    def style_dim(self) -> int:
        return self.config.style_dim

    @property
    def size(self) -> int:
        return self.config.size

    def styled_convs(self) -> list[StyledConv]:
        """StyledConv for each W+ index that feeds one (index i -> element i)."""
        return [self.conv1, *self.convs]

    def constant_inputs(self) -> list[nn.Parameter]:
        return [self.input.input]

    def layer_resolutions(self) -> list[int]:
        """Per W+ index, the resolution (px) of what it drives: 4 (conv1), then two indices per resolution."""
        return [min(4 * 2 ** ((i + 1) // 2), self.size) for i in range(self.n_latent)]  # the last: to_rgb

    def set_modconv_path(self, path: str) -> None:
        """Set the modconv path ("auto" default, "fused" or "split") of every layer; copies keep it."""
        if path not in MODCONV_PATHS:
            raise ValueError(f"modconv path must be one of {MODCONV_PATHS}, got {path!r}")
        for m in self.modules():
            if isinstance(m, (ModulatedConv2d, ToRGB)):
                m.path = path

    @property
    def modconv_path(self) -> str:
        return self.conv1.conv.path

    # ----- mapping ------------------------------------------------------------------------------
    @torch.no_grad()
    def mean_latent(self, samples: int = 4096, seed: int = 0) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(samples, self.style_dim, generator=gen).to(self.latent_avg.device)
        return self.style(z).mean(0)

    def mapping(self, z: Tensor) -> Tensor:
        return self.style(z)

    def truncate(self, w: Tensor, truncation: float) -> Tensor:
        if truncation >= 1.0:
            return w
        return self.latent_avg + truncation * (w - self.latent_avg)

    def make_noise(self, batch: int, generator: torch.Generator | None = None) -> list[Tensor]:
        """Fresh per-sample noise maps, drawn from `generator` (on its device) when one is given."""
        out = []
        for buf in self.noises.as_list():
            shape = (batch, 1, buf.shape[2], buf.shape[3])
            dev = generator.device if generator is not None else buf.device
            out.append(torch.randn(shape, generator=generator, device=dev).to(buf.device, buf.dtype))
        return out

    def w_plus(self, w: Tensor) -> Tensor:
        """[N, D] -> [N, n_latent, D]."""
        return w.unsqueeze(1).repeat(1, self.n_latent, 1)

    # ----- synthesis ----------------------------------------------------------------------------
    def synthesis(self, w_plus: Tensor, noise: NoiseSpec = "const") -> Tensor:
        """W+ codes [N, n_latent, D] -> images [N, 3, H, W] in about [-1, 1]."""
        batch = w_plus.shape[0]
        if isinstance(noise, str):
            if noise == "const":
                noises: Sequence[Tensor | None] = self.noises.as_list()
            elif noise == "random":
                noises = [None] * self.config.num_noises
            else:
                raise ValueError(f"noise must be 'const', 'random' or a list of tensors, got {noise!r}")
        else:
            noises = noise
        out = self.input(batch)
        out = self.conv1(out, w_plus[:, 0], noises[0])
        skip = self.to_rgb1(out, w_plus[:, 1])
        i = 1
        for j in range(len(self.to_rgbs)):
            out = self.convs[2 * j](out, w_plus[:, i], noises[2 * j + 1])
            out = self.convs[2 * j + 1](out, w_plus[:, i + 1], noises[2 * j + 2])
            skip = self.to_rgbs[j](out, w_plus[:, i + 2], skip)
            i += 2
        return skip

    def render(
        self,
        z: Tensor | None = None,
        *,
        w_plus: Tensor | None = None,
        truncation: float = 1.0,
        noise: NoiseSpec = "const",
    ) -> Tensor:
        """Images from z [N, D] (mapped, truncated) or from ready W+ codes [N, n_latent, D]."""
        if (z is None) == (w_plus is None):
            raise ValueError("render() takes exactly one of z or w_plus")
        if w_plus is None:
            assert z is not None
            w_plus = self.w_plus(self.truncate(self.mapping(z), truncation))
        return self.synthesis(w_plus, noise)

    def forward(self, z: Tensor) -> Tensor:
        return self.render(z)
