"""Device choice, GPU settings and memory readings."""

from __future__ import annotations

import re
import resource
import sys

import torch

from engine.config import ConfigError
from engine.events import DeviceMemory

DEVICE_NAME = re.compile(r"cpu|cuda(:\d+)?|mps")


def _mps() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device_choices() -> str:
    """The device names this machine takes, in words."""
    return "auto, cpu, cuda or cuda:N" + (", mps" if _mps() else "")


def resolve_device(requested: str | torch.device | None = None) -> torch.device:
    """ "auto"/None -> CUDA when present, else CPU. An unknown name, or a device this machine lacks, is a
    ConfigError that lists the names it takes."""
    if requested is None or str(requested).strip().lower() in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(requested, torch.device):
        device = requested
    else:
        name = str(requested).strip().lower()
        if not DEVICE_NAME.fullmatch(name):
            raise ConfigError("device", f"{requested!r} is not a device nada-tui knows; use {device_choices()}")
        device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but PyTorch sees no CUDA GPU here; use --device cpu.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ConfigError("device", f"{device} does not exist: this machine has {n} CUDA GPU(s), cuda:0 to "
                          f"cuda:{n - 1}")
    if device.type == "mps" and not _mps():
        raise ConfigError("device", f"mps is not available here; use {device_choices()}")
    return device


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse bf16 where it cannot run natively: off CUDA, and on GPUs older than Ampere (compute capability
    below 8.0, where bfloat16 is emulated, slowly)."""
    if precision != "bf16":
        return
    if device.type != "cuda":
        raise ConfigError("precision", f"bf16 runs on CUDA only; on {device.type} use fp32 (what auto picks there)")
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 0):
        raise ConfigError(
            "precision",
            f"bf16 needs a GPU with native bfloat16 (compute capability 8.0 or newer: Ampere and later); this "
            f"one is {major}.{minor}: use tf32 or fp32",
        )


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


def available_bytes(device: torch.device) -> int | None:
    """Memory a computation on `device` can still take: on CUDA free plus cached-but-unused, on a CPU the
    system's MemAvailable (Linux); None where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
