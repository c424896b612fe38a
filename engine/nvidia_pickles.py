"""NVIDIA StyleGAN2 pickles (TensorFlow and stylegan2-ada-pytorch), read without running their code.

Both kinds of file are Python pickles that name NVIDIA classes; unpickling them normally imports
`dnnlib`/`torch_utils` and *executes source code stored in the file* (`build_module_src`,
`module_src`). Here a restricted unpickler maps the few names these files use to inert stubs that
only keep the stored state and arrays, and refuses every other name before anything is called.

What the files hold (facts from NVIDIA's dnnlib/tflib/network.py, torch_utils/persistence.py,
legacy.py and rosinality's convert_weight.py):
- TensorFlow: a tuple `(G, D, Gs)` of `dnnlib.tflib.network.Network` objects; each state dict has
  `version`, `name`, `static_kwargs`, `components` ({"mapping": Network, "synthesis": Network}) and
  `variables` [(name, ndarray)]. Gs's own variable `dlatent_avg` is the truncation centre.
- stylegan2-ada-pytorch: a dict with `G_ema` (and G, D, augment_pipe, ...); every network module is
  `torch_utils.persistence._reconstruct_persistent_obj(meta)` where meta["state"] is the module's
  `__dict__` (`_parameters`, `_buffers`, `_modules`, ...); tensors are pickled by torch itself
  (`torch._utils._rebuild_tensor_v2` over `torch.storage._load_from_bytes`, a tiny legacy torch.save
  that we read with `torch.load(weights_only=True)`).

Weight mapping to rosinality names (both StyleGAN2 formulations use the same equalised-lr storage):
- TF dense / mod weights are [in, out] -> transpose; TF `mod_bias` is stored minus 1 -> add 1;
  TF conv weights are [kh, kw, in, out] -> [out, in, kh, kw]; `Conv0_up` weights are flipped in
  space (TF's transposed conv correlates the other way round).
- ada-pytorch weights are already [out, in, ...] and its affine biases already include the +1.
  Its `conv0` (upsampling) weights are stored flipped relative to TF (legacy.py flips on import),
  exactly as rosinality stores them, so they are copied unchanged. Demodulated convs are invariant to
  the weight gain; FullyConnectedLayer and EqualLinear both store `randn / lr_mul` and apply
  `lr_mul / sqrt(fan_in)` at run time, so mapping and affine weights copy unchanged too.
- ada-pytorch generators may clamp activations (`conv_clamp`, 256 in NVIDIA's released configs, None
  in TF-converted ones): each SynthesisLayer and ToRGBLayer keeps it as an attribute (and G keeps it in
  `_init_kwargs.synthesis_kwargs`). It is not a weight, so it travels next to the state dict and our
  Generator applies it (see engine.stylegan2). Rendering is always fp32, like NVIDIA's `force_fp32`.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor


class PickleRefused(ValueError):
    """The pickle names something outside the allowed stubs (it may try to run code)."""


# ----- inert stubs --------------------------------------------------------------------------------------
class TFNetworkStub:
    """Stands in for `dnnlib.tflib.network.Network`: keeps the pickled state, builds no graph."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise PickleRefused("a TensorFlow Network in this file has no state dict")
        self.state = state


class PersistentObjStub:
    """Stands in for an ada-pytorch persistent object (a network module): class name and stored state.

    The file also stores the module's source code (`module_src`); it is dropped, never executed.
    """

    def __init__(self, class_name: str, state: dict[str, Any], version: Any) -> None:
        self.class_name = class_name
        self.state = state
        self.version = version


class EasyDictStub(dict):
    """Stands in for `dnnlib.util.EasyDict` (a dict with attribute access; here just a dict)."""

    def __setstate__(self, state: Any) -> None:  # EasyDict keeps nothing outside its items
        pass


def _reconstruct_persistent_obj(meta: Any) -> PersistentObjStub:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise PickleRefused("an ada-pytorch persistent object has unexpected metadata")
    state = meta.get("state")
    return PersistentObjStub(
        str(meta.get("class_name")), dict(state) if isinstance(state, dict) else {}, meta.get("version")
    )


