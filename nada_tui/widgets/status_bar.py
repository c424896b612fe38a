"""A one-line bar made of prioritised segments: when the terminal is too narrow for all of them, the
least important go first, so what remains is never cut mid-word ("cpu 987.2" without its unit).
Setting new segments repaints only this line (Static.update would re-lay out the whole screen)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
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


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar { height: 1; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._segments: list[Segment] = []

    def set_segments(self, segments: Sequence[Segment]) -> None:
        new = list(segments)
        if [(p, t.plain, t.spans) for p, t in new] != [(p, t.plain, t.spans) for p, t in self._segments]:
            self._segments = new
            self.refresh()

    def set_text(self, text: Text) -> None:
        self.set_segments([(0, text)])

    @property
    def text(self) -> Text:
        """What the bar shows at its current width."""
        return fit(self._segments, self.size.width or 10_000)

    def render(self) -> Text:
        return self.text
