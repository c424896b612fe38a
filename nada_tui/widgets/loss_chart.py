"""A live loss chart drawn in braille: raw values faint, an EMA bold, optional log scale.

Its own renderer rather than a plotting library because it redraws at 4 Hz next to a training
thread on a 2-core box: the data is downsampled to the pixel width with min/max buckets (spikes stay
visible), so a redraw costs the same at step 10 and step 100 000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

# Braille dot bits for (x in 0..1, y in 0..3) within a cell, y from the top.
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_BRAILLE = 0x2800
WAITING = "waiting for the first step…"


@dataclass
class Series:
    key: str
    label: str
    colour: str
    steps: list[float]
    values: list[float]
    visible: bool = True
    smoothed: list[float] = field(default_factory=list)  # EMA, kept incrementally (O(1) per point)
    _acc: float = 0.0
    _debias: float = 1.0

    def push(self, step: float, value: float, weight: float) -> None:
        self.steps.append(step)
        self.values.append(value)
        if math.isfinite(value):
            self._acc = weight * self._acc + (1 - weight) * value
            self._debias *= weight
        self.smoothed.append(self._acc / (1 - self._debias) if self._debias < 1 else value)

    def resmooth(self, weight: float) -> None:
        self._acc, self._debias, vals, steps = 0.0, 1.0, self.values, self.steps
        self.values, self.steps, self.smoothed = [], [], []
        for st, v in zip(steps, vals, strict=True):
            self.push(st, v, weight)


class LossChart(Widget):
    """Holds the history of each loss; `refresh_chart()` after appending (the screen's timer does)."""

    DEFAULT_CSS = """
    LossChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.series: dict[str, Series] = {}
        self.smoothing = 0.8
        self.log_scale = False
        self.title = ""
        self.placeholder = WAITING  # what an empty chart says
        self._cache: tuple[tuple[int, int, int], list[Strip]] | None = None
        self._version = 0

    # ----- data -------------------------------------------------------------------------------
    def clear(self, placeholder: str = WAITING) -> None:
        """No curves; `placeholder` says why until the first point."""
        self.placeholder = placeholder
        self.series.clear()
        self._version += 1
        self.refresh()

    def add(self, key: str, step: float, value: float, colour: str = "white", label: str | None = None) -> None:
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = Series(key, label or key, colour, [], [])
        s.push(step, value, self.smoothing)
        self._version += 1

    def set_smoothing(self, weight: float) -> None:
        self.smoothing = max(0.0, min(0.99, weight))
        for s in self.series.values():
            s.resmooth(self.smoothing)
        self.refresh_chart()

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = on
        self.refresh_chart()

    def toggle(self, index: int) -> None:
        keys = list(self.series)
        if 0 <= index < len(keys):
            s = self.series[keys[index]]
            s.visible = not s.visible
            self.refresh_chart()

    def refresh_chart(self) -> None:
        self._version += 1
        self.refresh()

    # ----- drawing ----------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        # Strips cached per (size, data version): Textual composes them without re-parsing any Text.
        strips = self._strips()
        if y < len(strips):
            return strips[y]
        return Strip.blank(self.content_size.width, self.rich_style)

    def _strips(self) -> list[Strip]:
        w, h = self.content_size.width, self.content_size.height
        key = (w, h, self._version)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        base = self.rich_style
        console = self.app.console
        strips = [Strip(list(line.render(console, end=""))).adjust_cell_length(w).apply_style(base)
                  for line in self._draw(w, h)]
        self._cache = (key, strips)
        return strips

    def _transform(self, v: np.ndarray) -> np.ndarray:
        if self.log_scale:
            return np.log10(np.clip(v, 1e-6, None))
        return v

    def _draw(self, width: int, height: int) -> list[Text]:
        visible = [s for s in self.series.values() if s.visible and s.values]
        head = Text(no_wrap=True, overflow="ellipsis")
        if self.title:
            head.append(self.title + " ", style="bold")
        for i, s in enumerate(self.series.values()):
            head.append(f"{i + 1}", style="dim")
            head.append(f" {s.label} " if s.visible else f" ({s.label}) ",
                        style=Style(color=s.colour) if s.visible else Style(dim=True))
        head.append(f" EMA {self.smoothing:.2f}" + (" log" if self.log_scale else ""), style="dim")
        if width < 12 or height < 4:
            return [head]
        label_w = 8
        with_xlabels = height >= 6
        plot_w, plot_h = width - label_w, height - (3 if with_xlabels else 2)
        if not visible:
            return [head] + [Text("")] * (plot_h // 2) + [Text(f"  {self.placeholder}".center(width),
                                                                 style="dim")]
        px_w, px_h = plot_w * 2, plot_h * 4
        x_max = max(s.steps[-1] for s in visible)
        x_min = min(s.steps[0] for s in visible)
        raw = {s.key: self._transform(np.asarray(s.values, dtype=float)) for s in visible}
        smooth = {s.key: self._transform(np.asarray(s.smoothed, dtype=float)) for s in visible}
        finite = np.concatenate([v[np.isfinite(v)] for v in raw.values()] or [np.zeros(1)])
        if finite.size == 0:
            finite = np.zeros(1)
        y_lo, y_hi = float(finite.min()), float(finite.max())
        if y_hi - y_lo < 1e-9:
            y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
        pad = (y_hi - y_lo) * 0.05
        y_lo, y_hi = y_lo - pad, y_hi + pad
        if not self.log_scale and finite.min() >= 0:
            y_lo = max(y_lo, 0.0)  # losses are never negative: the axis does not pretend they could be
        span_x = max(x_max - x_min, 1e-9)

        # per cell: OR of braille bits, and the layer that drew last (its style wins the cell)
        cells_bits = [[0] * plot_w for _ in range(plot_h)]
        cells_owner = [[-1] * plot_w for _ in range(plot_h)]
        styles: list[Style] = []
        scale = (px_h - 1) / (y_hi - y_lo)

        def to_py(v: np.ndarray) -> np.ndarray:
            return np.clip(np.round((y_hi - v) * scale), 0, px_h - 1).astype(int)

        def draw(xs: np.ndarray, ys: np.ndarray, style: Style, envelope: bool) -> None:
            layer = len(styles)
            styles.append(style)
            pxf = (xs - x_min) / span_x * (px_w - 1)
            ok = np.isfinite(ys)
            pxf, ys = pxf[ok], ys[ok]
            if pxf.size == 0:
                return
            px = np.clip(np.round(pxf).astype(int), 0, px_w - 1)
            if pxf.size > 1 and np.unique(px).size < int(px.max() - px.min()) + 1:
                # fewer points than pixel columns: interpolate so the line has no gaps
                px = np.arange(int(px.min()), int(px.max()) + 1)
                ys = np.interp(px, pxf, ys)
            order = np.argsort(px, kind="stable")
            px, ys = px[order], ys[order]
            cols, start = np.unique(px, return_index=True)
            if envelope:  # min/max per pixel column keeps spikes visible
                top, bot = to_py(np.maximum.reduceat(ys, start)), to_py(np.minimum.reduceat(ys, start))
                mid = (top + bot) // 2
            else:
                counts = np.diff(np.append(start, len(ys)))
                top = bot = mid = to_py(np.add.reduceat(ys, start) / counts)
            prev = np.concatenate([mid[:1], mid[:-1]])  # join each column to the previous one
            lo = np.minimum(np.minimum(top, bot), prev).tolist()
            hi = np.maximum(np.maximum(top, bot), prev).tolist()
            for c, a, b in zip(cols.tolist(), lo, hi, strict=True):
                cx, bx = c >> 1, c & 1
                for py in range(a, b + 1):
                    row_bits = cells_bits[py >> 2]
                    row_bits[cx] |= _DOTS[py & 3][bx]
                    cells_owner[py >> 2][cx] = layer

        for s in visible:
            draw(np.asarray(s.steps, dtype=float), raw[s.key], Style(color=s.colour, dim=True), True)
        for s in visible:
            draw(np.asarray(s.steps, dtype=float), smooth[s.key], Style(color=s.colour, bold=True), False)

        lines = [head]
        for row in range(plot_h):
            frac = 1 - row / max(plot_h - 1, 1)
            y_val = y_lo + frac * (y_hi - y_lo)
            label = _fmt(10**y_val if self.log_scale else y_val) if row % 2 == 0 or plot_h < 6 else ""
            line = Text(f"{label:>{label_w - 1}}│", style="dim", no_wrap=True)
            bits_row, owner_row = cells_bits[row], cells_owner[row]
            run_style: Style | None = None
            run: list[str] = []
            for col in range(plot_w):
                bits = bits_row[col]
                st = styles[owner_row[col]] if bits else None
                ch = chr(_BRAILLE + bits) if bits else " "
                if st is not run_style and run:
                    line.append("".join(run), style=run_style or "")
                    run = []
                run_style = st
                run.append(ch)
            if run:
                line.append("".join(run), style=run_style or "")
            lines.append(line)
        lines.append(Text(" " * (label_w - 1) + "└" + "─" * plot_w, style="dim", no_wrap=True))
        if with_xlabels:
            left, right = f"{x_min:g}", f"step {x_max:g}"
            gap = max(1, plot_w - len(left) - len(right))
            lines.append(Text(" " * label_w + left + " " * gap + right, style="dim", no_wrap=True))
        return lines[:height]


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.2f}"
    if a >= 0.001:
        return f"{v:.3f}"
    return f"{v:.1e}"
