"""`python -m engine.bench_sg3`: seconds and peak memory of StyleGAN3 renders, per config and path.

Random weights at the published widths (speed does not depend on them). Each row runs in a fresh process
so the CPU's peak RSS belongs to it alone (CUDA: max allocated). It prints wall and CPU seconds
(process_time: on a shared box only the CPU time says what the render cost). Rows:
- "sample": a render without gradients (what previews use);
- "train": a render whose weights need gradients, then backward of the mean (a generator's share of a
  training step), with the byte-per-value filtered leaky ReLU;
- "train-plain": the same with autograd keeping its own float tensors.

    python -m engine.bench_sg3 --size 256 --threads 1            # both configs, every row
    python -m engine.bench_sg3 --device cuda --size 1024
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from typing import Any

import torch

from engine.sg3_ops import plain_autograd
from engine.stylegan2 import modconv_path
from engine.stylegan3 import fresh_generator

ROWS = ("sample", "train", "train-plain")
TAG = "SG3_BENCH "


def measure(kind: str, size: int, row: str, device: str, batch: int, threads: int) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    g = fresh_generator(size, kind).to(device)
    g.requires_grad_(row.startswith("train"))
    for p in [*g.mapping_net.parameters(), *(layer.affine.weight for layer in g.synthesis_net.layers())]:
        p.requires_grad_(False)
    ws = g.w_plus(g.mapping(torch.randn(batch, g.z_dim, device=device)).detach())
    path = "fused" if row == "sample" else "split"
    plain = plain_autograd() if row == "train-plain" else contextlib.nullcontext()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    with modconv_path(path), plain, torch.set_grad_enabled(row.startswith("train")):
        img = g.render(w_plus=ws)
        if row.startswith("train"):
            img.mean().backward()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"config": f"SG3-{kind}", "size": size, "row": row, "batch": batch, "device": device,
            "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2),
            "peak_gib": round(peak, 2)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--configs", nargs="+", default=["t", "r"])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # "kind,row": measure in this process
    args = ap.parse_args(argv)
    if args.one:
        kind, row = args.one.split(",")
        print(TAG + json.dumps(measure(kind, args.size, row, args.device, args.batch, args.threads)), flush=True)
        return
    print("| config | px | row | batch | device | wall s | CPU s | peak GiB |\n|---|---|---|---|---|---|---|---|")
    for kind in args.configs:
        for row in args.rows:
            cmd = [sys.executable, "-m", "engine.bench_sg3", "--one", f"{kind},{row}", "--size", str(args.size),
                   "--device", args.device, "--batch", str(args.batch), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            r = json.loads(next(line for line in out.splitlines() if line.startswith(TAG))[len(TAG):])
            print(f"| {r['config']} | {r['size']} | {r['row']} | {r['batch']} | {r['device']} | {r['seconds']} "
                  f"| {r['cpu_seconds']} | {r['peak_gib']} |", flush=True)


if __name__ == "__main__":
    main()
