"""StyleGAN3 generator (alias-free, configs t and r) in plain PyTorch, with the StyleGAN2 generator's interface.

Written from the StyleGAN3 paper and its file format. Tensor names follow the published files
(`mapping.fc0.weight`, `synthesis.input.freqs`, `synthesis.L3_52_512.magnitude_ema`, ...), so a file's
tensors load unchanged; everything that is not a tensor (layer names and sizes, resampling factors,
paddings, clamp, output scale) lives in `SG3Config`, read from the file or designed by `design()`.

The forward pass, as the paper and file format define it:
- mapping: z normalised by its root mean square, `fc*` layers (leaky ReLU x sqrt 2, equalised lr); the
  same w at every W+ index; truncation lerps every index towards `latent_avg` (no cutoff);
- input (W+ index 0): an affine of w gives (cos, sin, tx, ty), divided by the norm of its first two; the
  Fourier features' frequencies and phases are moved by rotation @ translation @ `transform`; amplitudes
  are damped by how far each frequency lies past the bandwidth; sin(2 pi (grid . f + phase)) on a
  `affine_grid(align_corners=False)` grid, mixed by `weight / sqrt(C)`;
- each layer L0.. (index i + 1): modulated conv (weights demodulated; input scaled by
  rsqrt(`magnitude_ema`)), padded by kernel - 1, then the filtered leaky ReLU (`engine.sg3_ops`);
- the last layer is ToRGB: style times 1/sqrt(fan-in), no demodulation, linear, clamped; the image is
  multiplied by `output_scale`.

W+ index 0 -> the input (its trainable part is `input.weight`), index i -> layer L(i-1); the last index
feeds only ToRGB. `styled_convs()` gives the trainable tensors per index (affines and mapping stay frozen).

Training, compared with StyleGAN-NADA's SG3 branch: the same frozen mapping and affines, truncation 0.7
on training batches (`train_truncation`), no noise inputs. Different: adaptive selection works (the
reference has none for SG3); ToRGB never trains, as SG2's to_rgb layers (the reference trains it); any
layer may train, L10 and L12 included (the reference always skips those two at 1024 px, with no reason
given); no 5e-4 noise on the frozen image (our CLIP loss bounds the direction's norm instead).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.latent_space import LatentSpace
from engine.sg3_ops import filtered_lrelu, modulated_conv
from engine.stylegan2 import forced_modconv_path
from engine.stylegan3_design import LayerSpec, SG3Config, design

__all__ = ["SG3Config", "LayerSpec", "StyleGAN3Generator", "TrainableUnit", "fresh_generator", "render_path",
           "tiny_stylegan3"]


def render_path() -> str:
    """The modulated conv's form, "split" (training: cheaper to differentiate) or "fused" (sampling, the
    published form): `modconv_path` forces one, as for StyleGAN2; otherwise split whenever autograd will
    differentiate through the render. (The filtered leaky ReLU is the same polyphase op on both.)"""
    forced = forced_modconv_path()
    if forced in ("split", "fused"):
        return forced
    return "split" if torch.is_grad_enabled() else "fused"


class FullyConnected(nn.Module):
    """Equalised-lr linear layer: weight stored as randn / lr, scaled by lr / sqrt(fan-in) at run time."""

    def __init__(self, in_dim: int, out_dim: int, lr: float = 1.0, activation: str = "linear",
                 bias_init: Sequence[float] | float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr)
        self.bias = nn.Parameter(torch.empty(out_dim).copy_(torch.as_tensor(bias_init, dtype=torch.float32)))
        self.weight_gain, self.bias_gain, self.activation = lr / math.sqrt(in_dim), lr, activation

    def forward(self, x: Tensor) -> Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, 0.2) * math.sqrt(2) if self.activation == "lrelu" else x


class Mapping(nn.Module):
    def __init__(self, config: SG3Config) -> None:
        super().__init__()
        dims = [config.z_dim] + [config.w_dim] * config.mapping_layers
        for i in range(config.mapping_layers):
            self.add_module(f"fc{i}", FullyConnected(dims[i], dims[i + 1], config.mapping_lr, "lrelu"))

    def forward(self, z: Tensor) -> Tensor:
        x = z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt()
        for fc in self.children():
            x = fc(x)
        return x


class FourierInput(nn.Module):
    """The Fourier-feature input: its frequencies, phases and `transform` are buffers, `weight` trains."""

    def __init__(self, config: SG3Config) -> None:
        super().__init__()
        c = config.input_channels
        self.size, self.sampling_rate, self.bandwidth = config.input_size, config.input_sampling_rate, config.bandwidth
        self.weight = nn.Parameter(torch.randn(c, c))
        self.affine = FullyConnected(config.w_dim, 4, bias_init=[1, 0, 0, 0])
        nn.init.zeros_(self.affine.weight)
        freqs = torch.randn(c, 2)
        radii = freqs.square().sum(1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * config.bandwidth
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand(c) - 0.5)

    def forward(self, w: Tensor) -> Tensor:
        n = w.shape[0]
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rot = torch.eye(3, device=w.device).repeat(n, 1, 1)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        shift = torch.eye(3, device=w.device).repeat(n, 1, 1)
        shift[:, 0, 2], shift[:, 1, 2] = -t[:, 2], -t[:, 3]
        m = rot @ shift @ self.transform.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ m[:, :2, 2:]).squeeze(2)
        freqs = self.freqs.unsqueeze(0) @ m[:, :2, :2]
        half = self.sampling_rate / 2
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (half - self.bandwidth)).clamp(0, 1)
        theta = torch.zeros(1, 2, 3, device=w.device)
        theta[0, 0, 0] = 0.5 * self.size / self.sampling_rate
        theta[0, 1, 1] = 0.5 * self.size / self.sampling_rate
        grid = F.affine_grid(theta, [1, 1, self.size, self.size], align_corners=False)  # [1, H, W, 2]
        x = grid.unsqueeze(3) @ freqs.transpose(1, 2).unsqueeze(1).unsqueeze(2)  # [N, H, W, 1, C]
        x = torch.sin((x.squeeze(3) + phases.view(n, 1, 1, -1)) * (2 * math.pi)) * amplitudes.view(n, 1, 1, -1)
        x = x @ (self.weight / math.sqrt(self.weight.shape[0])).t()
        return x.permute(0, 3, 1, 2)


class SynthesisLayer(nn.Module):
    """Modulated conv + filtered leaky ReLU (or ToRGB), with the resampling plan of its `spec`."""

    def __init__(self, spec: LayerSpec, w_dim: int) -> None:
        super().__init__()
        self.spec = spec
        k = spec.kernel
        self.affine = FullyConnected(w_dim, spec.in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(spec.out_channels, spec.in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(spec.out_channels))
        self.register_buffer("magnitude_ema", torch.ones(()))
        self.up_filter: Tensor | None
        self.down_filter: Tensor | None
        for name, shape in (("up_filter", spec.up_filter_shape), ("down_filter", spec.down_filter_shape)):
            self.register_buffer(name, torch.zeros(shape) if shape else None)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        s = self.spec
        styles = self.affine(w)
        if s.is_torgb:
            styles = styles / math.sqrt(s.in_channels * s.kernel**2)
        path = render_path()
        x = modulated_conv(x, self.weight, styles, demodulate=not s.is_torgb, padding=s.kernel - 1,
                           input_gain=self.magnitude_ema.rsqrt(), fused=path == "fused")
        gain, slope = (1.0, 1.0) if s.is_torgb else (math.sqrt(2), 0.2)
        return filtered_lrelu(x, self.bias, self.up_filter, self.down_filter, s.up, s.down, s.padding, gain, slope,
                              s.conv_clamp)


class Synthesis(nn.Module):
    def __init__(self, config: SG3Config) -> None:
        super().__init__()
        self.input = FourierInput(config)
        for spec in config.layers:
            self.add_module(spec.name, SynthesisLayer(spec, config.w_dim))
        self.output_scale = config.output_scale

    def layers(self) -> list[SynthesisLayer]:
        return [m for m in self.children() if isinstance(m, SynthesisLayer)]

    def forward(self, w_plus: Tensor) -> Tensor:
        x = self.input(w_plus[:, 0])
        for i, layer in enumerate(self.layers()):
            x = layer(x, w_plus[:, i + 1])
        return x * self.output_scale if self.output_scale != 1 else x


@dataclass
class TrainableUnit:
    """The tensors one W+ index trains (the input's weight; a layer's weight and bias): the part of the
    nn.Module interface the trainer and freezing use."""

    name: str
    tensors: list[nn.Parameter] = field(default_factory=list)

    def parameters(self) -> Iterator[nn.Parameter]:
        return iter(self.tensors)

    def requires_grad_(self, flag: bool = True) -> TrainableUnit:
        for p in self.tensors:
            p.requires_grad_(flag)
        return self


class StyleGAN3Generator(LatentSpace):
    family = "stylegan3"
    # As the reference trains SG3: truncation 0.7 on every training batch (SG2 trains at 1).
    train_truncation = 0.7

    def __init__(self, config: SG3Config) -> None:
        super().__init__()
        self.config = config
        self.mapping_net = Mapping(config)
        self.synthesis_net = Synthesis(config)
        self.register_buffer("latent_avg", torch.zeros(config.w_dim), persistent=False)
        self.has_latent_avg = False

    # ----- names as in the files ---------------------------------------------------------------------
    def file_state_dict(self) -> dict[str, Tensor]:
        """Tensors under the published names (`mapping.fc0.weight`, `synthesis.L0_36_512.weight`, ...)."""
        out = {}
        for k, v in self.state_dict().items():
            out[k.replace("mapping_net.", "mapping.", 1).replace("synthesis_net.", "synthesis.", 1)] = v
        return out

    def load_file_state_dict(self, sd: dict[str, Tensor]) -> None:
        """The inverse of `file_state_dict` (strict: every tensor must be there with its shape)."""
        renamed = {k.replace("mapping.", "mapping_net.", 1).replace("synthesis.", "synthesis_net.", 1): v
                   for k, v in sd.items()}
        self.load_state_dict(renamed, strict=True)

    @classmethod
    def from_file_state_dict(
        cls, config: SG3Config, sd: dict[str, Tensor], latent_avg: Tensor | None
    ) -> StyleGAN3Generator:
        g = cls(config)
        g.load_file_state_dict(sd)
        g.set_latent_avg(latent_avg)
        return g.eval()

    def set_latent_avg(self, latent_avg: Tensor | None, samples: int = 4096, seed: int = 0) -> None:
        """Truncation centre: the file's `mapping.w_avg` if present, else a seeded mean of mapped z."""
        if latent_avg is not None:
            self.latent_avg.copy_(latent_avg.reshape(-1).to(self.latent_avg))
            self.has_latent_avg = True
        else:
            self.latent_avg.copy_(self.mean_latent(samples, seed))
            self.has_latent_avg = False

    # ----- the generator interface (as engine.stylegan2.Generator) ---------------------------------
    @property
    def n_latent(self) -> int:
        return len(self.config.layers) + 1

    @property
    def style_dim(self) -> int:
        return self.config.w_dim

    @property
    def size(self) -> int:
        return self.config.img_resolution

    def layer_resolutions(self) -> list[float]:
        """Per W+ index, twice the cutoff of what it drives (engine.freezing's named sets use it)."""
        return self.config.index_resolutions()

    def layer_labels(self) -> list[str]:
        """What each W+ index drives, for the layer map: "input", then the layer names."""
        return ["input", *(s.name for s in self.config.layers)]

    def styled_convs(self) -> list[TrainableUnit]:
        """Trainable tensors for each W+ index that may train: the input's weight (index 0), then each
        layer's weight and bias (index i -> L(i-1)); ToRGB (the last index) is left out, as SG2's to_rgb."""
        syn = self.synthesis_net
        units = [TrainableUnit("input", [syn.input.weight])]
        units += [TrainableUnit(layer.spec.name, [layer.weight, layer.bias]) for layer in syn.layers()[:-1]]
        return units

    def constant_inputs(self) -> list[nn.Parameter]:
        """No learned constant: the Fourier features are fixed buffers."""
        return []

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    def mapping(self, z: Tensor) -> Tensor:
        return self.mapping_net(z)

    def synthesis_parameters(self) -> list[nn.Parameter]:
        """The synthesis network's parameters: what renders a given W+ code."""
        return list(self.synthesis_net.parameters())

    def make_noise(self, batch: int, generator: torch.Generator | None = None) -> list[Tensor]:
        """StyleGAN3 has no noise inputs."""
        return []

    def w_plus(self, w: Tensor) -> Tensor:
        return w.unsqueeze(1).repeat(1, self.n_latent, 1)

    def synthesis(self, w_plus: Tensor, noise: Any = "const") -> Tensor:
        """W+ codes [N, n_latent, D] -> images [N, 3, H, W]; `noise` is accepted and ignored (none exists)."""
        return self.synthesis_net(w_plus)

    def render(self, z: Tensor | None = None, *, w_plus: Tensor | None = None, truncation: float = 1.0,
               noise: Any = "const") -> Tensor:
        if (z is None) == (w_plus is None):
            raise ValueError("render() takes exactly one of z or w_plus")
        if w_plus is None:
            assert z is not None
            w_plus = self.w_plus(self.truncate(self.mapping(z), truncation))
        return self.synthesis(w_plus)

    def forward(self, z: Tensor) -> Tensor:
        return self.render(z)



def fresh_generator(img_resolution: int, kind: str = "t", seed: int = 0, **design_kwargs: Any) -> StyleGAN3Generator:
    """A randomly initialised SG3 generator with the paper's layer schedule and designed filters."""
    config, filters = design(img_resolution, kind, **design_kwargs)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = StyleGAN3Generator(config)
    with torch.no_grad():
        for name, f in filters.items():
            g.get_buffer(name.replace("synthesis.", "synthesis_net.", 1)).copy_(f)
    g.set_latent_avg(None, samples=1024, seed=seed)
    return g.eval()


def tiny_stylegan3(kind: str = "t", size: int = 32, seed: int = 0, width: int = 32) -> StyleGAN3Generator:
    """A StyleGAN3 small enough for CPU tests and the demo: 4 layers, margin 2, `width` channels."""
    return fresh_generator(size, kind, seed, z_dim=width, w_dim=width, num_layers=4, margin_size=2,
                           channel_base=width * 16, channel_max=width)
