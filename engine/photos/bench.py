"""`python -m engine.bench --photos`: seconds per photo of inversion at real generator sizes, one photo at
a time against a batch, with LPIPS (VGG16) as the distance (random weights for every network: the cost
does not depend on them, and nothing is downloaded).

Each (size, batch) times --steps optimisation steps of one inversion after its first two and reports
the mean step time, the seconds per photo per step (step time / batch) and the extrapolation to --total
steps (500, the default of `nada-tui photos`). On a CPU the table also gives the process CPU time per step: with
--threads 1 that is the work done, whatever else runs on a shared machine.

    python -m engine.bench --photos                          # 256 px, batch 1 and 4
    python -m engine.bench --photos --sizes 256 1024 --batches 1 4 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch

from engine import device as devices
from engine.photos.inversion import invert_batch
from engine.photos.perceptual import LpipsVgg
from engine.stylegan2 import Generator, GeneratorConfig


def real_generator(size: int, device: torch.device) -> Generator:
    """The shape of the official models (style 512, 8 mapping layers, channel multiplier 2), random."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        g = Generator(GeneratorConfig(size=size, style_dim=512, n_mlp=8, channel_multiplier=2))
    g.set_latent_avg(None, samples=256)
    return g.to(device).eval()


def time_steps(g: Generator, distance: LpipsVgg, batch: int, steps: int, warmup: int = 2) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per step of one inversion, over `steps` steps after its first
    `warmup`: a step of a long inversion, without what an inversion pays once (the photos' features, the
    first steps' allocations, the final render), which a batch pays in proportion to its size."""
    device = g.latent_avg.device
    targets = torch.rand(batch, 3, g.size, g.size, device=device) * 2 - 1
    clocks: list[tuple[float, float]] = []

    def mark(step: int, losses: list[float], images: torch.Tensor | None) -> None:
        # the losses were just copied to the host, so a GPU has finished the step
        if step >= warmup:
            clocks.append((time.perf_counter(), time.process_time()))

    invert_batch(g, targets, distance, warmup + steps, on_step=mark, preview_every=0)
    (wall0, cpu0), (wall1, cpu1) = clocks[0], clocks[-1]
    return (wall1 - wall0) / steps, (cpu1 - cpu0) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.bench --photos", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256], help="generator sizes (256, 512, 1024)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="photos optimised together")
    p.add_argument("--steps", type=int, default=3, help="steps timed per case (after two warm-up steps)")
    p.add_argument("--total", type=int, default=500, help="steps per photo to extrapolate to")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = devices.resolve_device(args.device)
    distance = LpipsVgg(None).to(device)
    print(f"photo inversion  device {device}  torch {torch.__version__}  threads {torch.get_num_threads()}  "
          f"{args.steps} steps timed per case after 2, extrapolated to {args.total}")
    at = f"@{args.total}"
    print(f"{'size':>5} {'batch':>5} {'s/step':>9} {'cpu s/step':>10} {'s/photo/step':>12} "
          f"{'s/photo ' + at:>14} {'cpu s/photo ' + at:>16}")
    for size in args.sizes:
        g = real_generator(size, device)
        for batch in args.batches:
            wall, cpu = time_steps(g, distance, batch, args.steps)
            per_photo = wall / batch
            print(f"{size:>5} {batch:>5} {wall:>9.3f} {cpu:>10.3f} {per_photo:>12.3f} {per_photo * args.total:>14.1f} "
                  f"{cpu / batch * args.total:>16.1f}", flush=True)
        del g
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
