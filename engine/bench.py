"""`python -m engine.bench`: where a training step's time goes, for the fused path and the default.

Two modulated-conv paths are compared on the same configs (random weights; speed does not depend on
them):
- "fused": every layer as a per-sample grouped conv with zero-insertion filters, which is how every
  step ran before the split path existed (forced with `engine.stylegan2.modconv_path("fused")`);
- "default": what training runs now (split wherever gradients flow; see engine.stylegan2).

Each (config, precision, path) is measured on a real `Trainer` in a fresh process (on CUDA one process
per config runs them in turn, resetting the peak-memory counter in between): one selection pass alone
(auto_layer_batch codes, forward and backward), and one plain step (no selection) at each k that the
default schedule goes through. Per schedule the table then gives
    ms/step = mean plain ms over the run's k(t) + selection ms x selections per step
over a run of --iterations steps: the reference's "select every step" (interval 1, no falloff) and
ours.

Peak memory, per resolution at the end: on CUDA `torch.cuda.max_memory_allocated` (tensors only, not the
caching allocator's spare reserve), reset before the selection pass and before the plain steps, so each
has its own figure. On a CPU no counter can be reset: the figure is the worker process's peak RSS
(`ru_maxrss`; one fresh process per config, precision and path), i.e. the models, the selection pass and
the plain steps together, plus Python and torch themselves (a few hundred MiB).

    python -m engine.bench --quick                 # tiny config only, about a minute on 2 CPU cores
    python -m engine.bench --threads 1             # tiny + real 256 px (cm 2) with a ViT-B/32-shaped CLIP
    python -m engine.bench --device cuda --sizes 256 1024   # every precision (fp32, tf32, bf16)
    python -m engine.bench --no-tiny --families sg3-t sg3-r --paths default   # StyleGAN3 training steps
    python -m engine.bench --precision bf16 --device cuda
    python -m engine.bench --ops                   # aten ops per step (engine.opcount; its flags follow)
    python -m engine.bench --photos --sizes 256 1024   # photo inversion, s/photo (engine.photos.bench)
    python -m engine.bench --checkpoint-every 10   # a run with a checkpoint every 10 steps vs none

The app's cost to training (steps/s with the TUI attached vs headless) is `python -m nada_tui.bench`.

On a busy CPU use --threads 1: OpenMP threads that wait for cores held by other processes can make a
step several times slower, and not equally for every path. Every part is timed by the wall clock and,
on a CPU, by the worker's CPU time as well (`--clock cpu` prints that table): with one thread the CPU
time is the work done, whatever else runs on the machine, so comparisons hold on a shared box.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from engine import device as devices
from engine.clip_loss import ClipEncoder, _clip_module
from engine.config import TrainConfig
from engine.demo import tiny_clip, tiny_generator
from engine.generator_files import AnyGenerator
from engine.stylegan2 import Generator, GeneratorConfig, modconv_path
from engine.stylegan3 import fresh_generator

PATHS = ("fused", "default")
FAMILIES = ("sg2", "sg3-t", "sg3-r")
RESULT_TAG = "BENCH_RESULT "


def vit_shaped(patch: int, seed: int) -> ClipEncoder:
    """ViT-B/<patch>'s architecture (about 150 M parameters) with random weights."""
    clip = _clip_module()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = clip.model.CLIP(512, 224, 12, 768, patch, 77, 49408, 512, 8, 12)
    return ClipEncoder(model.float(), f"ViT-B/{patch}-shape")


def vit_b32_shaped(seed: int = 0) -> ClipEncoder:
    return vit_shaped(32, seed)


def vit_b16_shaped(seed: int = 1) -> ClipEncoder:
    """4x the image tokens of B/32."""
    return vit_shaped(16, seed)


def real_generator(size: int) -> Generator:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        g = Generator(GeneratorConfig(size=size, style_dim=512, n_mlp=8, channel_multiplier=2))
    g.set_latent_avg(None, samples=256)
    return g.eval()


# ----- one measurement (runs in its own process) ----------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    case: str  # "tiny", "real" (StyleGAN2 config-f shape), "sg3-t" or "sg3-r" (published SG3 widths)
    size: int
    path: str  # "fused" or "default"
    precision: str
    device: str
    batch: int
    reps: int
    iterations: int
    threads: int = 0  # 0: torch's default
    layer_batch: int = TrainConfig.__dataclass_fields__["auto_layer_batch"].default

    @property
    def label(self) -> str:
        return case_label(self.case, self.size)