def _load_from_bytes(data: bytes) -> Any:
    """A tensor storage, pickled by torch as a small legacy torch.save archive: read it weights-only."""
    if not isinstance(data, (bytes, bytearray)):
        raise PickleRefused("a torch storage in this file is not stored as bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation chatter
        return torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)


def _as_tensor(storage: Any, offset: int, size: Any, stride: Any) -> Tensor:
    if isinstance(storage, torch.TypedStorage):
        dtype, untyped = storage.dtype, storage._untyped_storage
    elif isinstance(storage, torch.UntypedStorage):
        dtype, untyped = torch.uint8, storage
    else:
        raise PickleRefused("a tensor in this file is not backed by a torch storage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.empty(0, dtype=dtype).set_(untyped, int(offset), tuple(size), tuple(stride))


def _rebuild_tensor_v2(storage: Any, offset: int, size: Any, stride: Any, *_ignored: Any) -> Tensor:
    # requires_grad, backward hooks and metadata are dropped: we only want the numbers.
    return _as_tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(
    storage: Any, offset: int, size: Any, stride: Any, requires_grad: Any, hooks: Any, dtype: Any, *_ignored: Any
) -> Tensor:
    t = _as_tensor(storage, offset, size, stride)
    return t.view(dtype) if isinstance(dtype, torch.dtype) and dtype != t.dtype else t


def _rebuild_parameter(data: Any, *_ignored: Any) -> Tensor:
    if not isinstance(data, Tensor):
        raise PickleRefused("a parameter in this file does not wrap a tensor")
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Tensor:
    if func not in (_rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter) or not isinstance(args, tuple):
        raise PickleRefused("a tensor in this file is rebuilt by a function that is not allowed")
    return func(*args)


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise PickleRefused("a numpy array in this file has a subclass that is not allowed")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    dt = np.dtype(spec)
    if dt.hasobject:
        raise PickleRefused("a numpy array in this file holds Python objects, refused")
    return dt


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, (bytes, bytearray)):
        raise PickleRefused("a numpy scalar in this file is not a plain number")
    return np.frombuffer(bytes(data), dtype=dtype, count=1)[0]


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles store bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PickleRefused("the file encodes bytes in a way that is not allowed")
    return text.encode("latin1")


_STUB_TYPES = (TFNetworkStub, EasyDictStub, collections.OrderedDict, dict)


def _copyreg_reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # Protocol 0/1 pickles rebuild plain objects this way; allow it only for our stubs.
    if cls not in _STUB_TYPES or base not in (object, dict):
        raise PickleRefused("the file rebuilds an object of a type that is not allowed")
    return cls()


