"""`python -m engine.opcount` (also `python -m engine.bench --ops`): aten ops per training step.

On a GPU every aten op is at least one kernel launch (roughly 5-10 us of host time each), so the op
count bounds how fast an eager step can be however fast the arithmetic is. Counted with a
`TorchDispatchMode` (every op that reaches a kernel, forward and backward, including in-place and view
ops) over `steps` steps of a real `Trainer` after `warmup` steps, in eager mode. The configuration is
issue 19's: the 1024 px layer count with tiny channels, one ViT-B/32-shaped CLIP (random weights: the
count does not depend on them), batch 2, every other setting at its default (so selection steps, one
every auto_layer_interval steps, are part of the mean).

    python -m engine.opcount                       # the issue's configuration, on the CPU (a few minutes)
    python -m engine.opcount --size 256 --steps 5  # smaller and quicker
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from engine.clip_loss import ClipEncoder, _clip_module
from engine.config import TrainConfig
from engine.demo import tiny_clip, tiny_generator


class OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched while active, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


@dataclass
class OpCount:
    steps: int
    per_step: list[int] = field(default_factory=list)  # ops of each counted step
    selection_steps: list[int] = field(default_factory=list)  # which counted steps (0-based) ran selection
    by_op: Counter[str] = field(default_factory=Counter)

    @property
    def mean(self) -> float:
        return sum(self.per_step) / len(self.per_step)

    def plain_mean(self) -> float | None:
        plain = [n for i, n in enumerate(self.per_step) if i not in self.selection_steps]
        return sum(plain) / len(plain) if plain else None


def narrow_vit_b32() -> ClipEncoder:
    """ViT-B/32's layer count, patch size and input resolution at width 64 (random weights)."""
    clip = _clip_module()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = clip.model.CLIP(64, 224, 12, 64, 32, 77, 49408, 64, 1, 12)
    return ClipEncoder(model.float(), "ViT-B/32-narrow")


def count_ops(
    size: int = 1024,
    width: int = 4,
    batch: int = 2,
    steps: int = 20,
    warmup: int = 2,
    clip: str = "vit-b32",
    device: str = "cpu",
    **settings: Any,
) -> OpCount:
    """Ops per step of a Trainer on a `size` px generator whose every resolution has `width` channels.

    `clip`: "vit-b32" (ViT-B/32's architecture), "narrow" (its depth, patches and input size at width 64:
    the same ops, a fraction of the arithmetic) or "tiny" (a 2-layer CLIP, for tests).
    """
    from engine.bench import vit_b32_shaped  # here: bench imports this module for --ops
    from engine.trainer import Trainer

    gen = tiny_generator(size, seed=0, style_dim=32, width=width)
    enc = vit_b32_shaped() if clip == "vit-b32" else narrow_vit_b32() if clip == "narrow" else tiny_clip(0)
    cfg = TrainConfig(
        source="a photo of a dog",
        target="a sketch of a dog",
        iterations=warmup + steps,
        batch=batch,
        clip_models=((enc.name, 1.0),),
        **settings,
    )
    tr = Trainer(cfg, gen, {enc.name: enc}, device=device)
    for _ in range(warmup):
        tr.step()
    result = OpCount(steps)
    for i in range(steps):
        counter = OpCounter()
        with counter:
            tr.step()
        result.per_step.append(sum(counter.ops.values()))
        result.by_op.update(counter.ops)
        if tr.selected_this_step:
            result.selection_steps.append(i)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine.opcount", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1024, help="generator resolution (sets the layer count)")
    p.add_argument("--width", type=int, default=4, help="channels at every resolution (the count ignores them)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="steps counted")
    p.add_argument("--warmup", type=int, default=2, help="steps run first, not counted")
    p.add_argument("--clip", choices=("vit-b32", "narrow"), default="vit-b32",
                   help="narrow: ViT-B/32's depth at width 64 (the same op count, much quicker on a CPU)")
    p.add_argument("--layer-batch", type=int, default=None,
                   help="auto_layer_batch (default: the setting's default; the op count does not depend on it)")
    p.add_argument("--top", type=int, default=15, help="most frequent ops to list")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    settings = {} if args.layer_batch is None else {"auto_layer_batch": args.layer_batch}
    res = count_ops(args.size, args.width, args.batch, args.steps, args.warmup, args.clip, **settings)
    plain = res.plain_mean()
    if args.json:
        print(json.dumps({"mean": res.mean, "plain_mean": plain, "per_step": res.per_step,
                          "selection_steps": res.selection_steps, "by_op": dict(res.by_op.most_common())}))
        return 0
    print(f"{args.size} px layer count, width {args.width}, batch {args.batch}, CLIP {args.clip}, defaults; "
          f"{args.steps} steps after {args.warmup} warm-up steps, eager")
    print(f"aten ops per step: {res.mean:.0f} (plain steps {plain:.0f}; "
          f"selection steps {[res.per_step[i] for i in res.selection_steps]})")
    for name, n in res.by_op.most_common(args.top):
        print(f"  {name:<40} {n / res.steps:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
