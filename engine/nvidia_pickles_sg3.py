"""NVIDIA StyleGAN3 snapshot pickles -> `SG3Config` + tensors, through the same restricted unpickler as SG2.

A StyleGAN3 snapshot is the stylegan2-ada persistence format (`{G, D, G_ema, augment_pipe,
training_set_kwargs}`, every network a `_reconstruct_persistent_obj`), so `engine.nvidia_pickles` reads it
as inert stubs and nothing in it runs. What tells it apart: its `synthesis` has an `input` module (the
Fourier features) instead of `b4`. Every plain value is read from the stored module state, never assumed:
the layer order (`layer_names`), `output_scale`, `margin_size`, each layer's channels, kernel, sizes,
up/down factors, padding, ToRGB flag and `conv_clamp`; the input's size, sampling rate and bandwidth; the
mapping's depth and learning-rate multiplier. Conditional generators (`c_dim` > 0) are refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from torch import Tensor

from engine.nvidia_pickles import PersistentObjStub, _ada_tensors, _clamp_value, _t
from engine.stylegan3_design import LayerSpec, SG3Config


def is_stylegan3(g: PersistentObjStub) -> bool:
    synthesis = _modules(g).get("synthesis")
    return isinstance(synthesis, PersistentObjStub) and "input" in _modules(synthesis)


def _modules(obj: PersistentObjStub) -> dict[str, Any]:
    return dict(obj.state.get("_modules") or {})


def _get(obj: PersistentObjStub, key: str, where: str) -> Any:
    if key not in obj.state:
        raise ValueError(f"its StyleGAN3 {where} has no '{key}' attribute; not a StyleGAN3 file we can read")
    return obj.state[key]


def _int(value: Any, what: str) -> int:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.size == 0 or not np.all(arr.reshape(-1) == arr.reshape(-1)[0]):
        raise ValueError(f"its {what} is {value!r}, not one whole number (non-square sizes are not supported)")
    out = float(arr.reshape(-1)[0])
    if out != int(out):
        raise ValueError(f"its {what} is {out}, not a whole number")
    return int(out)


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"its {what} is a {type(value).__name__}, not a number")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"its {what} is {out}")
    return out


def _layer_spec(name: str, layer: PersistentObjStub, tensors: dict[str, Tensor]) -> LayerSpec:
    where = f"layer {name}"
    padding = tuple(_int(p, f"{where} padding") for p in _get(layer, "padding", where))
    if len(padding) != 4:
        raise ValueError(f"its {where} padding has {len(padding)} values, not 4")
    fu = tensors.get(f"synthesis.{name}.up_filter")
    fd = tensors.get(f"synthesis.{name}.down_filter")
    return LayerSpec(
        name=name,
        in_channels=_int(_get(layer, "in_channels", where), f"{where} in_channels"),
        out_channels=_int(_get(layer, "out_channels", where), f"{where} out_channels"),
        kernel=_int(_get(layer, "conv_kernel", where), f"{where} conv_kernel"),
        in_size=_int(_get(layer, "in_size", where), f"{where} in_size"),
        out_size=_int(_get(layer, "out_size", where), f"{where} out_size"),
        up=_int(_get(layer, "up_factor", where), f"{where} up_factor"),
        down=_int(_get(layer, "down_factor", where), f"{where} down_factor"),
        padding=padding,  # type: ignore[arg-type]
        up_filter_shape=tuple(fu.shape) if fu is not None else (),
        down_filter_shape=tuple(fd.shape) if fd is not None else (),
        is_torgb=bool(_get(layer, "is_torgb", where)),
        conv_clamp=_clamp_value(layer.state.get("conv_clamp"), where),
    )


def convert_sg3(g: PersistentObjStub) -> tuple[SG3Config, dict[str, Tensor], Tensor | None]:
    """A StyleGAN3 G_ema stub -> (config, tensors under the published names, latent_avg from w_avg)."""
    if int(g.state.get("c_dim", 0) or 0):
        raise ValueError(
            f"it is a class-conditional StyleGAN3 generator (c_dim={g.state.get('c_dim')}), which is not "
            "supported: use an unconditional one (all twelve official StyleGAN3 files are)"
        )
    mapping, synthesis = _modules(g).get("mapping"), _modules(g).get("synthesis")
    if not isinstance(mapping, PersistentObjStub) or not isinstance(synthesis, PersistentObjStub):
        raise ValueError("its G_ema has no mapping or synthesis network")
    tensors = {k: _t(v) for k, v in _ada_tensors(g).items()}
    latent_avg = tensors.pop("mapping.w_avg", None)
    names = [str(n) for n in _get(synthesis, "layer_names", "synthesis network")]
    layers = _modules(synthesis)
    missing = [n for n in names if not isinstance(layers.get(n), PersistentObjStub)]
    if missing or not names:
        raise ValueError(f"its synthesis network lists layers it does not hold ({missing[:3]})")
    specs = tuple(_layer_spec(n, layers[n], tensors) for n in names)
    inp = layers["input"]
    fcs = sorted((k for k in _modules(mapping) if k.startswith("fc")), key=lambda k: int(k[2:]))
    fc0 = _modules(mapping)[fcs[0]] if fcs else None
    lr = _float(fc0.state.get("bias_gain", 0.01), "mapping lr multiplier") if fc0 is not None else 0.01
    config = SG3Config(
        z_dim=_int(_get(mapping, "z_dim", "mapping network"), "z_dim"),
        w_dim=_int(_get(mapping, "w_dim", "mapping network"), "w_dim"),
        mapping_layers=len(fcs),
        img_resolution=_int(_get(synthesis, "img_resolution", "synthesis network"), "img_resolution"),
        input_channels=_int(_get(inp, "channels", "input"), "input channels"),
        input_size=_int(_get(inp, "size", "input"), "input size"),
        input_sampling_rate=_float(_get(inp, "sampling_rate", "input"), "input sampling rate"),
        bandwidth=_float(_get(inp, "bandwidth", "input"), "input bandwidth"),
        layers=specs,
        output_scale=_float(_get(synthesis, "output_scale", "synthesis network"), "output_scale"),
        margin_size=_int(_get(synthesis, "margin_size", "synthesis network"), "margin_size"),
        mapping_lr=lr,
        kind="r" if any(s.kernel == 1 for s in specs[:-1]) else "t",
    )
    return config, tensors, latent_avg
