"""The measuring parts of `python -m engine.gpucheck`, each run in its own process: a saved training
session, a profiler summary, and the precisions compared. Each returns a JSON-ready dict.

Models have random weights in real shapes (a config-f generator, a ViT-B/32-shaped CLIP): speed, memory
and precision behaviour do not depend on the weights, and the GPU machine needs no download. `dry`
swaps in the tiny test models (32 px generator, tiny CLIP) so the parts can be exercised on a CPU; such
figures say nothing about a GPU.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from typing import Any

import torch

from engine import device as devices
from engine import sessions
from engine.config import TrainConfig
from engine.events import CheckpointSaved, Event, PreviewReady, StepMetrics, TrainingFailed, TrainingFinished
from engine.trainer import Trainer

SIZE = 1024


def _models(dry: bool, size: int) -> tuple[Any, Any]:
    from engine.bench import real_generator, vit_b32_shaped
    from engine.demo import tiny_clip, tiny_generator

    if dry:
        return tiny_generator(32), tiny_clip(0)
    return real_generator(size), vit_b32_shaped()


def _trainer(device: torch.device, dry: bool, size: int = SIZE, **config: Any) -> Trainer:
    gen, enc = _models(dry, size)
    cfg = TrainConfig(
        source="a photo of a person",
        target="a pencil sketch of a person",
        clip_models=((enc.name, 1.0),),
        **config,
    )
    return Trainer(cfg, gen, {enc.name: enc}, device=device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


# ----- 1. a real session --------------------------------------------------------------------------
def session(device: torch.device, dry: bool) -> dict[str, Any]:
    """100 steps (dry: 8) as a saved session: the Run / train_session path `nada-tui train` takes (its
    model loading aside), checkpoints and previews every 25 steps (dry: 3), written on the run's writer
    thread."""
    from engine.live_run import Run, train_session

    steps, every = (8, 3) if dry else (100, 25)

    tr = _trainer(device, dry, iterations=steps, preview_every=every)
    _reset_peak(device)
    stamps: list[float] = []
    seen: dict[str, int] = {"checkpoints": 0, "previews": 0}
    end: list[Event] = []

    def on_event(e: Event) -> None:
        if isinstance(e, StepMetrics):
            stamps.append(time.perf_counter())
        elif isinstance(e, CheckpointSaved):
            seen["checkpoints"] += 1
        elif isinstance(e, PreviewReady):
            seen["previews"] += 1
        elif isinstance(e, TrainingFinished | TrainingFailed):
            end.append(e)

    with tempfile.TemporaryDirectory(prefix="nada-gpucheck-") as root:
        base = {"id": "gpucheck", "weights_sha256": sessions.weights_sha256(tr.frozen)}
        run = Run(sessions.create(tr.state_dict(), base, name="gpucheck", root=root), tr, every)
        t0 = time.perf_counter()
        with run:
            res = train_session(run, on_event=on_event, handle_signals=False)
            write_s = run.writer.last_checkpoint_time_s
        total = time.perf_counter() - t0
        info = sessions.list_sessions(root)[0]
        pngs = len(sessions.samples(info.path))
        grid = (info.path / sessions.GRID_FILE).is_file()
    gaps = [(b - a) * 1000 for a, b in zip(stamps, stamps[1:], strict=False)]
    losses = dict(res.losses)
    return {
        "steps": res.step,
        "status": res.status,
        "saved_step": res.saved_step,
        "listed_status": info.status,
        "seconds": round(total, 2),
        "steps_per_s": round(res.step / total, 3) if total else None,
        "ms_per_step_median": round(statistics.median(gaps), 2) if gaps else None,
        "checkpoints_reported": seen["checkpoints"],
        "checkpoint_write_ms": None if write_s is None else round(write_s * 1000, 1),
        "previews": seen["previews"],
        "sample_pngs": pngs,
        "grid_png": grid,
        "final_losses": losses,
        "losses_finite": bool(losses) and all(math.isfinite(v) for v in losses.values()),
        "peak_memory_bytes": devices.memory(device).used_bytes,
        "ok": res.status == "finished" and res.saved_step == res.step and grid,
    }


# ----- 2. the profiler ----------------------------------------------------------------------------
def _busy_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals (kernels on several streams may overlap)."""
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def profile(device: torch.device, dry: bool) -> dict[str, Any]:
    """torch.profiler over 10 training steps (dry: 2) after 3 (dry: 1): the GPU's busy fraction (union
    of kernel times over the wall time), kernels and launches per step, the top kernels by time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    steps, warmup = (2, 1) if dry else (10, 3)

    tr = _trainer(device, dry, iterations=warmup + steps + 1)
    for _ in range(warmup):
        tr.step()
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    with torch_profile(activities=activities) as prof:
        for _ in range(steps):
            tr.step()
        if cuda:
            torch.cuda.synchronize(device)
    wall_us = (time.perf_counter() - t0) * 1e6
    events = prof.events()
    kernels = [e for e in events if cuda and e.device_type == torch.autograd.DeviceType.CUDA]
    launches = [e for e in events if "LaunchKernel" in e.name]  # cudaLaunchKernel, cuLaunchKernelEx, ...
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        by_name.setdefault(e.name, []).append(e.time_range.end - e.time_range.start)
    busy = _busy_us([(e.time_range.start, e.time_range.end) for e in kernels])
    kernel_us = sum(sum(v) for v in by_name.values())
    top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:10]
    if not cuda:  # no kernels: the top CPU ops by their own time instead
        avg = sorted(prof.key_averages(), key=lambda a: -a.self_cpu_time_total)[:10]
        top_list = [{"name": a.key, "calls": a.count, "total_ms": round(a.self_cpu_time_total / 1000, 2)} for a in avg]
    else:
        top_list = [
            {"name": name[:120], "calls": len(t), "total_ms": round(sum(t) / 1000, 2),
             "share": round(sum(t) / kernel_us, 3) if kernel_us else None}
            for name, t in top
        ]
    return {
        "steps": steps,
        "wall_ms_per_step": round(wall_us / steps / 1000, 2),
        "gpu_busy_fraction": round(busy / wall_us, 3) if cuda and wall_us else None,
        "kernels_per_step": round(len(kernels) / steps, 1) if cuda else None,
        "launches_per_step": round(len(launches) / steps, 1) if cuda else None,
        "top_kernels": top_list,
        "ok": True,
    }


# ----- 3. precisions ------------------------------------------------------------------------------
def precisions(device: torch.device, dry: bool) -> dict[str, Any]:
    """The same run (seed, data, schedule) for 20 steps (dry: 3) in fp32, tf32 and bf16: losses per step,
    ms/step, and the largest |difference| of the total loss between each pair."""
    steps = 3 if dry else 20
    names = ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "tf32"]  # no bf16 on a CPU
    runs: dict[str, dict[str, Any]] = {}
    for name in names:
        tr = _trainer(device, dry, iterations=steps, precision=name)
        losses, times = [], []
        for _ in range(steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            m = tr.step()  # the loss comes back as a float: the step has synchronised
            times.append((time.perf_counter() - t0) * 1000)
            losses.append(m.losses["total"])
        runs[name] = {"losses": losses, "ms_per_step_median": round(statistics.median(times[1:] or times), 2)}
        del tr
    diffs = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = [abs(x - y) for x, y in zip(runs[a]["losses"], runs[b]["losses"], strict=True)]
            diffs[f"{b}_vs_{a}"] = {"step_1": d[0], "max": max(d), "last": d[-1]}
    finite = all(math.isfinite(v) for r in runs.values() for v in r["losses"])
    skipped = {} if "bf16" in names else {"bf16": "runs on CUDA only"}
    return {"steps": steps, "runs": runs, "loss_differences": diffs, "skipped": skipped, "ok": finite}


PARTS = {"session": session, "profile": profile, "precision": precisions}
