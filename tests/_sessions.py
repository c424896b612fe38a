"""A small finished demo session for tests that need one on disk (the time-lapse, the real-terminal test)."""

from __future__ import annotations

from typing import Any

from engine import runs
from engine.config import DEMO_GENERATOR_ID, demo_config


def demo_session(iterations: int = 4, **changes: Any) -> str:
    """Train the demo generator red -> blue for `iterations` steps, a preview every 2 steps; its id."""
    cfg = demo_config(iterations=iterations, batch=1, auto_layer_k=0, preview_every=2, preview_seeds=(0, 1),
                      lr=0.05, **changes)
    run = runs.start_session(cfg, DEMO_GENERATOR_ID, device="cpu")
    with run:
        runs.train_session(run, handle_signals=False)
    return run.session_id
