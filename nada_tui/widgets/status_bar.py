"""A one-line bar made of prioritised segments: when the terminal is too narrow for all of them, the
least important go first, so what remains is never cut mid-word ("cpu 987.2" without its unit).
Setting new segments repaints only the cells from the first one that changed to the end of the line
(Static.update would re-lay out the whole screen): Textual renders each frame for the box around all
that changed, and a whole-width repaint of the top bar stretched that box over the setup form's ~77
widgets in every frame while training."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Region
from textual.widget import Widget

Segment = tuple[int, Text]  # (priority: higher stays longer, text)


def fit(segments: Sequence[Segment], width: int, separator: str = " ") -> Text:
    """The segments in their order, without the lowest-priority ones that do not fit in `width`."""
    kept = list(range(len(segments)))

    def length(idx: list[int]) -> int:
        return sum(len(segments[i][1]) for i in idx) + len(separator) * max(0, len(idx) - 1)

    for i in sorted(kept, key=lambda i: (segments[i][0], -i)):
        if length(kept) <= width:
            break
        kept.remove(i)
    out = Text(no_wrap=True, overflow="ellipsis")
    for n, i in enumerate(kept):
        if n:
            out.append(separator)
        out.append_text(segments[i][1])
    return out


def _span_styles(text: Text, length: int) -> list[list[object]]:
    """The span styles over each character, in order."""
    styles: list[list[object]] = [[] for _ in range(length)]
    for span in text.spans:
        for k in range(span.start, min(span.end, length)):
            styles[k].append(span.style)
    return styles


def first_difference(old: Text, new: Text) -> int | None:
    """The cell column of the first cell whose character or style differs between two one-line texts;
    None when they look the same."""
    if old.plain == new.plain and old.spans == new.spans and old.style == new.style:
        return None
    if old.style != new.style:
        return 0
    n = max(len(old.plain), len(new.plain))
    a, b = old.plain.ljust(n), new.plain.ljust(n)
    sa, sb = _span_styles(old, n), _span_styles(new, n)
    k = next((k for k in range(n) if a[k] != b[k] or sa[k] != sb[k]), None)
    return None if k is None else cell_len(b[:k])


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar { height: 1; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._segments: list[Segment] = []

    def set_segments(self, segments: Sequence[Segment]) -> None:
        new = list(segments)
        if [(p, t.plain, t.spans) for p, t in new] == [(p, t.plain, t.spans) for p, t in self._segments]:
            return
        width = self.size.width
        shown = self.text
        self._segments = new
        if not width:  # not laid out yet: the first frame paints it all
            self.refresh()
            return
        column = first_difference(shown, self.text)
        if column is not None and column < width:
            self.refresh(Region(column, 0, width - column, 1))

    def set_text(self, text: Text) -> None:
        self.set_segments([(0, text)])

    @property
    def text(self) -> Text:
        """What the bar shows at its current width."""
        return fit(self._segments, self.size.width or 10_000)

    def render(self) -> Text:
        return self.text