_ALLOWED: dict[tuple[str, str], Any] = {
    ("dnnlib.tflib.network", "Network"): TFNetworkStub,
    ("dnnlib.util", "EasyDict"): EasyDictStub,
    ("dnnlib", "EasyDict"): EasyDictStub,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch._utils", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("copyreg", "_reconstructor"): _copyreg_reconstructor,
    ("copy_reg", "_reconstructor"): _copyreg_reconstructor,
    ("builtins", "object"): object,
    ("__builtin__", "object"): object,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _np_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names in `_ALLOWED`; anything else stops the load before it is called."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise PickleRefused(
                f"refused to load: the pickle names {module}.{name}, which is not part of an NVIDIA "
                "StyleGAN2 network file (a pickle can run arbitrary code, so only known NVIDIA "
                "classes are read, as inert data)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused("refused to load: the pickle uses persistent ids (not an NVIDIA network file)")


def load_restricted(path: str | Path) -> Any:
    with open(path, "rb") as f:
        return RestrictedUnpickler(f).load()


# ----- conversion ----------------------------------------------------------------------------------------
class NvidiaGenerator(NamedTuple):
    state_dict: dict[str, Tensor]  # rosinality g_ema names
    latent_avg: Tensor | None
    format: str  # "nvidia-tf-pkl" or "nvidia-ada-pkl"
    conv_clamp: float | None = None  # ada-pytorch's activation clamp; None = none
    sg3: Any = None  # StyleGAN3 (format "nvidia-sg3-pkl"): its SG3Config; state_dict has the published names


def read_nvidia_pickle(path: str | Path) -> NvidiaGenerator:
    """-> (rosinality g_ema state dict, latent_avg, format name, conv_clamp)."""
    data = load_restricted(path)
    if isinstance(data, tuple) and data and all(isinstance(x, TFNetworkStub) for x in data):
        net = data[-1]  # (G, D, Gs): Gs is the moving average used for sampling
        return NvidiaGenerator(*convert_tf(net), "nvidia-tf-pkl")
    if isinstance(data, TFNetworkStub):
        return NvidiaGenerator(*convert_tf(data), "nvidia-tf-pkl")
    if isinstance(data, dict):
        g = data.get("G_ema", data.get("G"))
        if isinstance(g, PersistentObjStub):
            from engine import nvidia_pickles_sg3 as sg3

            if sg3.is_stylegan3(g):
                config, tensors, latent_avg = sg3.convert_sg3(g)
                return NvidiaGenerator(tensors, latent_avg, "nvidia-sg3-pkl", None, config)
            return NvidiaGenerator(*convert_ada(g), "nvidia-ada-pkl", ada_conv_clamp(g))
        if "G_ema" in data or "G" in data:
            raise ValueError("its 'G_ema' entry is not an ada-pytorch network")
        raise ValueError(f"it is a dict without 'G_ema' (keys: {', '.join(map(str, list(data)[:8]))})")
    raise ValueError(f"it holds a {type(data).__name__}, not NVIDIA networks")


def _t(value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().clone().float()
    arr = np.asarray(value)
    if arr.dtype.hasobject or arr.dtype.kind not in "fiub":
        raise ValueError("a weight is not a numeric array")
    return torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32, copy=True))


