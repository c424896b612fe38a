"""Read any supported generator file into our `Generator`, and write rosinality-format checkpoints.

Supported inputs (detected from the file's bytes, not its name):
- rosinality / StyleGAN-NADA `.pt`: `{"g_ema": state_dict, "latent_avg"?: tensor, ...}` or a bare
  `g_ema` state dict. Read with `torch.load(weights_only=True)`; the only class allowed beyond
  tensors and containers is `argparse.Namespace` (rosinality's training checkpoints store `args`).
- NVIDIA StyleGAN2 TensorFlow `.pkl`, stylegan2-ada-pytorch `.pkl` and StyleGAN3 `.pkl`: read by the
  restricted unpickler in `engine.nvidia_pickles` (nothing named in the file is imported or run), then
  converted.
- our StyleGAN3 `.pt`: `{"g_ema": tensors under the published names, "latent_avg", "stylegan3": the
  SG3Config as plain data}` (what `save_rosinality` writes for a StyleGAN3 generator).

Anything else raises `CheckpointError` naming the file and what was expected.
"""

from __future__ import annotations

import argparse
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from engine import atomic, user_files
from engine.download import sha256_file
from engine.errors import CheckpointError
from engine.stylegan2 import Generator, GeneratorConfig
from engine.stylegan3 import StyleGAN3Generator
from engine.stylegan3_design import SG3Config
from engine.tensor_checks import nonfinite_names

EXPECTED = (
    "expected a StyleGAN2 generator: a rosinality/StyleGAN-NADA .pt checkpoint ({'g_ema': ...}), "
    "a bare g_ema state dict, an NVIDIA StyleGAN2 TensorFlow .pkl, a stylegan2-ada-pytorch .pkl or a StyleGAN3 .pkl"
)


AnyGenerator = Generator | StyleGAN3Generator


def load_generator(path: str | Path) -> tuple[AnyGenerator, dict[str, Any]]:
    """Any supported file -> (Generator on CPU in eval mode, info).

    info holds at least: format, size, n_mlp, style_dim, channel_multiplier, sha256 (of the file),
    path and has_latent_avg.
    """
    path = Path(path).expanduser()
    _check_file(path)
    kind = sniff(path)
    sg3: SG3Config | None = None
    if kind == "torch":
        sd, latent_avg, fmt, conv_clamp, sg3 = _read_torch(path)
    elif kind == "pickle":
        from engine import nvidia_pickles

        try:
            sd, latent_avg, fmt, conv_clamp, sg3 = nvidia_pickles.read_nvidia_pickle(path)
        except nvidia_pickles.PickleRefused as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        except EOFError:
            raise CheckpointError(f"{path} is truncated (the pickle ends early); {EXPECTED}") from None
        except (
            pickle.UnpicklingError,
            ValueError,
            KeyError,
            IndexError,
            TypeError,
            AttributeError,
            RuntimeError,
            MemoryError,
        ) as exc:
            raise CheckpointError(f"{path} could not be read as an NVIDIA pickle ({_short(exc)}); {EXPECTED}") from None
    else:
        raise CheckpointError(f"{path} is not a checkpoint file ({kind}); {EXPECTED}")
    g = build_generator(sd, latent_avg, source=path, conv_clamp=conv_clamp, sg3=sg3)
    info = generator_info(g, fmt)
    info["path"] = str(path)
    info["sha256"] = sha256_file(path)
    return g, info


def _check_file(path: Path) -> None:
    user_files.check(path, CheckpointError, f"; {EXPECTED}")  # before opening: a FIFO would block for ever
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes: an interrupted download or copy?); {EXPECTED}")


def sniff(path: Path) -> str:
    """'torch' (zip or legacy torch.save), 'pickle' (a plain pickle), or a short description."""
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "torch"
    if head[:1] == b"\x80" and len(head) >= 2:
        # A legacy torch.save pickles its magic number first: LONG1 opcode right after PROTO.
        if b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19" in head:
            return "torch"
        return "pickle"
    if head.lstrip()[:1] in (b"{", b"[", b"<") or _looks_like_text(head):
        return "a text file, not weights"
    return "unknown binary format"


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c >= 9 for c in head)


