"""`python -m engine.bench`: ms per training step, peak memory and steps/s.

Each model config is timed with layer selection every step (the reference's behaviour,
auto_layer_interval 1) and with ours (interval 10, then interval 10 with falloff), same k, batch and
CLIP models. Weights are random: speed does not depend on them. The last line is
`interval speedup: X.XXx` = ms/step at interval 1 / ms/step at interval 10 for the last config.

    python -m engine.bench --quick              # tiny config only, < 60 s on 2 CPU cores
    python -m engine.bench                      # tiny + real 256 px (cm 2, n_mlp 8) + ViT-B/32 shape
    python -m engine.bench --device cuda --sizes 256 1024
    python -m engine.bench --tui                # also steps/s with the TUI attached vs headless
"""

from __future__ import annotations

import argparse
import gc
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine import device as devices
from engine.clip_loss import ClipEncoder, _clip_module
from engine.config import TrainConfig
from engine.demo import tiny_clip, tiny_generator
from engine.stylegan2 import Generator, GeneratorConfig
from engine.trainer import Trainer


@dataclass
class BenchCase:
    name: str
    make_generator: Callable[[], Generator]
    make_clip: Callable[[], ClipEncoder]
    steps: int


@dataclass
class BenchResult:
    case: str
    schedule: str
    ms_per_step: float
    peak_bytes: int
    steps: int

    @property
    def steps_per_s(self) -> float:
        return 1000.0 / self.ms_per_step


def vit_b32_shaped(seed: int = 0) -> ClipEncoder:
    """ViT-B/32's architecture (151 M parameters) with random weights."""
    clip = _clip_module()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = clip.model.CLIP(512, 224, 12, 768, 32, 77, 49408, 512, 8, 12)
    return ClipEncoder(model.float(), "ViT-B/32-shape")


def real_generator(size: int) -> Generator:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        g = Generator(GeneratorConfig(size=size, style_dim=512, n_mlp=8, channel_multiplier=2))
    g.set_latent_avg(None, samples=256)
    return g.eval()


SCHEDULES = {
    "select every step": dict(auto_layer_interval=1, auto_layer_falloff=0),
    "interval 10": dict(auto_layer_interval=10, auto_layer_falloff=0),
    "interval 10 + falloff 50": dict(auto_layer_interval=10, auto_layer_falloff=50),
}


def time_schedule(case: BenchCase, schedule: dict, device: torch.device, batch: int) -> BenchResult:
    gen, enc = case.make_generator(), case.make_clip()
    cfg = TrainConfig(
        source="a photo of a dog",
        target="a sketch of a dog",
        iterations=case.steps + 2,
        batch=batch,
        clip_models=((enc.name, 1.0),),
        **schedule,
    )
    tr = Trainer(cfg, gen, {enc.name: enc}, device=device)
    # Warm-up: one selection step and one plain step, then a fresh schedule so that the timed window
    # holds exactly steps / interval selections.
    tr.step()
    tr.step()
    tr.step_count = 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(case.steps):
        tr.step()  # each step already syncs once to read its losses
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ms = (time.perf_counter() - start) * 1000 / case.steps
    peak = devices.memory(device).used_bytes
    del tr, gen, enc
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return BenchResult(
        case.name, next(k for k, v in SCHEDULES.items() if v == schedule), ms, peak, case.steps
    )


def cases(args: argparse.Namespace) -> list[BenchCase]:
    out = [
        BenchCase("tiny 32px + tiny CLIP", lambda: tiny_generator(32), lambda: tiny_clip(0), args.tiny_steps)
    ]
    if not args.quick:
        for size in args.sizes:
            out.append(
                BenchCase(
                    f"real {size}px cm2 + ViT-B/32 shape",
                    lambda s=size: real_generator(s),
                    vit_b32_shaped,
                    args.real_steps,
                )
            )
    return out


def fmt_bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny config only (under a minute on 2 CPU cores)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--sizes", type=int, nargs="+", default=[256], help="real generator sizes to time")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--tiny-steps", type=int, default=30)
    p.add_argument("--real-steps", type=int, default=10)
    p.add_argument("--tui", action="store_true", help="also measure steps/s with the TUI attached")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    device = devices.resolve_device(args.device)
    threads = torch.get_num_threads()
    print(
        f"device {device}  torch {torch.__version__}  threads {threads}  batch {args.batch}  "
        "auto_layer_batch 8  k = int(2 * n_latent / 3)"
    )
    if device.type == "cpu":
        print("peak memory on CPU is the process's peak RSS so far (it only grows down the table)")
    header = f"{'config':<36} {'schedule':<26} {'ms/step':>9} {'steps/s':>8} {'peak mem':>10}"
    print(header)
    print("-" * len(header))
    speedup = None
    for case in cases(args):
        res = {}
        for label, sched in SCHEDULES.items():
            r = time_schedule(case, sched, device, args.batch)
            res[label] = r
            print(
                f"{r.case:<36} {label:<26} {r.ms_per_step:>9.1f} {r.steps_per_s:>8.2f} "
                f"{fmt_bytes(r.peak_bytes):>10}",
                flush=True,
            )
        speedup = res["select every step"].ms_per_step / res["interval 10"].ms_per_step
    if args.tui:
        from nada_tui.bench import measure_tui_overhead  # only here: the engine never needs the TUI

        tui = measure_tui_overhead()
        print(
            f"TUI attached: {tui['tui_steps_per_s']:.2f} steps/s, headless: {tui['headless_steps_per_s']:.2f} "
            f"steps/s ({100 * tui['tui_steps_per_s'] / tui['headless_steps_per_s']:.1f}% of headless)"
        )
    print(f"interval speedup: {speedup:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
