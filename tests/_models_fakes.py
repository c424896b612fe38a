"""Synthetic NVIDIA-format generator files for the model tests.

The fake files are written by the real `pickle` module with classes whose module and name are the
ones NVIDIA's files use (`dnnlib.tflib.network.Network`, `torch_utils.persistence.
_reconstruct_persistent_obj`, `dnnlib.util.EasyDict`), registered in `sys.modules` only while
pickling, so the bytes have the same layout as the real thing. Tensors and arrays are pickled by
torch and numpy themselves.

Weight layouts are derived from a rosinality generator the way NVIDIA's files store them:
TF variables are the inverse of rosinality's convert_weight.py; ada-pytorch tensors are made from
those TF variables with the formulas of stylegan2-ada-pytorch's legacy.py, so the ada test checks our
converter against NVIDIA's own TF -> ada mapping, not against itself.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.stylegan2 import Generator


@contextlib.contextmanager
def fake_modules(*names: str) -> Iterator[dict[str, types.ModuleType]]:
    """Temporarily put empty modules with these dotted names into sys.modules."""
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    sys.modules.update(mods)
    try:
        yield mods
    finally:
        for n, old in saved.items():
            if old is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = old


@contextlib.contextmanager
def nvidia_persistence(module_src: str) -> Iterator[tuple[type, type]]:
    """(EasyDict, Persistent) for writing files in NVIDIA's persistence layout: the names those pickles
    refer to (torch_utils.persistence._reconstruct_persistent_obj, dnnlib.util.EasyDict) exist while
    pickling; a Persistent pickles as that function applied to {class_name, state, module_src}."""
    with fake_modules("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util") as mods:

        def _reconstruct_persistent_obj(meta):  # never called: only its name goes into the file
            raise AssertionError("fake")

        _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
        _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
        mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj

        class EasyDict(dict):
            pass

        EasyDict.__module__ = "dnnlib.util"
        EasyDict.__qualname__ = "EasyDict"
        mods["dnnlib.util"].EasyDict = EasyDict

        class Persistent:
            def __init__(self, class_name: str, **attrs: Any) -> None:
                self.class_name = class_name
                self.state: dict[str, Any] = {
                    "training": False,
                    "_parameters": collections.OrderedDict(),
                    "_buffers": collections.OrderedDict(),
                    "_non_persistent_buffers_set": set(),
                    "_backward_hooks": collections.OrderedDict(),
                    "_forward_hooks": collections.OrderedDict(),
                    "_modules": collections.OrderedDict(),
                    **attrs,
                }

            def __reduce__(self):
                meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": self.class_name,
                        "state": self.state}
                return (_reconstruct_persistent_obj, (meta,))

        yield EasyDict, Persistent


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32).copy()


# ----- TensorFlow ------------------------------------------------------------------------------------
def tf_variables(g: Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(mapping vars, synthesis vars, Gs own vars) as an NVIDIA TF pickle stores them."""
    sd = g.state_dict()
    mapping: dict[str, np.ndarray] = {}
    for i in range(g.config.n_mlp):
        mapping[f"Dense{i}/weight"] = _np(sd[f"style.{i + 1}.weight"].t())
        mapping[f"Dense{i}/bias"] = _np(sd[f"style.{i + 1}.bias"])
    syn: dict[str, np.ndarray] = {"4x4/Const/const": _np(sd["input.input"])}

    def modconv(src: str, dst: str, flip: bool = False) -> None:
        w = sd[f"{dst}.conv.weight"][0]
        if flip:
            w = torch.flip(w, [2, 3])
        syn[f"{src}/weight"] = _np(w.permute(2, 3, 1, 0))
        syn[f"{src}/mod_weight"] = _np(sd[f"{dst}.conv.modulation.weight"].t())
        syn[f"{src}/mod_bias"] = _np(sd[f"{dst}.conv.modulation.bias"] - 1)
        syn[f"{src}/noise_strength"] = np.float32(sd[f"{dst}.noise.weight"][0].item()) * np.ones((), np.float32)
        syn[f"{src}/bias"] = _np(sd[f"{dst}.activate.bias"])

    def torgb(src: str, dst: str) -> None:
        syn[f"{src}/weight"] = _np(sd[f"{dst}.conv.weight"][0].permute(2, 3, 1, 0))
        syn[f"{src}/mod_weight"] = _np(sd[f"{dst}.conv.modulation.weight"].t())
        syn[f"{src}/mod_bias"] = _np(sd[f"{dst}.conv.modulation.bias"] - 1)
        syn[f"{src}/bias"] = _np(sd[f"{dst}.bias"].reshape(3))

    modconv("4x4/Conv", "conv1")
    torgb("4x4/ToRGB", "to_rgb1")
    for j in range(len(g.to_rgbs)):
        r = 2 ** (j + 3)
        modconv(f"{r}x{r}/Conv0_up", f"convs.{2 * j}", flip=True)
        modconv(f"{r}x{r}/Conv1", f"convs.{2 * j + 1}")
        torgb(f"{r}x{r}/ToRGB", f"to_rgbs.{j}")
    for i in range(g.config.num_noises):
        syn[f"noise{i}"] = _np(sd[f"noises.noise_{i}"])
    return mapping, syn, {"dlatent_avg": _np(g.latent_avg)}