def _read_torch(path: Path) -> tuple[dict[str, Tensor], Tensor | None, str, float | None, SG3Config | None]:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain containers, refused for safety ({_short(exc)}); "
            f"{EXPECTED}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged or truncated ({_short(exc)}); {EXPECTED}") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a dict; {EXPECTED}")
    if "g_ema" in obj:
        sd = obj["g_ema"]
        if not isinstance(sd, Mapping):
            raise CheckpointError(f"{path}: 'g_ema' is a {type(sd).__name__}, not a state dict; {EXPECTED}")
        latent_avg = obj.get("latent_avg")
        fmt = "rosinality"
    elif "input.input" in obj or "style.1.weight" in obj:
        sd, latent_avg, fmt = obj, None, "rosinality-state-dict"
    else:
        keys = ", ".join(sorted(map(str, obj))[:8])
        raise CheckpointError(f"{path} has no 'g_ema' entry (keys: {keys}); {EXPECTED}")
    if latent_avg is not None and not isinstance(latent_avg, Tensor):
        latent_avg = None
    # Our extra top-level entry for stylegan2-ada-pytorch generators (rosinality's tools ignore it).
    conv_clamp = obj.get("conv_clamp") if "g_ema" in obj else None
    if conv_clamp is not None:
        if isinstance(conv_clamp, Tensor) and conv_clamp.numel() == 1:
            conv_clamp = conv_clamp.item()
        number = isinstance(conv_clamp, (int, float)) and not isinstance(conv_clamp, bool)
        if not number or not 0 < conv_clamp < float("inf"):
            raise CheckpointError(f"{path}: 'conv_clamp' is {conv_clamp!r}, not a positive number; {EXPECTED}")
        conv_clamp = float(conv_clamp)
    sg3 = obj.get("stylegan3") if "g_ema" in obj else None
    if sg3 is not None:
        try:
            sg3 = SG3Config.from_dict(sg3)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise CheckpointError(
                f"{path}: its 'stylegan3' entry is not a StyleGAN3 description ({_short(exc)})"
            ) from None
        fmt = "stylegan3"
    return dict(sd), latent_avg, fmt, conv_clamp, sg3


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def complete_state_dict(sd: Mapping[str, Tensor], config: GeneratorConfig) -> dict[str, Tensor]:
    """Add the buffers some checkpoints omit (blur/upsample kernels, noise maps) from a fresh model.

    Kernels are fixed functions of the architecture; missing noise maps get seeded random values.
    """
    n_blocks = config.log_size - 2
    expected_buffers = [f"noises.noise_{i}" for i in range(config.num_noises)]
    expected_buffers += [f"convs.{2 * j}.conv.blur.kernel" for j in range(n_blocks)]
    expected_buffers += [f"to_rgbs.{j}.upsample.kernel" for j in range(n_blocks)]
    if all(k in sd for k in expected_buffers):
        return dict(sd)  # the usual case: no need to build a reference model
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ref = Generator(config)
    out = dict(sd)
    buffers = dict(ref.named_buffers())
    for key, value in ref.state_dict().items():
        if key not in out and key in buffers:
            out[key] = value
    return out


def build_generator(
    sd: Mapping[str, Tensor],
    latent_avg: Tensor | None = None,
    source: str | Path = "checkpoint",
    conv_clamp: float | None = None,
    sg3: SG3Config | None = None,
) -> AnyGenerator:
    """State dict -> Generator with a structural check: keys, shapes and finite weights.

    `conv_clamp` (stylegan2-ada-pytorch's activation clamp) is not in the state dict: callers pass it.
    `sg3`: the StyleGAN3 description that goes with `sd` (published tensor names); None for StyleGAN2.
    """
    if sg3 is not None:
        return _checked(_build_sg3(sd, latent_avg, source, sg3), source)
    try:
        config = GeneratorConfig.from_state_dict(sd, conv_clamp=conv_clamp)
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        raise CheckpointError(
            f"{source}: the weights are not a StyleGAN2 generator ({_short(exc)}); {EXPECTED}"
        ) from None
    full = complete_state_dict(sd, config)
    bad = [k for k, v in full.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries {bad[:5]} are not tensors; {EXPECTED}")
    full = {k: v.float() if v.is_floating_point() else v for k, v in full.items()}
    try:
        g = Generator.from_state_dict(full, latent_avg.float() if latent_avg is not None else None, config=config)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{source}: the weights do not fit a StyleGAN2 generator of the inferred shape "
            f"(size {config.size}, {config.n_mlp} mapping layers): {_short(exc)}"
        ) from None
    return _checked(g, source)