def _tf_vars(net: TFNetworkStub, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in net.state.get("variables", []):
        name, value = item
        out[prefix + str(name)] = value
    for key, comp in dict(net.state.get("components") or {}).items():
        if isinstance(comp, TFNetworkStub):
            out.update(_tf_vars(comp, f"{prefix}{key}/"))
    return out


def convert_tf(gs: TFNetworkStub) -> tuple[dict[str, Tensor], Tensor | None]:
    """TensorFlow Gs network -> rosinality g_ema (see the module docstring for the mapping)."""
    v = _tf_vars(gs)
    if any(re.fullmatch(r"synthesis/ToRGB_lod\d+/.*", k) for k in v):
        raise ValueError(
            "it is a StyleGAN2 'orig' architecture (configs a-d); only config-e/f skip generators are supported"
        )
    if any(k.startswith("mapping/LabelEmbed") for k in v) or int(
        gs.state.get("static_kwargs", {}).get("label_size", 0) or 0
    ):
        raise ValueError("it is a class-conditional generator, which is not supported")
    if "synthesis/4x4/Const/const" not in v:
        raise ValueError("its Gs network has no synthesis/4x4/Const/const (not a StyleGAN2 generator)")
    res = sorted(int(m.group(1)) for k in v if (m := re.fullmatch(r"synthesis/(\d+)x\1/ToRGB/weight", k)))
    n_mlp = len([k for k in v if re.fullmatch(r"mapping/Dense\d+/weight", k)])
    sd: dict[str, Tensor] = {}
    for i in range(n_mlp):
        sd[f"style.{i + 1}.weight"] = _t(v[f"mapping/Dense{i}/weight"]).t().contiguous()
        sd[f"style.{i + 1}.bias"] = _t(v[f"mapping/Dense{i}/bias"])
    sd["input.input"] = _t(v["synthesis/4x4/Const/const"])

    def modconv(src: str, dst: str, flip: bool = False) -> None:
        w = _t(v[f"{src}/weight"]).permute(3, 2, 0, 1)
        if flip:
            w = torch.flip(w, [2, 3])
        sd[f"{dst}.conv.weight"] = w.unsqueeze(0).contiguous()
        sd[f"{dst}.conv.modulation.weight"] = _t(v[f"{src}/mod_weight"]).t().contiguous()
        sd[f"{dst}.conv.modulation.bias"] = _t(v[f"{src}/mod_bias"]) + 1
        sd[f"{dst}.noise.weight"] = _t(v[f"{src}/noise_strength"]).reshape(1)
        sd[f"{dst}.activate.bias"] = _t(v[f"{src}/bias"])

    def torgb(src: str, dst: str) -> None:
        sd[f"{dst}.conv.weight"] = _t(v[f"{src}/weight"]).permute(3, 2, 0, 1).unsqueeze(0).contiguous()
        sd[f"{dst}.conv.modulation.weight"] = _t(v[f"{src}/mod_weight"]).t().contiguous()
        sd[f"{dst}.conv.modulation.bias"] = _t(v[f"{src}/mod_bias"]) + 1
        sd[f"{dst}.bias"] = _t(v[f"{src}/bias"]).reshape(1, 3, 1, 1)

    modconv("synthesis/4x4/Conv", "conv1")
    torgb("synthesis/4x4/ToRGB", "to_rgb1")
    blocks = [r for r in res if r > 4]
    for j, r in enumerate(blocks):
        modconv(f"synthesis/{r}x{r}/Conv0_up", f"convs.{2 * j}", flip=True)
        modconv(f"synthesis/{r}x{r}/Conv1", f"convs.{2 * j + 1}")
        torgb(f"synthesis/{r}x{r}/ToRGB", f"to_rgbs.{j}")
    for i in range(2 * len(blocks) + 1):
        key = f"synthesis/noise{i}"
        if key in v:
            sd[f"noises.noise_{i}"] = _t(v[key]).reshape(1, 1, *np.shape(v[key])[-2:])
    latent_avg = _t(v["dlatent_avg"]).reshape(-1) if "dlatent_avg" in v else None
    return sd, latent_avg


def _ada_tensors(obj: PersistentObjStub, prefix: str = "") -> dict[str, Tensor]:
    """Named parameters and buffers of a pickled module tree, like `named_parameters()` + buffers."""
    out: dict[str, Tensor] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in dict(obj.state.get(group) or {}).items():
            if isinstance(value, Tensor):
                out[prefix + name] = value
    for name, child in dict(obj.state.get("_modules") or {}).items():
        if isinstance(child, PersistentObjStub):
            out.update(_ada_tensors(child, f"{prefix}{name}."))
        elif child is not None:
            raise ValueError(f"module {prefix}{name} is not an ada-pytorch network module")
    return out


def convert_ada(g: PersistentObjStub) -> tuple[dict[str, Tensor], Tensor | None]:
    """stylegan2-ada-pytorch G_ema module -> rosinality g_ema (see the module docstring)."""
    if int(g.state.get("c_dim", 0) or 0):
        raise ValueError("it is a class-conditional generator, which is not supported")
    p = _ada_tensors(g)
    if "synthesis.b4.const" not in p:
        kind = g.class_name
        raise ValueError(
            f"its G_ema ({kind}) has no synthesis.b4.const: not a StyleGAN2 generator "
            "nor a StyleGAN3 one (other networks are not supported)"
        )
    res = sorted(int(m.group(1)) for k in p if (m := re.fullmatch(r"synthesis\.b(\d+)\.torgb\.weight", k)))
    n_mlp = len([k for k in p if re.fullmatch(r"mapping\.fc\d+\.weight", k)])
    sd: dict[str, Tensor] = {}
    for i in range(n_mlp):
        sd[f"style.{i + 1}.weight"] = _t(p[f"mapping.fc{i}.weight"])
        sd[f"style.{i + 1}.bias"] = _t(p[f"mapping.fc{i}.bias"])
    sd["input.input"] = _t(p["synthesis.b4.const"]).unsqueeze(0)

    def layer(src: str, dst: str, noise_index: int) -> None:
        sd[f"{dst}.conv.weight"] = _t(p[f"{src}.weight"]).unsqueeze(0)
        sd[f"{dst}.conv.modulation.weight"] = _t(p[f"{src}.affine.weight"])
        sd[f"{dst}.conv.modulation.bias"] = _t(p[f"{src}.affine.bias"])
        sd[f"{dst}.noise.weight"] = _t(p.get(f"{src}.noise_strength", torch.zeros(()))).reshape(1)
        sd[f"{dst}.activate.bias"] = _t(p[f"{src}.bias"])
        if f"{src}.noise_const" in p:
            nc = _t(p[f"{src}.noise_const"])
            sd[f"noises.noise_{noise_index}"] = nc.reshape(1, 1, *nc.shape[-2:])

    def torgb(src: str, dst: str) -> None:
        sd[f"{dst}.conv.weight"] = _t(p[f"{src}.weight"]).unsqueeze(0)
        sd[f"{dst}.conv.modulation.weight"] = _t(p[f"{src}.affine.weight"])
        sd[f"{dst}.conv.modulation.bias"] = _t(p[f"{src}.affine.bias"])
        sd[f"{dst}.bias"] = _t(p[f"{src}.bias"]).reshape(1, 3, 1, 1)

    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for j, r in enumerate(x for x in res if x > 4):
        if int(math.log2(r)) != j + 3:
            raise ValueError(f"its synthesis blocks skip a resolution (found b{r})")
        layer(f"synthesis.b{r}.conv0", f"convs.{2 * j}", 2 * j + 1)
        layer(f"synthesis.b{r}.conv1", f"convs.{2 * j + 1}", 2 * j + 2)
        torgb(f"synthesis.b{r}.torgb", f"to_rgbs.{j}")
    latent_avg = _t(p["mapping.w_avg"]).reshape(-1) if "mapping.w_avg" in p else None
    return sd, latent_avg


def _clamp_value(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"its conv_clamp ({where}) is a {type(value).__name__}, not a number")
    out = float(value)
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"its conv_clamp ({where}) is {out}; expected a positive number")
    return out


