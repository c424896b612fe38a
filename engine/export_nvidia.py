"""A session's generator in NVIDIA's stylegan2-ada-pytorch layout: `<name>.nvidia.pt` holding
`{"init_kwargs": ..., "state_dict": ...}`, plus a short script that turns it into the `.pkl` NVIDIA's tools
open when run inside a checkout of their repository (we never ship or run their code).

The layout, learned from the published file format and read in reverse from `engine.nvidia_pickles`:
- `training.networks.Generator(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs,
  synthesis_kwargs)`; the mapping network's layers are `mapping.fc{i}` (weight [out, in], bias) and its
  buffer `mapping.w_avg` is the truncation centre (our `latent_avg`).
- The synthesis network has one block `synthesis.b{res}` per resolution. b4 holds `const` [C, 4, 4],
  `conv1` and `torgb`; every larger block holds `conv0` (the upsampling conv), `conv1` and `torgb`.
  Each block and each conv layer keeps its FIR filter as a buffer `resample_filter` ([1, 3, 3, 1] outer
  product, normalised to sum 1). A conv layer holds `affine` (weight, bias: biases include the +1),
  `weight` [out, in, 3, 3], `bias`, `noise_strength` (a scalar) and `noise_const` [res, res] (our fixed
  noise maps); a torgb layer `affine`, `weight` [3, in, 1, 1] and `bias` [3].
- Weights are stored with the same equalised-lr scaling as ours, so they copy unchanged (the
  upsampling weights are stored the way rosinality stores them too: no flip).
- Channels: block res has min(channel_base // res, channel_max) channels, so our channel table must be
  of that form; the official configs are (config-e: base 16384, config-f: 32768, max 512).
- conv_clamp (None, or 256 for ada-trained models) goes into synthesis_kwargs; num_fp16_res is 0, so
  NVIDIA renders in fp32 as we do.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from engine import atomic
from engine.errors import ExportError, write_failed
from engine.fir import BLUR_KERNEL, make_kernel
from engine.stylegan2 import Generator, GeneratorConfig

SUFFIX = ".nvidia.pt"
SCRIPT_NAME = "nvidia_export_script.py"


def channel_params(config: GeneratorConfig) -> tuple[int, int]:
    """(channel_base, channel_max) that reproduce the generator's channel table in NVIDIA's formula,
    min(channel_base // res, channel_max); ExportError when no pair does (custom tables)."""
    table = {r: int(c) for r, c in config.channels.items() if r <= config.size}
    channel_max = max(table.values())
    channel_base = table[config.size] * config.size
    if all(min(channel_base // r, channel_max) == c for r, c in table.items()):
        return channel_base, channel_max
    raise ExportError(
        f"this generator's channel table {table} is not of the form min(channel_base // res, channel_max) "
        "that NVIDIA's networks build, so it cannot be exported in their layout; export the rosinality .pt instead"
    )


def init_kwargs(config: GeneratorConfig) -> dict[str, Any]:
    """The keyword arguments of `training.networks.Generator` for a generator of this shape."""
    channel_base, channel_max = channel_params(config)
    return {
        "z_dim": config.style_dim,
        "c_dim": 0,
        "w_dim": config.style_dim,
        "img_resolution": config.size,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": config.n_mlp, "lr_multiplier": float(config.lr_mlp)},
        "synthesis_kwargs": {
            "channel_base": channel_base,
            "channel_max": channel_max,
            "num_fp16_res": 0,
            "conv_clamp": None if config.conv_clamp is None else float(config.conv_clamp),
        },
    }


def state_dict(g: Generator) -> dict[str, Tensor]:
    """Our generator's weights, buffers and truncation centre under NVIDIA's names (CPU, fp32)."""
    ours = {k: v.detach().cpu().float() for k, v in g.state_dict().items()}
    out: dict[str, Tensor] = {}

    def put(name: str, value: Tensor) -> None:
        out[name] = value.clone().contiguous()

    for i in range(g.config.n_mlp):
        put(f"mapping.fc{i}.weight", ours[f"style.{i + 1}.weight"])
        put(f"mapping.fc{i}.bias", ours[f"style.{i + 1}.bias"])
    put("mapping.w_avg", g.latent_avg.detach().cpu().float().reshape(-1))
    fir = make_kernel(BLUR_KERNEL)

    def layer(dst: str, src: str, noise_index: int) -> None:
        put(f"{dst}.affine.weight", ours[f"{src}.conv.modulation.weight"])
        put(f"{dst}.affine.bias", ours[f"{src}.conv.modulation.bias"])
        put(f"{dst}.weight", ours[f"{src}.conv.weight"][0])
        put(f"{dst}.bias", ours[f"{src}.activate.bias"])
        put(f"{dst}.noise_strength", ours[f"{src}.noise.weight"].reshape(()))
        noise = ours[f"noises.noise_{noise_index}"]
        put(f"{dst}.noise_const", noise.reshape(noise.shape[-2:]))
        put(f"{dst}.resample_filter", fir)

    def torgb(dst: str, src: str) -> None:
        put(f"{dst}.affine.weight", ours[f"{src}.conv.modulation.weight"])
        put(f"{dst}.affine.bias", ours[f"{src}.conv.modulation.bias"])
        put(f"{dst}.weight", ours[f"{src}.conv.weight"][0])
        put(f"{dst}.bias", ours[f"{src}.bias"].reshape(3))

    put("synthesis.b4.const", ours["input.input"][0])
    put("synthesis.b4.resample_filter", fir)
    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for j in range(len(g.to_rgbs)):
        b = f"synthesis.b{2 ** (j + 3)}"
        put(f"{b}.resample_filter", fir)
        layer(f"{b}.conv0", f"convs.{2 * j}", 2 * j + 1)
        layer(f"{b}.conv1", f"convs.{2 * j + 1}", 2 * j + 2)
        torgb(f"{b}.torgb", f"to_rgbs.{j}")
    return out


def nvidia_dict(g: Generator) -> dict[str, Any]:
    """{"init_kwargs": ..., "state_dict": ...}: what `<name>.nvidia.pt` holds. ExportError for a generator
    this layout cannot hold (a StyleGAN3 one: its own file is our .pt)."""
    if not isinstance(g, Generator):
        raise ExportError(
            "NVIDIA's stylegan2-ada-pytorch layout holds StyleGAN2 generators only, and this session's generator "
            "is a StyleGAN3 one: export it with --format rosinality (a .pt that nada-tui loads back, with its "
            "tensors under the published StyleGAN3 names)"
        )
    return {"init_kwargs": init_kwargs(g.config), "state_dict": state_dict(g)}


def save(g: Generator, out_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write `<name>.nvidia.pt` and, beside it, the script that makes NVIDIA's `.pkl` (both atomic).
    -> (the .pt, the script)."""
    path = Path(out_path)
    data = nvidia_dict(g)  # the channel check comes before anything touches the disk
    script = path.parent / SCRIPT_NAME
    text = resources.files("engine").joinpath(SCRIPT_NAME).read_bytes()
    for target, fill in ((path, lambda buf: torch.save(data, buf)), (script, lambda buf: buf.write(text))):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_with(target, fill)
        except OSError as exc:
            raise write_failed(target, exc) from None
    return path, script
