"""`python -m engine.gpucheck`: every GPU check in one call, meant to finish in under 5 minutes.

1. the gpu-marked tests (`pytest -m gpu`, when the repository's tests folder is present);
2. `python -m engine.bench --device cuda --sizes 256 1024`: each precision (fp32, tf32, bf16), the
   fused path and the default, selection and plain steps, peak memory;
3. a 300-step training run of a 1024 px generator (config-f shape) with ViT-B/32- and ViT-B/16-shaped
   CLIP models (random weights: speed and memory do not depend on them), default settings, printing
   its total seconds, steps/s and peak memory.

It prints the seconds each part took and the total, and exits 0 when every part passed, 1 when one
failed, 2 on a machine without CUDA.

    python -m engine.gpucheck
    python -m engine.gpucheck --device cuda:1 --precision bf16 --skip-bench
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

BUDGET_S = 300


def run_tests(device: str) -> bool:
    tests = Path(__file__).resolve().parents[1] / "tests"
    if not tests.is_dir():
        print("tests: no tests folder next to the engine (an installed wheel?): skipped")
        return True
    env = None
    if device.startswith("cuda:"):  # the tests use "cuda": point it at the chosen GPU
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": device.split(":", 1)[1]}
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(tests)]
    return subprocess.run(cmd, cwd=tests.parent, env=env).returncode == 0


def run_bench(device: str) -> bool:
    cmd = [sys.executable, "-m", "engine.bench", "--device", device, "--sizes", "256", "1024", "--no-tiny"]
    return subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1]).returncode == 0


def training_run(device_name: str, steps: int, precision: str) -> bool:
    import torch

    from engine import device as devices
    from engine.bench import fmt_bytes, real_generator, vit_b16_shaped, vit_b32_shaped
    from engine.config import TrainConfig
    from engine.trainer import Trainer

    device = devices.resolve_device(device_name)
    b32, b16 = vit_b32_shaped(), vit_b16_shaped()
    cfg = TrainConfig(
        source="a photo of a person",
        target="a pencil sketch of a person",
        iterations=steps,
        clip_models=((b32.name, 1.0), (b16.name, 1.0)),
        precision=precision,
    )
    tr = Trainer(cfg, real_generator(1024), {b32.name: b32, b16.name: b16}, device=device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    last = None
    while not tr.done:
        last = tr.step()
    torch.cuda.synchronize(device)
    total = time.perf_counter() - t0
    peak = devices.memory(device)
    assert last is not None
    finite = all(math.isfinite(v) for v in last.losses.values())
    print(
        f"training run: 1024 px, ViT-B/32 + ViT-B/16 shapes, batch {cfg.batch}, {steps} steps, precision "
        f"{precision}: {total:.1f} s total, {steps / total:.2f} steps/s, peak memory {fmt_bytes(peak.used_bytes)}"
        + (f" of {fmt_bytes(peak.total_bytes)}" if peak.total_bytes else "")
        + f", final loss {last.losses['total']:.4f}"
    )
    if not finite:
        print(f"training run: the losses are not finite: {last.losses}")
    return finite


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.gpucheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda or cuda:N")
    p.add_argument("--steps", type=int, default=300, help="steps of the 1024 px training run")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "tf32", "bf16"), help="of the run")
    p.add_argument("--skip-tests", action="store_true")
    p.add_argument("--skip-bench", action="store_true")
    p.add_argument("--skip-run", action="store_true")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")

    import torch

    if not torch.cuda.is_available():
        print(
            "gpucheck needs a CUDA GPU, and PyTorch sees none here "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}). "
            "Run it on the GPU machine; on a CPU use `python -m engine.bench` and pytest.",
            file=sys.stderr,
        )
        return 2
    if not args.device.startswith("cuda"):
        print(f"gpucheck runs on CUDA devices only, not {args.device!r}", file=sys.stderr)
        return 2
    idx = int(args.device.split(":", 1)[1]) if ":" in args.device else 0
    print(f"gpucheck on {torch.cuda.get_device_name(idx)}, torch {torch.__version__}, CUDA {torch.version.cuda}")

    start = time.perf_counter()
    results: dict[str, bool] = {}
    run_name = f"{args.steps}-step 1024 px run"
    parts = [
        ("gpu tests", args.skip_tests, lambda: run_tests(args.device)),
        ("bench 256 + 1024 px, every precision", args.skip_bench, lambda: run_bench(args.device)),
        (run_name, args.skip_run, lambda: training_run(args.device, args.steps, args.precision)),
    ]
    for name, skip, fn in parts:
        if skip:
            continue
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            ok = fn()
        except Exception as exc:  # one broken part must not hide the others' figures
            print(f"{name}: failed: {type(exc).__name__}: {exc}")
            ok = False
        results[name] = ok
        print(f"== {name}: {'ok' if ok else 'FAILED'} in {time.perf_counter() - t0:.1f} s", flush=True)
    total = time.perf_counter() - start
    print(f"\ngpucheck total: {total:.1f} s" + (f" (over the {BUDGET_S} s budget)" if total > BUDGET_S else ""))
    for name, ok in results.items():
        print(f"  {'ok    ' if ok else 'FAILED'} {name}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
