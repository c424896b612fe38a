"""`python -m engine.gpucheck`: every GPU check in one call, one JSON summary, under 5 minutes on one H200.

Parts, each in its own process with its own time limit (a part that runs over is killed, with everything
it started, and reported as timed out; the others still run):
- session: a 100-step 1024 px session saved the way `nada-tui train` saves it (engine.live_run: writer
  thread, checkpoints and previews every 25 steps), with a ViT-B/32-shaped CLIP (random weights);
- profile: torch.profiler over 10 steps: GPU busy fraction, kernels and launches per step, top kernels;
- precision: 20 steps in fp32, tf32 and bf16 from the same seed, their loss differences;
- tests: the gpu-marked tests (`pytest -m gpu`, when the repository's tests folder is present);
- bench: `python -m engine.bench` at 256 and 1024 px (tf32; both modulated-conv paths; peak memory).

The summary (device, seconds per part, each part's figures) is printed and written to `--out`. Exit
status: 0 when every part passed, 1 when one failed or timed out, 2 without CUDA.

    python -m engine.gpucheck
    python -m engine.gpucheck --device cuda:1 --skip tests --out /tmp/gpucheck.json
    python -m engine.gpucheck --device cpu --dry   # tiny models on a CPU: checks the check, not a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BUDGET_S = 300
# Seconds each part may take, process start included; they add up to the budget less a margin.
TIMEOUTS = {"session": 60, "profile": 35, "precision": 45, "tests": 50, "bench": 100}
DRY_SLACK = 3  # a dry run's limits are 3x longer: a CPU is slow at anything, and no budget applies
RESULT_TAG = "GPUCHECK_RESULT "
REPO = Path(__file__).resolve().parents[1]
DRY_NOTE = "DRY RUN: tiny models, not a GPU check; its figures say nothing about a GPU"
NO_CUDA = (
    "gpucheck needs a CUDA GPU, and PyTorch sees none here (torch {torch}, built for CUDA {cuda}). Run it on "
    "the GPU machine; on a CPU use `python -m engine.bench` and pytest, or `--device cpu --dry` to try the "
    "check itself."
)


@dataclass
class PartResult:
    ok: bool
    seconds: float
    timeout_s: float
    timed_out: bool = False
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


def part_command(name: str, device: str, dry: bool) -> list[str]:
    if name == "tests":
        return [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(REPO / "tests")]
    if name == "bench":
        what = ["--quick", "--paths", "default", "--tiny-steps", "1"] if dry else ["--sizes", "256", "1024"]
        what += [] if dry else ["--no-tiny"]
        precision = "fp32" if dry else "tf32"
        return [sys.executable, "-m", "engine.bench", "--device", device, "--precision", precision, *what]
    return [sys.executable, "-m", "engine.gpucheck", "--part", name, "--device", device, *(["--dry"] if dry else [])]


def run_part(cmd: list[str], timeout_s: float, env: dict[str, str] | None = None) -> PartResult:
    """Run one part as a process group; kill the whole group at `timeout_s`. The result is the part's
    tagged JSON line when it prints one, else its exit status and output tail."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return PartResult(False, round(time.perf_counter() - t0, 2), timeout_s, True,
                          f"timed out after {timeout_s:.0f} s and was killed", {"output_tail": _tail(out)})
    seconds = round(time.perf_counter() - t0, 2)
    tagged = [line[len(RESULT_TAG):] for line in out.splitlines() if line.startswith(RESULT_TAG)]
    if tagged:
        result = json.loads(tagged[-1])
        ok = proc.returncode == 0 and bool(result.get("ok", True))
        return PartResult(ok, seconds, timeout_s, error=result.pop("error", None), result=result)
    lines = [line for line in out.splitlines() if line.strip()]
    result = {"output": lines[-60:]}
    error = None if proc.returncode == 0 else f"exited with status {proc.returncode}"
    return PartResult(proc.returncode == 0, seconds, timeout_s, error=error, result=result)


def _tail(text: str, n: int = 20) -> list[str]:
    return [line for line in (text or "").splitlines() if line.strip()][-n:]