def case_label(case: str, size: int) -> str:
    if case == "tiny":
        return "tiny 32px + tiny CLIP"
    if case.startswith("sg3-"):
        return f"SG3-{case[4:]} {size}px + ViT-B/32 shape"
    return f"real {size}px cm2 + ViT-B/32 shape"


def bench_generator(case: str, size: int) -> AnyGenerator:
    if case == "tiny":
        return tiny_generator(32)
    if case.startswith("sg3-"):
        return fresh_generator(size, case[4:])
    return real_generator(size)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, dict[str, float]]:
    """fn() and its {"wall": ms, "cpu": ms of this process's CPU time, all threads}."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    _sync(device)
    return out, {"wall": (time.perf_counter() - t0) * 1000, "cpu": (time.process_time() - c0) * 1000}


def _best(samples: list[dict[str, float]]) -> dict[str, float]:
    return {clock: min(s[clock] for s in samples) for clock in samples[0]}


def measure(spec: Spec) -> dict[str, Any]:
    """Selection ms and plain-step ms per k on a real Trainer with the default schedule."""
    from engine.trainer import Trainer  # here: the table printer never needs the trainer

    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = devices.resolve_device(spec.device)
    gen = bench_generator(spec.case, spec.size)
    enc = tiny_clip(0) if spec.case == "tiny" else vit_b32_shaped()
    cfg = TrainConfig(
        source="a photo of a dog",
        target="a sketch of a dog",
        iterations=spec.iterations,
        batch=spec.batch,
        clip_models=((enc.name, 1.0),),
        precision=spec.precision,
        auto_layer_batch=spec.layer_batch,
    )
    tr = Trainer(cfg, gen, {enc.name: enc}, device=device)
    del gen
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    forced = modconv_path("fused") if spec.path == "fused" else contextlib.nullcontext()
    with forced:
        # Warm-up (CUDA kernels, cuDNN autotuning, oneDNN primitives): cheap everywhere except a real
        # generator on a CPU, where one pass costs tens of seconds and first-call overhead is noise.
        if spec.case == "tiny" or device.type == "cuda":
            tr.step()
        select_ms = []
        _reset_peak(device)
        for _ in range(spec.reps):
            tr.scores, ms = _timed(tr.select_layers, device)
            select_ms.append(ms)
        select_peak = _peak(device)
        _reset_peak(device)
        sched = tr.schedule
        ks = Counter(sched.k_at(t) for t in range(spec.iterations))
        plain: dict[int, dict[str, float]] = {}
        for k in sorted(ks, reverse=True):
            t = next(t for t in range(spec.iterations) if sched.k_at(t) == k and not sched.selects_at(t))
            times = []
            for _ in range(spec.reps if k == sched.k0 else 1):
                tr.step_count = t
                _, ms = _timed(tr.step, device)
                times.append(ms)
            plain[k] = _best(times)
    step_peak = _peak(device)
    peak = max(select_peak or 0, step_peak or 0) if device.type == "cuda" else devices.memory(device).used_bytes
    return {
        "spec": asdict(spec),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "k0": sched.k0,
        "interval": sched.interval,
        "falloff": sched.falloff,
        "select_ms": _best(select_ms),
        "plain_ms": {str(k): v for k, v in plain.items()},
        "k_counts": {str(k): n for k, n in ks.items()},
        "peak_bytes": peak,
        "select_peak_bytes": select_peak,  # None off CUDA
        "step_peak_bytes": step_peak,
    }


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> int | None:
    """CUDA bytes allocated at most since `_reset_peak`; None elsewhere (a CPU's RSS peak cannot be reset)."""
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def measure_all(specs: list[Spec]) -> list[dict[str, Any]]:
    """`measure` for each spec in turn; a failure (CUDA out of memory, ...) becomes {"error": ...}."""
    out = []
    for spec in specs:
        try:
            out.append(measure(spec))
        except Exception as exc:  # reported in the table; the other specs still run
            out.append({"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"})
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return out


def run_worker(specs: list[Spec]) -> list[dict[str, Any]]:
    """`measure_all(specs)` in a fresh Python process; if it dies, every spec gets its stderr tail."""
    cmd = [sys.executable, "-m", "engine.bench", "--worker", json.dumps([asdict(s) for s in specs])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    error = " | ".join(tail) or f"worker exited with {proc.returncode}"
    return [{"error": error} for _ in specs]


# ----- composing schedules ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    schedule: str
    ms_per_step: float
    select_ms: float
    plain_ms: float
    peak_bytes: int


def schedule_rows(res: dict[str, Any], clock: str = "wall") -> list[Row]:
    iters = res["spec"]["iterations"]
    k0, interval, falloff = res["k0"], res["interval"], res["falloff"]
    plain = {int(k): v[clock] for k, v in res["plain_ms"].items()}
    counts = {int(k): n for k, n in res["k_counts"].items()}
    sel = res["select_ms"][clock]
    mean_plain = sum(plain[k] * n for k, n in counts.items()) / iters
    rows = [
        ("select every step (reference)", plain[k0], 1.0),
        (f"interval {interval}", plain[k0], math.ceil(iters / interval) / iters),
        (f"interval {interval} + falloff {falloff} (ours)", mean_plain, math.ceil(iters / interval) / iters),
    ]
    return [Row(name, p + sel * rate, sel, p, res["peak_bytes"]) for name, p, rate in rows]


def fmt_bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def fmt_ms(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 10_000 else f"{ms:.1f} ms"


def peak_line(label: str, precision: str, path: str, res: dict[str, Any]) -> str:
    if res.get("select_peak_bytes") is not None:
        return (
            f"{label} {precision} {path}: selection pass {fmt_bytes(res['select_peak_bytes'])}, plain step "
            f"{fmt_bytes(res['step_peak_bytes'])}"
        )
    return f"{label} {precision} {path}: {fmt_bytes(res['peak_bytes'])}"


def saving_comparison(args: argparse.Namespace, cases: list[tuple[str, int, int]], device: torch.device,
                      precision: str) -> int:
    """`--checkpoint-every N`: each config trained twice, without and with checkpoints (engine.bench_saving)."""
    from engine import bench_saving
    from engine.trainer import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    every = args.checkpoint_every
    steps = args.saving_steps or 3 * every + 1
    print(f"checkpoints: {steps} steps without checkpoints, then with one every {every} steps (previews off)")
    for case, size, _ in cases:
        def make_trainer(case: str = case, size: int = size) -> Trainer:
            gen = bench_generator(case, size)
            enc = tiny_clip(0) if case == "tiny" else vit_b32_shaped()
            cfg = TrainConfig(
                source="a photo of a dog", target="a sketch of a dog", iterations=steps, batch=args.batch,
                clip_models=((enc.name, 1.0),), precision=precision, preview_every=0,
            )
            return Trainer(cfg, gen, {enc.name: enc}, device=device)

        label = case_label(case, size)
        for line in bench_saving.report(label, *bench_saving.compare(make_trainer, every)):
            print(line, flush=True)
    return 0


def precisions_for(args: argparse.Namespace, device: torch.device) -> list[str]:
    if args.precision:
        return [args.precision]
    return ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["auto"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny config only (about a minute on 2 CPU cores)")
    p.add_argument("--no-tiny", action="store_true", help="real sizes only")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--sizes", type=int, nargs="+", default=[256], help="real generator sizes to time")
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=["sg2"],
                   help="generator families at those sizes: sg2 (config-f shape), sg3-t, sg3-r (published widths)")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "tf32", "bf16"),
        help="one precision (default: auto on CPU = fp32; on CUDA every one of fp32, tf32, bf16)",
    )
    p.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS), help="modulated-conv paths to time")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--layer-batch", type=int, default=Spec.layer_batch,
                   help="codes of each selection pass (on a CPU the pass holds them all at once)")
    p.add_argument("--iterations", type=int, default=300, help="run length the schedules are composed over")
    p.add_argument("--tiny-steps", type=int, default=5, help="repetitions of each tiny measurement (best kept)")
    p.add_argument("--real-steps", type=int, default=1, help="repetitions of each real-size measurement")
    p.add_argument("--threads", type=int, default=0, help="torch threads in the workers (0: torch's default)")
    p.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="the table's clock (cpu: process CPU time, CPU only)"
    )
    p.add_argument("--ops", action="store_true", help="count aten ops per step instead (python -m engine.opcount)")
    p.add_argument("--photos", action="store_true",
                   help="time photo inversion instead (python -m engine.photos.bench; its flags follow)")
    p.add_argument(
        "--checkpoint-every", type=int, default=0, metavar="N",
        help="instead: a run with a checkpoint every N steps against one without (engine.bench_saving)",
    )
    p.add_argument("--saving-steps", type=int, default=0, help="steps of each --checkpoint-every run (3N+1)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args, rest = p.parse_known_args(argv)
    if args.ops:
        from engine import opcount

        return opcount.main(rest)
    if args.photos:
        from engine.photos import bench as photo_bench

        shared = ["--device", args.device, "--threads", str(args.threads), "--sizes", *map(str, args.sizes)]
        return photo_bench.main([*rest, *shared])  # flags this parser also has are read here: pass them on
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    warnings.simplefilter("ignore")
    if args.worker:
        given = json.loads(args.worker)
        if isinstance(given, dict):  # one spec: one result
            print(RESULT_TAG + json.dumps(measure(Spec(**given))), flush=True)
        else:
            print(RESULT_TAG + json.dumps(measure_all([Spec(**d) for d in given])), flush=True)
        return 0

    try:
        device = devices.resolve_device(args.device)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    precisions = precisions_for(args, device)
    clocks = ["wall"] if device.type == "cuda" else ["wall", "cpu"]
    if args.clock not in clocks:
        print("error: --clock cpu measures CPU runs only; on CUDA the wall clock is what counts", file=sys.stderr)
        return 2
    if device.type != "cuda" and "bf16" in precisions:
        print(
            "error: --precision bf16 runs on CUDA only. On this CPU, bf16 autocast was not faster than fp32 "
            "(measured at 256 px); use --precision fp32 (or auto).",
            file=sys.stderr,
        )
        return 2
    threads = args.threads or torch.get_num_threads()
    print(
        f"device {device}  torch {torch.__version__}  threads {threads}  batch {args.batch}  auto_layer_batch "
        f"{args.layer_batch}  k0 = int(2 * n_latent / 3)  "
        f"run of {args.iterations} steps"
    )
    cases = [] if args.no_tiny and not args.quick else [("tiny", 32, args.tiny_steps)]
    if not args.quick:
        cases += [("real" if family == "sg2" else family, s, args.real_steps)
                  for family in args.families for s in args.sizes]
    if args.checkpoint_every > 0:
        return saving_comparison(args, cases, device, precisions[0])
    print(
        f"ms/step = mean plain step over the run's k(t) + selection pass x selections per step; "
        f"{'wall clock' if args.clock == 'wall' else 'process CPU time'}"
    )
    header = (
        f"{'config':<34} {'prec':<5} {'path':<8} {'schedule':<34} {'ms/step':>10} {'selection':>10} "
        f"{'plain':>10} {'peak mem':>10}"
    )
    print(header)
    print("-" * len(header))
    summary: list[str] = []
    peaks: list[str] = []
    last_speedup = None
    for case, size, reps in cases:
        specs = [
            Spec(case, size, path, precision, str(device), args.batch, reps, args.iterations, args.threads,
                 args.layer_batch)
            for precision in precisions
            for path in args.paths
        ]
        if device.type == "cuda":  # one process: CUDA start-up and model building once per config
            results = dict(zip(specs, run_worker(specs), strict=True))
        else:  # one process each: a process's peak RSS only grows
            results = {}
        label = specs[0].label
        for precision in precisions:
            by_path: dict[str, dict[str, list[Row]]] = {}
            for path in args.paths:
                spec = next(s for s in specs if s.precision == precision and s.path == path)
                res = results[spec] if spec in results else run_worker([spec])[0]
                if "error" in res:
                    print(f"{label:<34} {precision:<5} {path:<8} failed: {res['error']}", flush=True)
                    continue
                by_path[path] = {clock: schedule_rows(res, clock) for clock in clocks}
                peaks.append(peak_line(label, precision, path, res))
                for r in by_path[path][args.clock]:
                    print(
                        f"{label:<34} {precision:<5} {path:<8} {r.schedule:<34} {fmt_ms(r.ms_per_step):>10} "
                        f"{fmt_ms(r.select_ms):>10} {fmt_ms(r.plain_ms):>10} {fmt_bytes(r.peak_bytes):>10}",
                        flush=True,
                    )
            if "default" in by_path:
                d = by_path["default"][args.clock]
                last_speedup = d[0].ms_per_step / d[1].ms_per_step
            if "fused" in by_path and "default" in by_path:
                for clock in clocks:
                    f, d = by_path["fused"][clock], by_path["default"][clock]
                    summary.append(
                        f"{label} {precision} ({clock} clock): select every step "
                        f"{f[0].ms_per_step / d[0].ms_per_step:.2f}x faster than on the fused path; our defaults "
                        f"{f[0].ms_per_step / d[2].ms_per_step:.2f}x faster per step than select every step on the "
                        f"fused path (selection pass {f[0].select_ms / d[0].select_ms:.2f}x, plain step "
                        f"{f[0].plain_ms / d[0].plain_ms:.2f}x)"
                    )
    for line in summary:
        print(line)
    if peaks:
        print(
            "peak memory per resolution ("
            + ("CUDA max allocated, reset before each part" if device.type == "cuda" else
               "peak RSS of each worker process: models + selection pass + plain steps + Python/torch")
            + "):"
        )
        for line in peaks:
            print(f"  {line}")
    if last_speedup is not None:
        print(f"interval speedup: {last_speedup:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
