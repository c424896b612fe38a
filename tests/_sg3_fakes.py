"""StyleGAN3 snapshot pickles written by the tests, and a slow re-derivation of the published formulas.

`write_sg3_pickle` writes `{G, D, G_ema, augment_pipe, training_set_kwargs}` with the persistence layout of
NVIDIA's files (`_reconstruct_persistent_obj` of each module's state: `_parameters`, `_buffers`, `_modules`
and the plain attributes SG3's modules keep: `layer_names`, `padding`, `in_size` as ndarrays, sampling rates
as numpy floats, ToRGB's filters as None, ...). Every tensor is random: weights, biases, affines, the
Fourier frequencies and phases, a non-identity `transform`, `magnitude_ema`, the FIR filters.

`reference_render` computes an image from the same plain data in float64 with none of the engine's code:
per-sample modulated convs, zero insertion by indexing, single-channel filter convs,
full-rate filtering then subsampling. `slip` switches one published detail off, so the tests show that
each one matters.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _models_fakes import nvidia_persistence

from engine.stylegan3_design import design

SLIPS = ("damping", "transform", "magnitude_ema", "output_scale", "clamp", "order", "index")


def random_sg3(kind: str, size: int = 32, seed: int = 0, num_layers: int = 4, margin: int = 2, width: int = 16,
               stress: float = 1.0, conv_clamp: float | None = 256.0, designed_filters: bool = False) -> dict[str, Any]:
    """Plain data of a random SG3 generator: {"config": SG3Config, "tensors": {published name: tensor}}.

    `stress` > 1 divides the first layer's magnitude_ema by stress**2 (its output grows by `stress`, past
    the clamp) and multiplies the next layer's by the same, as a trained file can. `designed_filters` keeps
    the paper's filters (the r config's radial ones are of low rank: the engine runs them as 1-D passes).
    """
    config, designed = design(size, kind, z_dim=width, w_dim=width, num_layers=num_layers, margin_size=margin,
                       channel_base=width * 16, channel_max=width, conv_clamp=conv_clamp)
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * scale

    t: dict[str, torch.Tensor] = {"mapping.w_avg": rnd(width, scale=0.5)}
    for i in range(config.mapping_layers):
        t[f"mapping.fc{i}.weight"], t[f"mapping.fc{i}.bias"] = rnd(width, width, scale=100), rnd(width)
    c = config.input_channels
    t["synthesis.input.weight"] = rnd(c, c)
    t["synthesis.input.affine.weight"] = rnd(4, width, scale=0.3)
    t["synthesis.input.affine.bias"] = torch.tensor([1.0, 0.0, 0.0, 0.0]) + rnd(4, scale=0.3)
    t["synthesis.input.freqs"] = rnd(c, 2, scale=config.bandwidth * 1.5)  # many past the bandwidth: damped
    t["synthesis.input.phases"] = torch.rand(c, generator=gen) - 0.5
    a = 0.7
    t["synthesis.input.transform"] = torch.tensor([[math.cos(a), -math.sin(a), 0.3],
                                                   [math.sin(a), math.cos(a), -0.2], [0.0, 0.0, 1.0]])
    for j, s in enumerate(config.layers):
        p = f"synthesis.{s.name}."
        t[p + "weight"] = rnd(s.out_channels, s.in_channels, s.kernel, s.kernel)
        t[p + "bias"] = rnd(s.out_channels, scale=0.5)
        t[p + "affine.weight"] = rnd(s.in_channels, width)
        t[p + "affine.bias"] = 1 + rnd(s.in_channels, scale=0.3)
        t[p + "magnitude_ema"] = torch.rand((), generator=gen) * 2 + 0.2
        for key, shape in (("up_filter", s.up_filter_shape), ("down_filter", s.down_filter_shape)):
            if shape:
                f = torch.rand(shape, generator=gen) + 0.1
                t[p + key] = designed[p + key] if designed_filters else f / f.sum()
        if stress != 1 and j in (0, 1):
            t[p + "magnitude_ema"] = t[p + "magnitude_ema"] * (stress ** -2 if j == 0 else stress**2)
    return {"config": config, "tensors": t}


# ----- the published file layout ---------------------------------------------------------------------------
def write_sg3_pickle(path: Path, model: dict[str, Any], c_dim: int = 0, protocol: int = 3) -> Path:
    config, tensors = model["config"], model["tensors"]
    with nvidia_persistence("# networks_stylegan3.py") as (EasyDict, ModuleState):

        class Persistent(ModuleState):
            """A module's state with its tensors taken from `tensors` (names after `prefix`)."""

            def __init__(self, class_name: str, prefix: str = "", buffers: tuple[str, ...] = (),
                         params: tuple[str, ...] = ("weight", "bias"), **attrs: Any) -> None:
                super().__init__(class_name, _init_kwargs=EasyDict(), **attrs)
                for name in params:
                    if prefix + name in tensors:
                        self.state["_parameters"][name] = torch.nn.Parameter(tensors[prefix + name].clone(), False)
                for name in buffers:
                    value = tensors.get(prefix + name)
                    self.state["_buffers"][name] = None if value is None else value.clone()

        def fc(prefix: str, lr: float, activation: str) -> Persistent:
            w = tensors[prefix + "weight"]
            return Persistent("FullyConnectedLayer", prefix, in_features=w.shape[1], out_features=w.shape[0],
                              activation=activation, weight_gain=lr / np.sqrt(w.shape[1]), bias_gain=lr)

        mapping = Persistent("MappingNetwork", "mapping.", buffers=("w_avg",), params=(), z_dim=config.z_dim,
                             c_dim=c_dim, w_dim=config.w_dim, num_ws=len(config.layers) + 1,
                             num_layers=config.mapping_layers, w_avg_beta=0.998)
        for i in range(config.mapping_layers):
            mapping.state["_modules"][f"fc{i}"] = fc(f"mapping.fc{i}.", config.mapping_lr, "lrelu")
        synthesis = Persistent(
            "SynthesisNetwork", params=(), w_dim=config.w_dim, img_resolution=config.img_resolution, img_channels=3,
            num_layers=len(config.layers) - 1, num_critical=2, margin_size=config.margin_size,
            output_scale=config.output_scale, num_fp16_res=4, num_ws=len(config.layers) + 1,
            layer_names=[s.name for s in config.layers],
        )
        inp = Persistent("SynthesisInput", "synthesis.input.", buffers=("transform", "freqs", "phases"),
                         params=("weight",), w_dim=config.w_dim, channels=config.input_channels,
                         size=np.broadcast_to(np.asarray(config.input_size), [2]),
                         sampling_rate=np.float64(config.input_sampling_rate),
                         bandwidth=np.float64(config.bandwidth))
        inp.state["_modules"]["affine"] = fc("synthesis.input.affine.", 1.0, "linear")
        synthesis.state["_modules"]["input"] = inp
        for s in config.layers:
            p = f"synthesis.{s.name}."
            layer = Persistent(
                "SynthesisLayer", p, buffers=("magnitude_ema", "up_filter", "down_filter"), w_dim=config.w_dim,
                is_torgb=s.is_torgb, is_critically_sampled=s.is_torgb, use_fp16=False, conv_clamp=s.conv_clamp,
                in_channels=s.in_channels, out_channels=s.out_channels, conv_kernel=s.kernel,
                in_size=np.broadcast_to(np.asarray(s.in_size), [2]),
                out_size=np.broadcast_to(np.asarray(s.out_size), [2]),
                in_sampling_rate=np.float64(1.0), out_sampling_rate=np.float64(1.0), up_factor=s.up,
                down_factor=s.down, padding=[int(v) for v in s.padding], magnitude_ema_beta=0.999,
                down_radial=len(s.down_filter_shape) == 2,
            )
            layer.state["_modules"]["affine"] = fc(p + "affine.", 1.0, "linear")
            synthesis.state["_modules"][s.name] = layer
        g = Persistent("Generator", params=(), z_dim=config.z_dim, c_dim=c_dim, w_dim=config.w_dim,
                       img_resolution=config.img_resolution, img_channels=3, num_ws=len(config.layers) + 1)
        g.state["_modules"]["synthesis"] = synthesis
        g.state["_modules"]["mapping"] = mapping
        data = {"G": g, "D": Persistent("Discriminator", params=()), "G_ema": g,
                "augment_pipe": Persistent("AugmentPipe", params=()), "training_set_kwargs": EasyDict(resolution=32)}
        path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