def summary(device: dict[str, Any], parts: dict[str, PartResult], total_s: float, dry: bool,
            skipped: list[str]) -> dict[str, Any]:
    """The one JSON summary of a gpucheck run."""
    return {
        "gpucheck": 1,
        "note": DRY_NOTE if dry else None,
        "dry": dry,
        "device": device,
        "ok": all(p.ok for p in parts.values()),
        "total_s": round(total_s, 2),
        "budget_s": BUDGET_S,
        "over_budget": total_s > BUDGET_S,
        "skipped": skipped,
        "parts": {name: asdict(p) for name, p in parts.items()},
    }


def device_facts(device: str) -> dict[str, Any]:
    import torch

    facts: dict[str, Any] = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda}
    if device.startswith("cuda"):
        idx = int(device.split(":", 1)[1]) if ":" in device else 0
        props = torch.cuda.get_device_properties(idx)
        facts.update(name=props.name, capability=f"{props.major}.{props.minor}", total_memory_bytes=props.total_memory)
    return facts


def run_one_part(name: str, device_name: str, dry: bool) -> int:
    """`--part NAME` (in the part's own process): run it and print its tagged JSON line."""
    import warnings

    from engine import device as devices
    from engine.gpucheck_parts import PARTS

    warnings.simplefilter("ignore")
    device = devices.resolve_device(device_name)
    if device.type == "cpu":  # OpenMP threads spinning against other work make a CPU run several times slower
        import torch

        torch.set_num_threads(1)
    try:
        result = PARTS[name](device, dry)
    except Exception as exc:  # the summary says what broke; the other parts still run
        result = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).strip()[:400]}"}
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.gpucheck", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda or cuda:N (cpu only with --dry)")
    p.add_argument("--dry", action="store_true", help="tiny models, a few seconds a part: tries the check itself")
    p.add_argument("--skip", nargs="+", default=[], choices=list(TIMEOUTS), help="parts to leave out")
    p.add_argument("--out", type=Path, default=Path("gpucheck.json"), help="where the JSON summary goes")
    p.add_argument("--part", choices=["session", "profile", "precision"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.part:
        return run_one_part(args.part, args.device, args.dry)

    import torch

    if not args.device.startswith("cuda") and not args.dry:
        print(f"gpucheck checks CUDA devices, not {args.device!r} (add --dry to try the check on it).", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(NO_CUDA.format(torch=torch.__version__, cuda=torch.version.cuda or "none"), file=sys.stderr)
        return 2
    facts = device_facts(args.device)
    print(f"gpucheck on {facts.get('name', args.device)}, torch {facts['torch']}, CUDA {facts['cuda']}"
          + (f"\n{DRY_NOTE}" if args.dry else ""), flush=True)
    env, device = {**os.environ}, args.device
    if device.startswith("cuda:"):  # the parts and the tests use "cuda": point it at the chosen GPU
        env["CUDA_VISIBLE_DEVICES"], device = device.split(":", 1)[1], "cuda"
    start = time.perf_counter()
    parts: dict[str, PartResult] = {}
    skipped = list(args.skip)
    if args.dry:
        skipped.append("tests")  # the gpu tests need a GPU; a dry run has none to offer them
    if not (REPO / "tests").is_dir() and "tests" not in skipped:
        skipped.append("tests")  # an installed wheel has no tests folder
    for name, limit in TIMEOUTS.items():
        if name in skipped:
            continue
        limit *= DRY_SLACK if args.dry else 1
        print(f"== {name} (at most {limit} s)", flush=True)
        parts[name] = res = run_part(part_command(name, device, args.dry), limit, env)
        state = "ok" if res.ok else "TIMED OUT" if res.timed_out else "FAILED"
        print(f"== {name}: {state} in {res.seconds:.1f} s" + (f": {res.error}" if res.error else ""), flush=True)
    out = summary(facts, parts, time.perf_counter() - start, args.dry, skipped)
    text = json.dumps(out, indent=2)
    print(text)
    try:
        args.out.write_text(text + "\n")
        print(f"summary written to {args.out}")
    except OSError as exc:
        print(f"could not write {args.out}: {exc}", file=sys.stderr)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
