"""The trained-layer map: one cell per W+ index with its last selection score; the indices trained
in the current step are highlighted; the header says the current k and when selection runs next."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

_SHADES = " ░▒▓█"


class LayerMap(Widget):
    DEFAULT_CSS = """
    LayerMap { height: auto; min-height: 3; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.scores: tuple[float, ...] = ()
        self.trained: frozenset[int] = frozenset()
        self.k: int | None = None
        self.next_selection: int | None = None
        self.step = 0
        self.n_latent: int | None = None
        self.active_colour = "#ff9e64"
        self.idle_colour = "#565f89"

    def set_data(self, scores: tuple[float, ...] | None, trained: tuple[int, ...], k: int | None,
                 next_selection: int | None, step: int) -> None:
        relayout = bool(scores) and len(scores) != self.n_latent  # the height only changes with n
        if scores:
            self.scores = tuple(scores)
            self.n_latent = len(scores)
        self.trained = frozenset(trained)
        self.k, self.next_selection, self.step = k, next_selection, step
        self.refresh(layout=relayout)

    def clear(self) -> None:
        self.scores, self.trained, self.k, self.next_selection, self.n_latent = (), frozenset(), None, None, None
        self.refresh(layout=True)

    def _header(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        if self.k is None:
            t.append("k=–", style="dim")
        else:
            t.append(f"k={self.k}" if self.k else "k=all")
            t.append(f"  trained {len(self.trained)}", style="dim")
            if self.next_selection is not None:
                t.append(f"  next select @{self.next_selection}", style="dim")
        return t

    def _vertical(self) -> bool:
        n = self.n_latent or 0
        return n > 0 and self.size.height >= n + 1 and self.size.width >= 18

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        n = self.n_latent or 0
        if n == 0:
            return 2
        if width >= 18 and self.has_class("-tall"):
            return n + 1
        per_row = max(1, width // 6)
        rows = (n + per_row - 1) // per_row
        return 1 + 3 * rows

    def render(self) -> Text:
        n = len(self.scores)
        if n == 0:
            return Text.assemble(self._header(), "\n", Text("waiting for the first selection…", style="dim"))
        top = max(self.scores) or 1.0
        active = Style(color=self.active_colour, bold=True)
        idle = Style(color=self.idle_colour)
        lines = [self._header()]
        if self.has_class("-tall") and self.size.width >= 18:
            for i, s in enumerate(self.scores):
                shade = _SHADES[min(4, max(1, round(4 * s / top)))] if s > 0 else _SHADES[0]
                on = i in self.trained
                line = Text(no_wrap=True)
                line.append(f"w{i:<3}", style="bold" if on else "dim")
                line.append(shade * 3, style=active if on else idle)
                line.append(f" {_short(s):>6}", style="" if on else "dim")
                if on:
                    line.append(" trained", style=active)
                elif i == n - 1:
                    line.append(" rgb only", style="dim")
                lines.append(line)
            return Text("\n").join(lines)
        per_row = max(1, self.size.width // 6)
        for start in range(0, n, per_row):
            idx, bar, val = Text(no_wrap=True), Text(no_wrap=True), Text(no_wrap=True)
            for i in range(start, min(n, start + per_row)):
                s = self.scores[i]
                on = i in self.trained
                shade = _SHADES[min(4, max(1, round(4 * s / top)))] if s > 0 else "·"
                idx.append(f"{'w' + str(i):<6}", style="bold" if on else "dim")
                bar.append(f"{shade * 5} ", style=active if on else idle)
                val.append(f"{_short(s):<6}", style="" if on else "dim")
            lines += [idx, bar, val]
        return Text("\n").join(lines)


def _short(v: float) -> str:
    """A score in at most 5 characters: 0.31, 0.012, 3e-05."""
    if v == 0:
        return "0"
    if abs(v) >= 0.01:
        return f"{v:.3f}"[:5]
    return f"{v:.0e}".replace("e-0", "e-")