def ada_conv_clamp(g: PersistentObjStub) -> float | None:
    """The clamp every synthesis layer applies: the layers' own `conv_clamp` attribute (what NVIDIA's code
    uses at run time), else G's `_init_kwargs.synthesis_kwargs.conv_clamp`; None when neither is set."""
    found: dict[str, Any] = {}

    def walk(obj: PersistentObjStub, prefix: str) -> None:
        if obj.class_name in ("SynthesisLayer", "ToRGBLayer") and "conv_clamp" in obj.state:
            found[prefix.rstrip(".")] = obj.state["conv_clamp"]
        for name, child in dict(obj.state.get("_modules") or {}).items():
            if isinstance(child, PersistentObjStub):
                walk(child, f"{prefix}{name}.")

    synthesis = dict(g.state.get("_modules") or {}).get("synthesis")
    if isinstance(synthesis, PersistentObjStub):
        walk(synthesis, "synthesis.")
    if found:
        values = {name: _clamp_value(v, name) for name, v in found.items()}
        distinct = set(values.values())
        if len(distinct) > 1:
            raise ValueError(
                f"its synthesis layers use different conv_clamp values ({sorted(map(str, distinct))}), "
                "which NVIDIA's released code never does; not supported"
            )
        return distinct.pop()
    init = g.state.get("_init_kwargs")
    synthesis_kwargs = init.get("synthesis_kwargs") if isinstance(init, dict) else None
    if isinstance(synthesis_kwargs, dict):
        return _clamp_value(synthesis_kwargs.get("conv_clamp"), "G_ema synthesis_kwargs")
    return None
