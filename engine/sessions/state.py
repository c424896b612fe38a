"""The one codec of saved trainer state: `Trainer.state_dict()` <-> safetensors bytes, plus the weights-file
codec (`init.safetensors`) and the hash that identifies a base generator's weights.

The state dict (what `Trainer.state_dict()` returns and `Trainer.load_state_dict()` takes):
    {"step": int, "config": TrainConfig.to_dict(), "weights": {param name: CPU tensor} (trainable tensors
     that differ from the generator the run started from), "param_names": [names in optimizer order],
     "optimizer": {index: {"step"/"exp_avg"/"exp_avg_sq": tensor}}, "scores": tensor | None,
     "rng": uint8 tensor}
On disk: tensors `weights/<name>`, `optimizer/<index>/<key>`, `scores`, `rng`; metadata `format`,
`schema_version`, `step`, `config` (JSON) and `optimizer_params` (JSON list = param_names).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.sessions.errors import DamagedSession, NonFiniteWeights
from engine.sessions.layout import SCHEMA_VERSION

if TYPE_CHECKING:  # torch is imported by the functions that need it: reading a session's info never does
    import torch

STATE_FORMAT = "nada-tui-checkpoint"
WEIGHTS_FORMAT = "nada-tui-weights"
WEIGHTS = "weights/"
OPTIMIZER = "optimizer/"


class Stateful(Protocol):
    """What the session writer needs of a trainer."""

    def state_dict(self) -> dict[str, Any]: ...


def _cpu(t: torch.Tensor) -> torch.Tensor:
    # safetensors wants contiguous CPU tensors that own their memory.
    return t.detach().cpu().contiguous().clone()


def _weight_tensors(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{WEIGHTS}{k}": _cpu(v) for k, v in weights.items()}


# ----- trainer state --------------------------------------------------------------------------------
def encode_state(state: Mapping[str, Any]) -> bytes:
    """`Trainer.state_dict()` as safetensors bytes; NonFiniteWeights when a weight holds NaN or infinity
    (a checkpoint is what a resume or an export trusts: it never holds broken weights)."""
    import safetensors.torch as st
    import torch

    tensors = _weight_tensors(state["weights"])
    bad = [k[len(WEIGHTS):] for k, t in tensors.items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteWeights(
            f"the weights of step {int(state['step'])} hold NaN or infinite values ({bad[0]}"
            f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); they are not saved"
        )
    for idx, slots in state["optimizer"].items():
        for key, value in slots.items():
            t = value if torch.is_tensor(value) else torch.tensor(float(value))
            tensors[f"{OPTIMIZER}{int(idx)}/{key}"] = _cpu(t)
    if state["scores"] is not None:
        tensors["scores"] = _cpu(state["scores"])
    tensors["rng"] = _cpu(state["rng"])
    meta = {
        "format": STATE_FORMAT,
        "schema_version": str(SCHEMA_VERSION),
        "step": str(int(state["step"])),
        "config": json.dumps(dict(state["config"])),
        "optimizer_params": json.dumps(list(state["param_names"])),
    }
    return st.save(tensors, metadata=meta)


def decode_state(data: bytes, where: str = "the checkpoint") -> dict[str, Any]:
    """The state dict back from `encode_state` bytes; unreadable bytes raise DamagedSession."""
    import safetensors.torch as st
    from safetensors import SafetensorError

    try:
        (n,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
        tensors = st.load(data)
    except (SafetensorError, struct.error, ValueError, AttributeError) as exc:
        raise DamagedSession(f"{where} cannot be read ({exc}); the session is damaged.") from None
    _check_finite(tensors, where)
    return _state(meta, tensors, where)


def read_state(path: Path) -> dict[str, Any]:
    """The state dict saved in a checkpoint file; a truncated or foreign file raises DamagedSession
    naming it."""
    meta, tensors = _read_file(path)
    return _state(meta, tensors, str(path))


def _read_file(path: Path, prefix: str = "") -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A safetensors file's metadata and the tensors whose names start with `prefix` (memory-mapped, so
    the rest is never read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta, tensors = f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    except (SafetensorError, OSError, ValueError) as exc:
        raise DamagedSession(f"{path} cannot be read ({exc}); the session is damaged.") from None
    _check_finite(tensors, str(path))
    return meta, tensors


def _check_finite(tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """DamagedSession naming the file and the first tensor that holds a NaN or an inf (such weights make
    black images, and such optimizer state poisons every later step)."""
    from engine.tensor_checks import nonfinite_names

    bad = nonfinite_names(tensors)
    if bad:
        raise DamagedSession(f"{where}: tensor {bad[0]!r} contains NaN or inf; the session is damaged.")


def _state(meta: Mapping[str, str], tensors: Mapping[str, torch.Tensor], where: str) -> dict[str, Any]:
    if meta.get("format") != STATE_FORMAT or meta.get("schema_version") != str(SCHEMA_VERSION):
        raise DamagedSession(f"{where} is not a nada-tui checkpoint of schema version {SCHEMA_VERSION}.")
    try:
        step = int(meta["step"])
        config = json.loads(meta["config"])
        # "null": the step-0 file of sessions made before create() took a trainer's state.
        param_names = list(json.loads(meta["optimizer_params"]) or [])
        rng = tensors.get("rng")
        if rng is None:  # only those step-0 files: the stream a fresh trainer starts with
            import torch

            rng = torch.Generator().manual_seed(int(config["seed"])).get_state()
    except (KeyError, ValueError, TypeError) as exc:
        raise DamagedSession(f"{where} has broken metadata ({exc}).") from None
    weights: dict[str, torch.Tensor] = {}
    optimizer: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key.startswith(WEIGHTS):
            weights[key[len(WEIGHTS) :]] = t
        elif key.startswith(OPTIMIZER):
            idx, name = key[len(OPTIMIZER) :].split("/", 1)
            optimizer.setdefault(int(idx), {})[name] = t
    return {
        "step": step,
        "config": config,
        "weights": weights,
        "param_names": param_names,
        "optimizer": optimizer,
        "scores": tensors.get("scores"),
        "rng": rng,
    }


# ----- weights files --------------------------------------------------------------------------------
def encode_weights(weights: Mapping[str, torch.Tensor]) -> bytes:
    """Named generator tensors (a fork's starting point) as safetensors bytes."""
    import safetensors.torch as st

    return st.save(_weight_tensors(weights), metadata={"format": WEIGHTS_FORMAT})


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Just the weight tensors of a checkpoint or init file (the optimizer state is not loaded)."""
    return {k[len(WEIGHTS) :]: t for k, t in _read_file(path, WEIGHTS)[1].items()}


def weights_sha256(generator: torch.nn.Module) -> str:
    """A hash of a generator's state dict (keys and values), independent of the file it came from."""
    h = hashlib.sha256()
    for k, v in sorted(generator.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
