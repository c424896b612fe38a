"""metrics.jsonl, one line per logged step: `MetricsLine` (the typed record, and the one place that knows
the line's JSON form) and `read_metrics` (torn or garbled lines skipped). Torch-free."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.sessions import layout


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def json_losses(losses: Mapping[str, Any]) -> dict[str, float | None]:
    """Losses as session files store them: JSON has no NaN, so a non-finite loss is null."""
    return {str(k): _finite(v) for k, v in losses.items()}


def _ints(values: Any) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in values)
    except (TypeError, ValueError):
        return ()


@dataclass(frozen=True)
class MetricsLine:
    """One logged step. A loss that was not finite is None (JSON has no NaN); fields an older line lacks
    are None, or empty."""

    step: int
    losses: Mapping[str, float | None] = field(default_factory=dict)
    lr: float | None = None
    it_per_s: float | None = None
    elapsed_s: float | None = None
    k: int | None = None
    trained: tuple[int, ...] = ()  # the W+ indices trained at this step
    global_weight: float | None = None
    time: float | None = None  # Unix time of the step
    pins: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (on, off), on the first step with them

    @property
    def total(self) -> float | None:
        return self.losses.get("total")

    def to_json(self) -> dict[str, Any]:
        """The line's JSON object (what `from_json` reads back)."""
        rec: dict[str, Any] = {"step": self.step, "losses": json_losses(self.losses)}
        for key in ("lr", "it_per_s", "elapsed_s", "k"):
            if getattr(self, key) is not None:
                rec[key] = getattr(self, key)
        rec["trained"] = list(self.trained)
        for key in ("global_weight", "time"):
            if getattr(self, key) is not None:
                rec[key] = getattr(self, key)
        if self.pins is not None:
            rec["pins"] = {"on": list(self.pins[0]), "off": list(self.pins[1])}
        return rec

    @classmethod
    def from_json(cls, rec: Any) -> MetricsLine | None:
        """A parsed line as a record; None when it is not one (no integer step)."""
        if not isinstance(rec, Mapping):
            return None
        try:
            step = int(rec["step"])
        except (KeyError, TypeError, ValueError):
            return None
        losses = rec.get("losses")
        pins = rec.get("pins")
        k = rec.get("k")
        return cls(
            step=step,
            losses=json_losses(losses) if isinstance(losses, Mapping) else {},
            lr=_finite(rec.get("lr")),
            it_per_s=_finite(rec.get("it_per_s")),
            elapsed_s=_finite(rec.get("elapsed_s")),
            k=int(k) if isinstance(k, int | float) and math.isfinite(k) else None,
            trained=_ints(rec.get("trained") or ()),
            global_weight=_finite(rec.get("global_weight")),
            time=_finite(rec.get("time")),
            pins=(_ints(pins.get("on") or ()), _ints(pins.get("off") or ())) if isinstance(pins, Mapping) else None,
        )


def read_metrics(path: Path, max_step: int | None = None) -> list[MetricsLine]:
    """The per-step records of the session at `path` (torn or garbled lines are skipped), in step order;
    a later line for the same step (after a resume) wins."""
    out: dict[int, MetricsLine] = {}
    try:
        with open(path / layout.METRICS_FILE, "rb") as f:
            for raw in f:
                try:
                    line = MetricsLine.from_json(json.loads(raw))
                except (ValueError, UnicodeDecodeError):
                    continue
                if line is not None and (max_step is None or line.step <= max_step):
                    out[line.step] = line
    except FileNotFoundError:
        return []
    return [out[s] for s in sorted(out)]


def metrics_text(lines: Sequence[MetricsLine]) -> str:
    """`lines` as metrics.jsonl text."""
    return "".join(json.dumps(line.to_json(), allow_nan=False) + "\n" for line in lines)
