"""The plain (non-tensor) description of a StyleGAN3 generator, and the paper's recipe that designs one.

`SG3Config` holds what a file keeps outside its tensors: per layer the name, channels, kernel, sizes,
resampling factors, padding, filter shapes and clamp; the input's size, sampling rate and bandwidth; the
output scale. A converted file fills it from the stored attributes; `design()` computes it for a fresh
generator from the StyleGAN3 paper's schedule (cutoffs and stopbands growing geometrically from the first
layer to the last critically sampled ones, sampling rates the next power of two above twice the stopband,
`margin_size` extra pixels on each side of every layer but the last two) and returns the filters it designed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from torch import Tensor

from engine.sg3_ops import design_lowpass


@dataclass(frozen=True)
class LayerSpec:
    name: str
    in_channels: int
    out_channels: int
    kernel: int
    in_size: int
    out_size: int
    up: int
    down: int
    padding: tuple[int, int, int, int]
    up_filter_shape: tuple[int, ...]  # () = no filter
    down_filter_shape: tuple[int, ...]
    is_torgb: bool
    conv_clamp: float | None


@dataclass(frozen=True)
class SG3Config:
    z_dim: int
    w_dim: int
    mapping_layers: int
    img_resolution: int
    input_channels: int
    input_size: int
    input_sampling_rate: float
    bandwidth: float
    layers: tuple[LayerSpec, ...]
    output_scale: float = 0.25
    margin_size: int = 10
    mapping_lr: float = 0.01
    kind: str = "t"  # "t" (translation equivariant, 3x3 convs) or "r" (rotation: 1x1 convs, radial filters)

    def __post_init__(self) -> None:
        if not self.layers or not self.layers[-1].is_torgb:
            raise ValueError("a StyleGAN3 synthesis network ends with its ToRGB layer")
        if any(s.is_torgb for s in self.layers[:-1]):
            raise ValueError("only the last StyleGAN3 layer may be ToRGB")

    def index_resolutions(self, num_critical: int = 2) -> list[float]:
        """Per W+ index, twice the cutoff frequency of what it drives (the input, then each layer): the
        resolution a StyleGAN2 layer with that content would work at. The cutoffs follow the paper's
        schedule, from the input's bandwidth to half the image size at the critically sampled layers."""
        first, last, n = self.bandwidth, self.img_resolution / 2, len(self.layers) - 1
        steps = max(n - num_critical, 1)
        return [2 * first] + [2 * first * (last / first) ** min(i / steps, 1) for i in range(n + 1)]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["layers"] = [{f.name: getattr(s, f.name) for f in fields(s)} for s in self.layers]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SG3Config:
        layers = []
        for d in data["layers"]:
            d = dict(d)
            for key in ("padding", "up_filter_shape", "down_filter_shape"):
                d[key] = tuple(int(v) for v in d[key])
            layers.append(LayerSpec(**d))
        return cls(**{**data, "layers": tuple(layers)})


def layer_plan(in_size: int, out_size: int, in_rate: float, out_rate: float, is_torgb: bool, kernel: int,
               filter_size: int = 6, lrelu_upsampling: int = 2) -> tuple[int, int, int, int, float, tuple[int, ...]]:
    """(up, down, up_taps, down_taps, rate at which the activation runs, padding x0 x1 y0 y1)."""
    rate = max(in_rate, out_rate) * (1 if is_torgb else lrelu_upsampling)
    up = int(round(rate / in_rate))
    down = int(round(rate / out_rate))
    up_taps = filter_size * up if up > 1 and not is_torgb else 1
    down_taps = filter_size * down if down > 1 and not is_torgb else 1
    total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
    lo = (total + up) // 2
    hi = total - lo
    return up, down, up_taps, down_taps, rate, (lo, hi, lo, hi)


def design(img_resolution: int, kind: str = "t", *, z_dim: int = 512, w_dim: int = 512, mapping_layers: int = 2,
           channel_base: int | None = None, channel_max: int | None = None, num_layers: int = 14,
           num_critical: int = 2, margin_size: int = 10, conv_clamp: float | None = 256.0,
           output_scale: float = 0.25, first_cutoff: float = 2, first_stopband: float = 2**2.1,
           last_stopband_rel: float = 2**0.3) -> tuple[SG3Config, dict[str, Tensor]]:
    """The paper's layer schedule for an SG3-t or SG3-r generator, and its designed filters by tensor name.

    Defaults are the published ones (t: channel_base 32768, channel_max 512; r doubles both).
    """
    if kind not in ("t", "r"):
        raise ValueError(f"StyleGAN3 config must be 't' or 'r', got {kind!r}")
    scale = 2 if kind == "r" else 1
    channel_base = channel_base or 32768 * scale
    channel_max = channel_max or 512 * scale
    kernel = 1 if kind == "r" else 3
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = 3
    layers, filters = [], {}
    for i in range(num_layers + 1):
        p = max(i - 1, 0)
        torgb = i == num_layers
        k = 1 if torgb else kernel
        up, down, up_taps, down_taps, rate, pad = layer_plan(int(sizes[p]), int(sizes[i]), rates[p], rates[i], torgb, k)
        name = f"L{i}_{int(sizes[i])}_{int(channels[i])}"
        radial = kind == "r" and i < num_layers - num_critical
        fu = design_lowpass(up_taps, cutoffs[p], half_widths[p] * 2, rate)
        fd = design_lowpass(down_taps, cutoffs[i], half_widths[i] * 2, rate, radial=radial)
        for key, f in (("up_filter", fu), ("down_filter", fd)):
            if f is not None:
                filters[f"synthesis.{name}.{key}"] = f
        layers.append(LayerSpec(
            name, int(channels[p]), int(channels[i]), k, int(sizes[p]), int(sizes[i]), up, down, pad,
            tuple(fu.shape) if fu is not None else (), tuple(fd.shape) if fd is not None else (), torgb,
            conv_clamp,
        ))
    config = SG3Config(z_dim, w_dim, mapping_layers, img_resolution, int(channels[0]), int(sizes[0]), float(rates[0]),
                       float(cutoffs[0]), tuple(layers), output_scale, margin_size, kind=kind)
    return config, filters