# ----- the formulas, re-derived slowly ---------------------------------------------------------------------
def _fc(t: dict, prefix: str, x: torch.Tensor, lr: float, lrelu: bool) -> torch.Tensor:
    w, b = t[prefix + "weight"], t[prefix + "bias"]
    y = x @ (w * lr / math.sqrt(w.shape[1])).T + b * lr
    return torch.where(y >= 0, y, 0.2 * y) * math.sqrt(2) if lrelu else y


def reference_ws(model: dict, z: torch.Tensor, psi: float) -> torch.Tensor:
    cfg, t = model["config"], {k: v.double() for k, v in model["tensors"].items()}
    x = z.double() / torch.sqrt((z.double() ** 2).mean(1, keepdim=True) + 1e-8)
    for i in range(cfg.mapping_layers):
        x = _fc(t, f"mapping.fc{i}.", x, cfg.mapping_lr, True)
    x = t["mapping.w_avg"] + psi * (x - t["mapping.w_avg"])
    return x.unsqueeze(1).repeat(1, len(cfg.layers) + 1, 1)


def _fir(x: torch.Tensor, f: torch.Tensor | None) -> torch.Tensor:
    """Convolution with `f` (a 2-D filter, or a separable one given by its 1-D factor), valid part only."""
    if f is None:
        return x
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    if f.ndim == 2:
        x = F.conv2d(x, f.flip([0, 1])[None, None])
    else:
        x = F.conv2d(F.conv2d(x, f.flip([0])[None, None, None, :]), f.flip([0])[None, None, :, None])
    return x.reshape(n, c, *x.shape[2:])


