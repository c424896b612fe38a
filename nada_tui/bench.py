"""How much the TUI slows training: the same demo config headless and with the app attached.

    python -m nada_tui.bench [--steps 200] [--model demo-tiny] [--size 160x48]

Headless runs TrainingWorker with a no-op on_event on its own thread (start/join), exactly as the app
does, so the two differ only by the app; `headless_main_thread_steps_per_s` also reports run() on the
calling thread (what the CLI does), which on a loaded CPU can be much slower because of OpenMP's
scheduling in the main thread, not because of anything the TUI does. All runs go through engine.runs
(a real session is written, previews and checkpoints included) in a throwaway data directory.
Steps/s is measured the same way for all, from the trainer's own clock:
(last step - first step) / (elapsed at last step - elapsed at first step), so model loading and the
app's start-up are not counted. The app runs headless (App.run_test) at a size where every panel is
visible, so its redraws of the chart, layer map, previews and log (once a second on the CPU) are all
paid for. `ratio` compares the best of each; `median_ratio_of_adjacent_runs` the runs made side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any


def _rate(points: list[tuple[int, float]]) -> float:
    if len(points) < 2:
        return float("nan")
    (s0, t0), (s1, t1) = points[0], points[-1]
    return (s1 - s0) / max(t1 - t0, 1e-9)


TEST_GENERATOR_ID = "demo-tiny-32"  # a 32 px tiny generator, imported on demand: ~4x faster than demo-tiny


def _config(steps: int) -> Any:
    from engine.config import demo_config

    return demo_config(iterations=steps)


def ensure_test_model() -> str:
    """Import the 32 px tiny generator as `demo-tiny-32` (once per cache directory)."""
    import tempfile
    from pathlib import Path

    from engine import zoo
    from engine.demo import tiny_generator
    from engine.generator_files import save_rosinality

    if not zoo.is_downloaded(TEST_GENERATOR_ID):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "tiny32.pt"
            save_rosinality(tiny_generator(size=32, seed=0), path)
            zoo.import_checkpoint(path, TEST_GENERATOR_ID, "tiny 32 px random generator (bench)")
    return TEST_GENERATOR_ID


def headless(steps: int, model: str, threaded: bool = True) -> float:
    """threaded: build and train on one extra thread, as the app does; else on this thread (the CLI)."""
    from engine import runs
    from engine.events import StepMetrics

    points: list[tuple[int, float]] = []

    def on_event(event: Any) -> None:
        if isinstance(event, StepMetrics):
            points.append((event.step, event.elapsed_s))

    def build_and_train() -> None:
        run = runs.start_session(_config(steps), model, device="cpu")
        try:
            run.train(on_event)
        finally:
            run.close()

    if threaded:
        thread = threading.Thread(target=build_and_train)
        thread.start()
        thread.join()
    else:
        build_and_train()
    return _rate(points)


async def _with_app(steps: int, model: str, size: tuple[int, int]) -> float:
    from engine.events import StepMetrics, TrainingFailed, TrainingFinished
    from nada_tui.app import NadaApp
    from nada_tui.messages import RunEvents, RunLoadFailed, StartRequested

    points: list[tuple[int, float]] = []
    failed: list[str] = []
    ended = asyncio.Event()  # waited on, not polled: a poll would wake the UI thread for the bench's sake

    def hook(message: Any) -> None:
        if isinstance(message, RunEvents):
            points.extend((e.step, e.elapsed_s) for e in message.events if isinstance(e, StepMetrics))
            if any(isinstance(e, TrainingFinished | TrainingFailed) for e in message.events):
                ended.set()
        elif isinstance(message, RunLoadFailed):
            failed.append(message.message)
            ended.set()

    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=size, message_hook=hook):
        # Start once the app has warmed up (torch, the tokenizer and the registry load on a thread after
        # the first paint), as a user pressing F5 in a ready form would: steady-state cost only.
        hint = app.train_screen.query_one("#clip-hint")
        while "demo-colour-oracle" not in str(hint.content):  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
        app.post_message(StartRequested(_config(steps), model))
        await ended.wait()
        if failed:
            raise RuntimeError(failed[0])
        if app.view.buffer is not None and app.view.buffer.state == "failed":
            raise RuntimeError(app.view.buffer.failure)
    return _rate(points)


def _measure_one(kind: str, steps: int, model: str, size: tuple[int, int]) -> float:
    if kind == "tui":
        return asyncio.run(_with_app(steps, model, size))
    return headless(steps, model, threaded=kind == "headless")


def _in_fresh_process(kind: str, steps: int, model: str, size: tuple[int, int]) -> float:
    """One measurement per process: OpenMP keeps a thread team per thread that ever ran torch ops, and
    extra idle teams make it throttle its spin-waits, so runs in one process would slow each other."""
    cmd = [sys.executable, "-m", "nada_tui.bench", "--only", kind, "--steps", str(steps), "--model", model,
           "--size", f"{size[0]}x{size[1]}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure_tui_overhead(steps: int = 200, model: str | None = None, size: tuple[int, int] = (160, 48),
                         repeats: int = 1) -> dict[str, Any]:
    """Steps/s of the same demo training headless and with the app attached (best of `repeats`)."""
    from engine.config import DEMO_GENERATOR_ID

    model = model or DEMO_GENERATOR_ID
    old = {k: os.environ.get(k) for k in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME",
                                          "XDG_STATE_HOME")}
    with tempfile.TemporaryDirectory(prefix="nada-bench-") as tmp:
        for key in old:
            os.environ[key] = os.path.join(tmp, key.lower())
        try:
            if model == TEST_GENERATOR_ID:
                ensure_test_model()
            head, main_thread, tui = [], [], []
            for _ in range(repeats):  # interleaved so background load hits all alike
                head.append(_in_fresh_process("headless", steps, model, size))
                tui.append(_in_fresh_process("tui", steps, model, size))
                main_thread.append(_in_fresh_process("main", steps, model, size))
        finally:
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    h, t, m = max(head), max(tui), max(main_thread)
    # Adjacent runs share the box's load of the moment: their ratios say how much the app costs when a
    # lucky quiet spell for one best run would not (on the 2-core box, runs of one build vary by 20%).
    pairs = sorted(b / a for a, b in zip(head, tui, strict=True) if a)
    return {"model": model, "steps": steps, "terminal": f"{size[0]}x{size[1]}", "headless_steps_per_s": h,
            "tui_steps_per_s": t, "ratio": t / h if h else float("nan"), "target_ratio": 0.95,
            "median_ratio_of_adjacent_runs": statistics.median(pairs) if pairs else float("nan"),
            "headless_main_thread_steps_per_s": m,
            "runs": {"headless": head, "tui": tui, "headless_main_thread": main_thread}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nada_tui.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--model", default=None, help="demo-tiny (default) or demo-tiny-32 (faster)")
    parser.add_argument("--size", default="160x48", help="terminal size for the app, WxH")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", choices=["headless", "tui", "main"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    w, h = (int(x) for x in args.size.lower().split("x"))
    if args.only:  # a child of _in_fresh_process: print the rate alone
        print(_measure_one(args.only, args.steps, args.model or "demo-tiny", (w, h)))
        return 0
    t0 = time.perf_counter()
    result = measure_tui_overhead(args.steps, args.model, (w, h), args.repeats)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=2))
    return 0 if result["ratio"] >= result["target_ratio"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