def _build_sg3(sd: Mapping[str, Tensor], latent_avg: Tensor | None, source: str | Path,
               config: SG3Config) -> StyleGAN3Generator:
    bad = [k for k, v in sd.items() if not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries {bad[:5]} are not tensors; {EXPECTED}")
    full = {k: v.float() for k, v in sd.items()}
    try:
        return StyleGAN3Generator.from_file_state_dict(config, full, None if latent_avg is None else latent_avg.float())
    except RuntimeError as exc:
        raise CheckpointError(
            f"{source}: the weights do not fit the StyleGAN3 generator its description gives "
            f"({config.img_resolution} px, config {config.kind}): {_short(exc)}"
        ) from None


def _checked(g: AnyGenerator, source: str | Path) -> AnyGenerator:
    # Every tensor the generator uses, buffers and the truncation centre included: one NaN or inf in any
    # of them makes every image black.
    nonfinite = nonfinite_names({**g.state_dict(), "latent_avg": g.latent_avg})
    if nonfinite:
        names = ", ".join(repr(k) for k in nonfinite[:5])
        raise CheckpointError(f"{source}: tensor {names} contains NaN or inf; the file is damaged")
    return g


def generator_info(g: AnyGenerator, fmt: str) -> dict[str, Any]:
    c = g.config
    if isinstance(c, SG3Config):
        return {
            "format": fmt,
            "family": f"stylegan3-{c.kind}",
            "size": c.img_resolution,
            "n_mlp": c.mapping_layers,
            "style_dim": c.w_dim,
            "channel_multiplier": None,
            "n_latent": g.n_latent,
            "has_latent_avg": g.has_latent_avg,
        }
    return {
        "family": "stylegan2",
        "format": fmt,
        "size": c.size,
        "n_mlp": c.n_mlp,
        "style_dim": c.style_dim,
        "channel_multiplier": c.channel_multiplier,
        "n_latent": c.n_latent,
        "has_latent_avg": g.has_latent_avg,
    }


def rosinality_dict(generator: AnyGenerator) -> dict[str, Any]:
    """{"g_ema": full state dict, "latent_avg": tensor} on CPU: what rosinality's and NADA's tools load.

    Generators with an activation clamp (from stylegan2-ada-pytorch) also get a top-level "conv_clamp"
    float; rosinality's tools read only the keys they know, so they still load the file. A StyleGAN3
    generator gets its tensors under the published names and its description as "stylegan3".
    """
    if isinstance(generator, StyleGAN3Generator):
        return {
            "g_ema": {k: v.detach().cpu().clone() for k, v in generator.file_state_dict().items()},
            "latent_avg": generator.latent_avg.detach().cpu().clone(),
            "stylegan3": generator.config.to_dict(),
        }
    data: dict[str, Any] = {
        "g_ema": {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()},
        "latent_avg": generator.latent_avg.detach().cpu().clone(),
    }
    if generator.config.conv_clamp is not None:
        data["conv_clamp"] = float(generator.config.conv_clamp)
    return data


def save_rosinality(generator: AnyGenerator, path: str | Path) -> Path:
    """Write `rosinality_dict(generator)` to `path` atomically. The temp name is unique, so two threads
    (or processes) may save the same model at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = rosinality_dict(generator)
    atomic.write_with(path, lambda buf: torch.save(data, buf))
    return path
