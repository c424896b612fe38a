"""The op counter behind `python -m engine.bench --ops`: what a step launches, counted per step."""

from __future__ import annotations

import pytest

from engine.opcount import count_ops

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_step_runs_one_fused_adam_and_one_clip_pass():
    res = count_ops(size=32, width=4, steps=2, warmup=1, clip="tiny", auto_layer_interval=100)
    assert len(res.per_step) == 2 and res.selection_steps == [] and min(res.per_step) > 100
    assert res.by_op["aten._fused_adam_"] == 2  # every trained tensor in one op, not ~10 ops per tensor
    # Convolutions of one 32 px render: conv1 and to_rgb1, then per resolution (8, 16, 32) the upsampling
    # conv and its blur, the next conv, the ToRGB and its skip upsample: 2 + 3 * 5 = 17. A step renders
    # twice (frozen, trained) and runs the tiny CLIP's patch embedding once for both image batches.
    assert res.by_op["aten.convolution"] == 2 * (2 * 17 + 1)


def test_a_plain_step_launches_a_third_fewer_ops():
    """32 px with the tiny CLIP: 1,084 ops a step before the batched styles, the kept constants of frozen
    layers, the folded activation gain and the lean CLIP forward (issue 19 item 8); 767 after."""
    res = count_ops(size=32, width=4, steps=1, warmup=1, clip="tiny", auto_layer_interval=100)
    assert res.per_step[0] <= 780