def write_tf_pickle(
    path: Path,
    gs: Generator,
    g_train: Generator | None = None,
    protocol: int = 4,
    old_numpy_names: bool = False,
    build_module_src: str = "",
) -> Path:
    """An NVIDIA StyleGAN2 TF pickle `(G, D, Gs)`; G gets other weights so picking Gs is tested."""
    with fake_modules("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network") as mods:

        class Network:
            def __init__(
                self,
                name: str,
                variables: dict[str, Any],
                components: dict[str, Any] | None = None,
                static_kwargs: dict[str, Any] | None = None,
            ) -> None:
                self._state = {
                    "version": 4,
                    "name": name,
                    "static_kwargs": static_kwargs or {},
                    "components": components or {},
                    "build_module_src": build_module_src or "# networks",
                    "build_func_name": "G_main",
                    "variables": list(variables.items()),
                }

            def __getstate__(self) -> dict[str, Any]:
                return self._state

        Network.__module__ = "dnnlib.tflib.network"
        Network.__qualname__ = "Network"
        mods["dnnlib.tflib.network"].Network = Network

        def nets(g: Generator, prefix: str) -> Network:
            mapping, syn, own = tf_variables(g)
            comps = {"mapping": Network(f"{prefix}_mapping", mapping), "synthesis": Network(f"{prefix}_synthesis", syn)}
            return Network(prefix, own, comps, {"resolution": g.size, "num_channels": 3, "fmap_base": 16384})

        d = Network("D", {"4x4/Conv/weight": np.zeros((3, 3, 4, 4), np.float32)})
        data = (nets(g_train or gs, "G"), d, nets(gs, "G"))
        blob = pickle.dumps(data, protocol=protocol)
    if old_numpy_names:
        assert protocol <= 2, "old names can only be patched into text GLOBAL opcodes"
        blob = blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(blob)
    return path