def reference_render(model: dict, ws: torch.Tensor, slip: str | None = None) -> torch.Tensor:
    cfg, t = model["config"], {k: v.double() for k, v in model["tensors"].items()}
    ws = ws.double()
    if slip == "index":  # the last two indices swapped (ToRGB's and the layer's before it)
        n = ws.shape[1]
        ws = ws[:, [*range(n - 2), n - 1, n - 2]]
    images = []
    for w in ws:  # one sample at a time
        # input
        a = _fc(t, "synthesis.input.affine.", w[0:1], 1.0, False)[0]
        a = a / torch.sqrt(a[0] ** 2 + a[1] ** 2)
        rot = torch.tensor([[a[0], -a[1], 0], [a[1], a[0], 0], [0, 0, 1]], dtype=torch.float64)
        shift = torch.tensor([[1, 0, -a[2]], [0, 1, -a[3]], [0, 0, 1]], dtype=torch.float64)
        m = rot @ shift @ (torch.eye(3, dtype=torch.float64) if slip == "transform" else t["synthesis.input.transform"])
        freqs = t["synthesis.input.freqs"] @ m[:2, :2]
        phases = t["synthesis.input.phases"] + t["synthesis.input.freqs"] @ m[:2, 2]
        bw, rate, size = cfg.bandwidth, cfg.input_sampling_rate, cfg.input_size
        amp = (1 - (freqs.norm(dim=1) - bw) / (rate / 2 - bw)).clamp(0, 1)
        if slip == "damping":
            amp = torch.ones_like(amp)
        coords = ((torch.arange(size, dtype=torch.float64) + 0.5) / size * 2 - 1) * (0.5 * size / rate)
        gx, gy = coords[None, :].expand(size, size), coords[:, None].expand(size, size)
        feat = torch.sin(2 * math.pi * (gx[..., None] * freqs[:, 0] + gy[..., None] * freqs[:, 1] + phases)) * amp
        c = freqs.shape[0]
        x = (feat @ (t["synthesis.input.weight"] / math.sqrt(c)).T).permute(2, 0, 1)[None]
        for i, s in enumerate(cfg.layers):
            p = f"synthesis.{s.name}."
            style = _fc(t, p + "affine.", w[i + 1: i + 2], 1.0, False)[0]
            weight = t[p + "weight"]
            if s.is_torgb:
                wm = weight * (style / math.sqrt(s.in_channels * s.kernel**2))[None, :, None, None]
            else:
                wm = weight / weight.pow(2).mean([1, 2, 3], keepdim=True).sqrt() * style[None, :, None, None]
                wm = wm / torch.sqrt(wm.pow(2).sum([1, 2, 3], keepdim=True) + 1e-8)
            gain_in = 1.0 if slip == "magnitude_ema" else t[p + "magnitude_ema"].rsqrt()
            x = F.conv2d(x, wm * gain_in, padding=s.kernel - 1) + t[p + "bias"].view(1, -1, 1, 1)
            # zero insertion, padding, up filter with gain up^2
            n, ch, h, wd = x.shape
            z = torch.zeros(n, ch, h * s.up, wd * s.up, dtype=x.dtype)
            z[:, :, :: s.up, :: s.up] = x
            px0, px1, py0, py1 = s.padding
            z = F.pad(z, [px0, px1, py0, py1])
            fu, fd = t.get(p + "up_filter"), t.get(p + "down_filter")

            def act(v: torch.Tensor, s=s) -> torch.Tensor:
                v = v if s.is_torgb else torch.where(v >= 0, v, 0.2 * v) * math.sqrt(2)
                return v if s.conv_clamp is None or slip == "clamp" else v.clamp(-s.conv_clamp, s.conv_clamp)

            u = _fir(z, fu) * (s.up**2 if fu is not None else 1)
            if slip == "order":  # activation after the down filter
                x = act(_fir(u, fd)[:, :, :: s.down, :: s.down])
            else:
                x = _fir(act(u), fd)[:, :, :: s.down, :: s.down]
        images.append(x[0] * (1.0 if slip == "output_scale" else cfg.output_scale))
    return torch.stack(images)
