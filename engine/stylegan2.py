"""StyleGAN2 generator in plain PyTorch, state-dict compatible with rosinality's `Generator`.

The module tree and parameter/buffer names match rosinality's stylegan2-pytorch `model.py`, so a
`g_ema` dict from any of its checkpoints (or from NADA) loads with `strict=True`. No compiled
extensions: upfirdn2d is zero-insertion + pad + conv2d, fused leaky ReLU is `leaky_relu(x + b) * sqrt(2)`.

Modulated convs (fused for sampling, split while training) are engine/modconv.py; a split render takes
all its styles from one matmul (engine/styles.py). The path is chosen per render: split whenever
gradients flow through it (codes or any weight), fused otherwise, unless `modconv_path()` or
`Generator.set_modconv_path()` forces one.

`conv_clamp` (stylegan2-ada-pytorch generators; None elsewhere) clamps where NVIDIA's networks.py does:
each synthesis layer's output after bias, leaky ReLU and its sqrt(2) gain, and each ToRGB output after
its bias (before the upsampled skip is added), both to [-conv_clamp, conv_clamp].

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

from engine.fir import BLUR_KERNEL, Upsample
from engine.latent_space import LatentSpace
from engine.modconv import (
    LRELU_GAIN,
    MODCONV_PATHS,
    EqualLinear,
    FusedLeakyReLU,
    ModulatedConv2d,
    SplitStyle,
    choose_path,
    derived,
    forced_modconv_path,
    modconv_path,
)
from engine.styles import split_styles

# modconv_path and forced_modconv_path are part of this module's surface (callers pick a path here).
__all__ = ["Generator", "GeneratorConfig", "ModulatedConv2d", "default_channels", "forced_modconv_path",
           "modconv_path"]


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

    def forward(self, x: Tensor, style: Tensor | SplitStyle, noise: Tensor | None = None) -> Tensor:
        """`style`: a W+ code [N, style_dim] (the layer picks its path), or a ready SplitStyle."""
        if not isinstance(style, SplitStyle):
            if choose_path(self.conv, x, style) == "fused":
                return self.activate(self.noise(self.conv.forward_fused(x, style), noise))
            style = self.conv.split_style(style)
        # leaky_relu(out * demod + w * noise + b) * g = leaky_relu(out * (g demod) + (g w) * noise + g b) for
        # g > 0: the gain rides on the demodulation (engine.modconv), the noise weight and the bias, and
        # two addcmuls do what five ops did.
        out, demod = self.conv.split_parts(x, style, LRELU_GAIN)
        if noise is None:
            noise = out.new_empty(out.shape[0], 1, out.shape[2], out.shape[3]).normal_()
        act = self.activate
        bias = derived(act, "gain_bias", lambda: act.bias.view(1, -1, 1, 1) * LRELU_GAIN, act.bias)
        noise_weight = derived(self.noise, "gain_weight", lambda: self.noise.weight * LRELU_GAIN, self.noise.weight)
        out = torch.addcmul(torch.addcmul(bias, noise_weight, noise), out, demod.to(out.dtype))
        out = F.leaky_relu(out, 0.2)
        return out if act.conv_clamp is None else out.clamp(-act.conv_clamp, act.conv_clamp)


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True, conv_clamp: float | None = None) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(BLUR_KERNEL)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.conv_clamp = conv_clamp
        self.path = "auto"

    def forward(self, x: Tensor, style: Tensor | SplitStyle, skip: Tensor | None = None) -> Tensor:
        """`style`: a W+ code [N, style_dim] (the layer picks its path), or a ready SplitStyle (split)."""
        if isinstance(style, SplitStyle):
            out = self.conv.split_parts(x, style)[0] + self.bias
            fast = True
        else:
            out = self.conv(x, style) + self.bias
            fast = skip is not None and choose_path(self, skip) == "split"
        if self.conv_clamp is not None:
            out = out.clamp(-self.conv_clamp, self.conv_clamp)
        if skip is not None:
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


class Generator(LatentSpace):
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

    def layer_labels(self) -> list[str]:
        """What each W+ index drives, for the layer map: its StyledConv (module name, resolution, "up" for
        the upsampling ones), the last index the final to_rgb."""
        labels = ["conv1 4x4"]
        for j in range(len(self.convs)):
            res = 8 * 2 ** (j // 2)
            labels.append(f"convs.{j} {res}x{res}" + (" up" if j % 2 == 0 else ""))
        return [*labels, f"to_rgbs.{len(self.to_rgbs) - 1} {self.size}x{self.size}"]

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
    @property
    def z_dim(self) -> int:
        return self.style_dim

    def mapping(self, z: Tensor) -> Tensor:
        return self.style(z)

    def synthesis_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the mapping network's: what renders a given W+ code."""
        mapping = {id(p) for p in self.style.parameters()}
        return [p for p in self.parameters() if id(p) not in mapping]

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
        if isinstance(noise, str):
            if noise == "const":
                noises: Sequence[Tensor | None] = self.noises.as_list()
            elif noise == "random":
                noises = [None] * self.config.num_noises
            else:
                raise ValueError(f"noise must be 'const', 'random' or a list of tensors, got {noise!r}")
        else:
            noises = noise
        if self.render_path(w_plus) == "split":
            return self.split_synthesis(w_plus, noises)
        out = self.input(w_plus.shape[0])
        out = self.conv1(out, w_plus[:, 0], noises[0])
        skip = self.to_rgb1(out, w_plus[:, 1])
        i = 1
        for j in range(len(self.to_rgbs)):
            out = self.convs[2 * j](out, w_plus[:, i], noises[2 * j + 1])
            out = self.convs[2 * j + 1](out, w_plus[:, i + 1], noises[2 * j + 2])
            skip = self.to_rgbs[j](out, w_plus[:, i + 2], skip)
            i += 2
        return skip

    def render_path(self, w_plus: Tensor) -> str:
        """"split" or "fused" for a whole render: a forced path, else split whenever autograd will
        differentiate through it (the codes or any weight need gradients), else fused."""
        path = forced_modconv_path() or self.modconv_path
        if path != "auto":
            return path
        if not torch.is_grad_enabled():
            return "fused"
        return "split" if w_plus.requires_grad or any(p.requires_grad for p in self.parameters()) else "fused"

    def modulated_layers(self) -> list[tuple[ModulatedConv2d, int]]:
        """Every modulated conv with the W+ index it reads, in the order a render runs them."""
        out = [(self.conv1.conv, 0), (self.to_rgb1.conv, 1)]
        for j, rgb in enumerate(self.to_rgbs):
            out += [(self.convs[2 * j].conv, 2 * j + 1), (self.convs[2 * j + 1].conv, 2 * j + 2), (rgb.conv, 2 * j + 3)]
        return out

    def split_synthesis(self, w_plus: Tensor, noises: Sequence[Tensor | None]) -> Tensor:
        """The split render (whatever path is forced): every style from one matmul (engine.styles), the
        constant input broadcast by conv1's style scaling rather than repeated per sample."""
        styles = iter(split_styles(self, self.modulated_layers(), w_plus))
        out = self.conv1(self.input.input, next(styles), noises[0])
        skip = self.to_rgb1(out, next(styles))
        for j, rgb in enumerate(self.to_rgbs):
            out = self.convs[2 * j](out, next(styles), noises[2 * j + 1])
            out = self.convs[2 * j + 1](out, next(styles), noises[2 * j + 2])
            skip = rgb(out, next(styles), skip)
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
