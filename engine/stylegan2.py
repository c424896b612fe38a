"""StyleGAN2 generator in plain PyTorch, state-dict compatible with rosinality's `Generator`.

The module tree and parameter/buffer names match rosinality's stylegan2-pytorch `model.py`, so a
`g_ema` dict from any of its checkpoints (or from NADA) loads with `strict=True`. No compiled
extensions: upfirdn2d is zero-insertion + pad + conv2d, fused leaky ReLU is `leaky_relu(x + b) * sqrt(2)`.

W+ index i is consumed by conv1 (i = 0) or convs[i - 1] (i >= 1); each to_rgb shares its index with the
next block's first conv (to_rgb1 with w1, to_rgbs[j] with w[2j + 3]). The last index feeds only the
final to_rgb.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BLUR_KERNEL = (1, 3, 3, 1)
LRELU_GAIN = math.sqrt(2.0)


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

    def __post_init__(self) -> None:
        log = math.log2(self.size)
        if self.size < 8 or log != int(log):
            raise ValueError(f"generator size must be a power of two >= 8, got {self.size}")
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
    def from_state_dict(cls, sd: Mapping[str, Tensor]) -> GeneratorConfig:
        """Infer size, mapping depth, style width and the whole channel table from the weights."""
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
        return cls(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=cm, channels=channels)


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
        if self.activate:
            out = F.linear(x, self.weight * self.scale)
            return F.leaky_relu(out + self.bias * self.lr_mul, 0.2) * LRELU_GAIN
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * LRELU_GAIN


class Blur(nn.Module):
    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        k = make_kernel(kernel)
        if upsample_factor > 1:
            k = k * upsample_factor**2
        self.register_buffer("kernel", k)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    def __init__(self, kernel: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)
        p = len(kernel) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Per-sample style modulation (and demodulation) of one conv weight, run as a grouped conv."""

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

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
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

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(BLUR_KERNEL)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
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
    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        d = config.style_dim
        layers: list[nn.Module] = [PixelNorm()]
        layers += [EqualLinear(d, d, lr_mul=config.lr_mlp, activate=True) for _ in range(config.n_mlp)]
        self.style = nn.Sequential(*layers)
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, d)
        self.to_rgb1 = ToRGB(ch[4], d, upsample=False)
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()  # empty; kept for rosinality's module tree
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for r in range(3, config.log_size + 1):
            out_ch = ch[2**r]
            self.convs.append(StyledConv(in_ch, out_ch, 3, d, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, 3, d))
            self.to_rgbs.append(ToRGB(out_ch, d))
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
