"""The demo convinces: a default `nada-tui train --demo` turns the 64 px demo's previews clearly blue."""

from __future__ import annotations

import numpy as np
from PIL import Image

from engine import sessions
from engine.config import DEMO_DEFAULTS
from nada_tui.__main__ import main


def mean_rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=float).reshape(-1, 3).mean(0)


def test_a_default_demo_run_turns_the_previews_blue(one_thread) -> None:
    assert main(["train", "--demo", "--quiet", "--device", "cpu"]) == 0
    [info] = sessions.list_sessions()
    assert info.status == "finished" and info.step == DEMO_DEFAULTS["iterations"]
    with Image.open(info.path / sessions.GRID_FILE) as grid:  # frozen row over adapted row
        w, h = grid.size
        before, after = mean_rgb(grid.crop((0, 0, w, h // 2))), mean_rgb(grid.crop((0, h // 2, w, h)))
    assert before[0] - before[2] > 50  # the demo generator starts reddish
    assert after[2] - after[0] > 100, f"adapted previews' mean colour {after.round()} is not clearly blue"