# ----- stylegan2-ada-pytorch -------------------------------------------------------------------------------
def ada_tensors_from_tf(mapping: dict, syn: dict, own: dict, n_mlp: int) -> dict[str, torch.Tensor]:
    """G_ema tensors named as in stylegan2-ada-pytorch, from TF variables with legacy.py's formulas."""
    out: dict[str, torch.Tensor] = {"mapping.w_avg": torch.from_numpy(own["dlatent_avg"].copy())}
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"] = torch.from_numpy(mapping[f"Dense{i}/weight"].T.copy())
        out[f"mapping.fc{i}.bias"] = torch.from_numpy(mapping[f"Dense{i}/bias"].copy())
    out["synthesis.b4.const"] = torch.from_numpy(syn["4x4/Const/const"][0].copy())
    res = sorted(int(k.split("x")[0]) for k in syn if k.endswith("/ToRGB/weight"))

    def layer(dst: str, src: str, noise: int, flip: bool = False) -> None:
        w = syn[f"{src}/weight"]
        if flip:
            w = w[::-1, ::-1]
        out[f"{dst}.weight"] = torch.from_numpy(w.transpose(3, 2, 0, 1).copy())
        out[f"{dst}.bias"] = torch.from_numpy(syn[f"{src}/bias"].copy())
        out[f"{dst}.noise_const"] = torch.from_numpy(syn[f"noise{noise}"][0, 0].copy())
        out[f"{dst}.noise_strength"] = torch.tensor(float(syn[f"{src}/noise_strength"]))
        out[f"{dst}.affine.weight"] = torch.from_numpy(syn[f"{src}/mod_weight"].T.copy())
        out[f"{dst}.affine.bias"] = torch.from_numpy(syn[f"{src}/mod_bias"] + 1)

    def torgb(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = torch.from_numpy(syn[f"{src}/weight"].transpose(3, 2, 0, 1).copy())
        out[f"{dst}.bias"] = torch.from_numpy(syn[f"{src}/bias"].copy())
        out[f"{dst}.affine.weight"] = torch.from_numpy(syn[f"{src}/mod_weight"].T.copy())
        out[f"{dst}.affine.bias"] = torch.from_numpy(syn[f"{src}/mod_bias"] + 1)

    layer("synthesis.b4.conv1", "4x4/Conv", 0)
    torgb("synthesis.b4.torgb", "4x4/ToRGB")
    for r in res:
        if r == 4:
            continue
        log = int(np.log2(r))
        layer(f"synthesis.b{r}.conv0", f"{r}x{r}/Conv0_up", log * 2 - 5, flip=True)
        layer(f"synthesis.b{r}.conv1", f"{r}x{r}/Conv1", log * 2 - 4)
        torgb(f"synthesis.b{r}.torgb", f"{r}x{r}/ToRGB")
    return out


_PARAM_NAMES = {"weight", "bias", "const", "noise_strength"}


def write_ada_pickle(
    path: Path,
    tensors: dict[str, torch.Tensor],
    protocol: int = 3,
    module_src: str = "",
    extra: dict[str, Any] | None = None,
    layer_attrs: dict[str, Any] | None = None,
    synthesis_kwargs: dict[str, Any] | None = None,
) -> Path:
    """A stylegan2-ada-pytorch snapshot dict {'G_ema': persistent Generator, ...} from flat tensors.

    `layer_attrs` go into every SynthesisLayer/ToRGBLayer's state (e.g. {"conv_clamp": 256}, as real
    files keep it); `synthesis_kwargs` into G's `_init_kwargs`.
    """
    with nvidia_persistence(module_src or "# training/networks.py") as (EasyDict, Persistent):
        names = {
            "mapping": "MappingNetwork",
            "synthesis": "SynthesisNetwork",
            "affine": "FullyConnectedLayer",
            "torgb": "ToRGBLayer",
            "conv0": "SynthesisLayer",
            "conv1": "SynthesisLayer",
        }
        g_ema = Persistent(
            "Generator",
            z_dim=int(tensors["mapping.fc0.weight"].shape[1]),
            c_dim=0,
            _init_kwargs=EasyDict(
                z_dim=32, mapping_kwargs=EasyDict(num_layers=2), synthesis_kwargs=EasyDict(synthesis_kwargs or {})
            ),
        )
        for key, value in tensors.items():
            *mods_path, leaf = key.split(".")
            node = g_ema
            for part in mods_path:
                children = node.state["_modules"]
                if part not in children:
                    kind = names.get(part, "SynthesisBlock" if part.startswith("b") else "FullyConnectedLayer")
                    attrs = layer_attrs if kind in ("SynthesisLayer", "ToRGBLayer") and layer_attrs else {}
                    children[part] = Persistent(kind, **attrs)
                node = children[part]
            if leaf in _PARAM_NAMES:
                node.state["_parameters"][leaf] = torch.nn.Parameter(value.clone(), requires_grad=False)
            else:
                node.state["_buffers"][leaf] = value.clone()
        # resample_filter buffers exist in the real files; the converter must ignore them.
        for name, block in g_ema.state["_modules"]["synthesis"].state["_modules"].items():
            block.state["_buffers"]["resample_filter"] = torch.ones(4, 4) / 16
            del name
        data = {
            "G": g_ema,
            "D": Persistent("Discriminator"),
            "G_ema": g_ema,
            "augment_pipe": None,
            "training_set_kwargs": EasyDict(resolution=32),
            **(extra or {}),
        }
        blob = pickle.dumps(data, protocol=protocol)
    path.write_bytes(blob)
    return path


def write_ada_pickle_from_generator(path: Path, g: Generator, **kwargs: Any) -> Path:
    mapping, syn, own = tf_variables(g)
    return write_ada_pickle(path, ada_tensors_from_tf(mapping, syn, own, g.config.n_mlp), **kwargs)


def busy_generator(seed: int, size: int = 32, scale: float = 0.5, noise_seed: int | None = None) -> Generator:
    """A tiny generator whose noise strengths and biases are non-zero (drawn with `noise_seed`, default
    `seed`, times `scale`), so every weight reaches the image and has a gradient."""
    from engine.demo import tiny_generator

    g = tiny_generator(size, seed=seed)
    gen = torch.Generator().manual_seed(seed if noise_seed is None else noise_seed)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith(("noise.weight", "activate.bias")) or ("rgb" in name and name.endswith(".bias")):
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return g
