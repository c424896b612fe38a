"""Device choice, GPU settings and memory readings."""

from __future__ import annotations

import resource
import sys

import torch

from engine.events import DeviceMemory


def resolve_device(requested: str | torch.device | None = None) -> torch.device:
    """ "auto"/None -> CUDA when present, else CPU. An explicit CUDA request without CUDA is an error."""
    if requested is None or str(requested) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but PyTorch sees no CUDA GPU here; use --device cpu.")
    return device


def configure(device: torch.device, precision: str = "auto") -> None:
    """TF32 matmuls/convs on Ampere and newer unless precision is "fp32" (CUDA only; CPUs have no TF32)."""
    if device.type == "cuda":
        tf32 = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True


def memory(device: torch.device) -> DeviceMemory:
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        total = torch.cuda.get_device_properties(idx).total_memory
        return DeviceMemory(f"cuda:{idx}", int(torch.cuda.max_memory_allocated(idx)), int(total))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return DeviceMemory("cpu", int(peak * (1 if sys.platform == "darwin" else 1024)), None)
