"""Sessions for tests: a small finished demo session, one trained through the CLI, and a disk that fills up."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from engine import atomic, runs, sessions
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
    real = atomic.write_bytes
    count = 0

    def write_bytes(path, data, mode=0o644):
        nonlocal count
        if Path(path).name == sessions.CHECKPOINT_FILE:
            count += 1
            if count > good_checkpoints:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, mode)

    monkeypatch.setattr(atomic, "write_bytes", write_bytes)
