"""Sessions for tests: a small finished demo session, one trained through the CLI, and a disk that fills up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from _full_disk import failing_write_bytes

from engine import atomic, runs
from engine.config import DEMO_GENERATOR_ID, demo_config

FAST = ["--batch", "1", "--layer-batch", "2", "--preview-every", "0", "--device", "cpu"]  # CLI flags


def demo_session(iterations: int = 4, **changes: Any) -> str:
    """Train the demo generator red -> blue for `iterations` steps, a preview every 2 steps; its id."""
    cfg = demo_config(iterations=iterations, batch=1, auto_layer_k=0, preview_every=2, preview_seeds=(0, 1),
                      lr=0.05, **changes)
    run = runs.start_session(cfg, DEMO_GENERATOR_ID, device="cpu")
    with run:
        runs.train_session(run, handle_signals=False)
    return run.session_id


def cli_train(capsys: Any, *extra: str) -> str:
    """`nada-tui train --demo` for 3 quick steps (plus `extra` flags); the new session's id."""
    from nada_tui.__main__ import main

    assert main(["train", "--demo", "--iters", "3", *FAST, *extra]) == 0
    out = capsys.readouterr().out
    return next(line.split()[1] for line in out.splitlines() if line.startswith("session "))


def fill_disk_after(monkeypatch: Any, good_checkpoints: int) -> None:
    """checkpoint.safetensors writes fail with ENOSPC after `good_checkpoints` of them succeeded
    (the session's creation writes the first)."""
    monkeypatch.setattr(atomic, "write_bytes", failing_write_bytes(atomic.write_bytes, good_checkpoints))


def fill_disk_in_children(monkeypatch: Any, folder: Path, good_checkpoints: int) -> None:
    """As `fill_disk_after`, in every Python process started from now on (a sweep's jobs): a
    `sitecustomize` module in `folder`, put first on PYTHONPATH, applies it at each start. Each process
    counts its own checkpoint writes."""
    folder.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).resolve().parent
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(here)!r})\n"
        "from engine import atomic\n"
        "from _full_disk import failing_write_bytes\n"
        f"atomic.write_bytes = failing_write_bytes(atomic.write_bytes, {good_checkpoints})\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p))

