"""A generator with the module tree of NVIDIA's stylegan2-ada-pytorch `training.networks.Generator`,
re-derived for the export tests from the published formulas (the StyleGAN2 paper and the file format that
engine.nvidia_pickles documents), not from NVIDIA's code, and written independently of engine.stylegan2:
its convs run sample by sample with the modulated weight built explicitly, and its FIR filters are plain
zero insertion, padding and a correlation with the flipped kernel.

Tree and names: `mapping.fc{i}` (FullyConnected: weight stored / lr_multiplier, gain lr_multiplier /
sqrt(fan_in), bias gain lr_multiplier), `mapping.w_avg`; `synthesis.b{res}` with `const` (b4),
`resample_filter`, `conv0` (res > 4, upsampling), `conv1`, `torgb`; a conv layer holds `affine`,
`weight`, `bias`, `noise_strength`, `noise_const`, `resample_filter`; torgb `affine`, `weight`, `bias`.
W index use: block b4 takes ws[0] (conv1) and ws[1] (torgb); block j > 0 takes ws[2j-1 .. 2j+1]
(conv0, conv1, torgb): consecutive blocks overlap by one, the torgb index equals the next conv0's.
Channels: min(channel_base // res, channel_max).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT2 = math.sqrt(2.0)


def fir_kernel() -> Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k2 = torch.outer(k, k)
    return k2 / k2.sum()


def fir(x: Tensor, kernel: Tensor, up: int, pad0: int, pad1: int, gain: float) -> Tensor:
    """Insert up-1 zeros after each pixel, pad (pad0 before, pad1 after), convolve with kernel * gain."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad0, pad1, pad0, pad1))
    k = (torch.flip(kernel, [0, 1]) * gain).to(x)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


class FullyConnectedLayer(nn.Module):
    def __init__(self, in_f: int, out_f: int, bias_init: float = 0.0, lr_multiplier: float = 1.0,
                 activation: str = "linear") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_f, in_f) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_f,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_f)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        y = x.matmul((self.weight * self.weight_gain).t()) + self.bias * self.bias_gain
        return F.leaky_relu(y, 0.2) * SQRT2 if self.activation == "lrelu" else y


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.995) -> None:
        super().__init__()
        assert c_dim == 0
        self.num_ws, self.num_layers = num_ws, num_layers
        for i in range(num_layers):
            fc = FullyConnectedLayer(z_dim if i == 0 else w_dim, w_dim, lr_multiplier=lr_multiplier,
                                     activation="lrelu")
            setattr(self, f"fc{i}", fc)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor, c: Tensor | None, truncation_psi: float = 1.0) -> Tensor:
        x = z.to(torch.float32)
        x = x / torch.sqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        ws = x[:, None, :].expand(-1, self.num_ws, -1)
        if truncation_psi != 1:
            ws = self.w_avg + truncation_psi * (ws - self.w_avg)
        return ws


def modulated(weight: Tensor, style: Tensor, demodulate: bool) -> Tensor:
    """One sample's weight [out, in, k, k] scaled by its style over `in`, rows normalised to unit norm."""
    w = weight * style[None, :, None, None]
    if demodulate:
        w = w / torch.sqrt(w.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
    return w


class SynthesisLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, up: int = 1,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.up, self.conv_clamp = up, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_ch, bias_init=1.0)
        self.register_buffer("resample_filter", fir_kernel())
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        styles = self.affine(w)
        outs = []
        for i in range(x.shape[0]):
            wi = modulated(self.weight, styles[i], True)
            xi = x[i : i + 1]
            if self.up == 2:
                # transposed conv, stride 2 (the weight as [in, out, k, k]), then the FIR filter, pad 1 each
                # side, gain 4 (= up**2)
                yi = F.conv_transpose2d(xi, wi.transpose(0, 1), stride=2)
                yi = fir(yi, self.resample_filter, 1, 1, 1, 4.0)
            else:
                yi = F.conv2d(xi, wi, padding=1)
            outs.append(yi)
        y = torch.cat(outs)
        if noise_mode == "const":
            y = y + self.noise_const * self.noise_strength
        elif noise_mode == "random":
            y = y + torch.randn(y.shape[0], 1, *y.shape[2:]) * self.noise_strength
        y = F.leaky_relu(y + self.bias[None, :, None, None], 0.2) * SQRT2
        return y if self.conv_clamp is None else y.clamp(-self.conv_clamp, self.conv_clamp)


class ToRGBLayer(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.weight_gain = 1 / math.sqrt(in_ch)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        y = torch.cat([F.conv2d(x[i : i + 1], modulated(self.weight, styles[i], False)) for i in range(x.shape[0])])
        y = y + self.bias[None, :, None, None]
        return y if self.conv_clamp is None else y.clamp(-self.conv_clamp, self.conv_clamp)


class SynthesisBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None) -> None:
        super().__init__()
        self.in_ch = in_ch
        if in_ch == 0:
            self.const = nn.Parameter(torch.randn(out_ch, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_ch, out_ch, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_ch, out_ch, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_ch, img_channels, w_dim, conv_clamp=conv_clamp)
        self.register_buffer("resample_filter", fir_kernel())
        self.num_conv = 1 if in_ch == 0 else 2

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str) -> tuple[Tensor, Tensor]:
        if self.in_ch == 0:
            x = self.const[None].repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv])
        if img is not None:  # the image so far, upsampled 2x: zeros inserted, pad 2 before and 1 after, gain 4
            y = y + fir(img, self.resample_filter, 2, 2, 1, 4.0)
        return x, y


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, conv_clamp: float | None = None) -> None:
        super().__init__()
        assert num_fp16_res == 0  # the test renders fp32 only
        self.resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.resolutions}
        self.num_ws = 0
        for r in self.resolutions:
            block = SynthesisBlock(ch[r // 2] if r > 4 else 0, ch[r], w_dim, r, img_channels, conv_clamp)
            self.num_ws += block.num_conv
            setattr(self, f"b{r}", block)
        self.num_ws += 1  # the last torgb

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        x = img = None
        i = 0
        for r in self.resolutions:
            block = getattr(self, f"b{r}")
            x, img = block(x, img, ws[:, i : i + block.num_conv + 1], noise_mode)
            i += block.num_conv
        assert img is not None
        return img


class Generator(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **(synthesis_kwargs or {}))
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.synthesis.num_ws, **(mapping_kwargs or {}))

    def forward(self, z: Tensor, c: Tensor | None, truncation_psi: float = 1.0, noise_mode: str = "random") -> Tensor:
        return self.synthesis(self.mapping(z, c, truncation_psi), noise_mode)
