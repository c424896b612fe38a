"""The trained-layer map: one cell per W+ index with its last selection score; the indices trained in
the current step are highlighted; the header says the layer set or the current k and when selection runs
next. It is also where layers are pinned: a cursor moves over the cells (arrow keys, or a click) and
space cycles the cell free -> pinned on (always trained) -> pinned off (never trained) -> free. Each
change posts `LiveSettingChanged` with both pin settings: the app applies it to the run (one hop), and the
screen, which it passes on the way, writes the pins into the setup form for the next start. Cells keep the
compact `w{i}` names; a header line says what the cursor's index drives in this generator ("w3 -> convs.2
16x16 up" for StyleGAN2, "w3 -> L2_36_16" for StyleGAN3), from the run's `StepMetrics.layer_labels`.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.widget import Widget

from engine.config import format_indices
from nada_tui.messages import LiveSettingChanged

_SHADES = " ░▒▓█"
PIN_MARKS = {"on": "+", "off": "×", "free": " "}
WAITING = "waiting for the first step…"
HEADER_LINES = 3  # the k / layer-set line, the pins line and the cursor's layer


class LayerMap(Widget, can_focus=True):
    DEFAULT_CSS = """
    LayerMap { height: auto; min-height: 3; }
    """
    BINDINGS = [
        Binding("left", "move(-1, 0)", "Layer map: cursor left", id="layers.left", show=False),
        Binding("right", "move(1, 0)", "Layer map: cursor right", id="layers.right", show=False),
        Binding("up", "move(0, -1)", "Layer map: cursor up", id="layers.up", show=False),
        Binding("down", "move(0, 1)", "Layer map: cursor down", id="layers.down", show=False),
        Binding("space,enter", "cycle_pin", "Pin layer: on / off / free", id="layers.pin"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.scores: tuple[float, ...] = ()
        self.trained: frozenset[int] = frozenset()
        self.k: int | None = None
        self.next_selection: int | None = None
        self.step = 0
        self.n_latent: int | None = None
        self.labels: tuple[str, ...] = ()  # what each index drives (empty: unknown, e.g. a saved session)
        self.layer_set = "auto"
        self.pin_on: frozenset[int] = frozenset()
        self.pin_off: frozenset[int] = frozenset()
        self.cursor = 0
        self.placeholder = WAITING  # what the map says while it has no layers
        self.active_colour = "#ff9e64"
        self.idle_colour = "#565f89"

    def set_data(self, scores: tuple[float, ...] | None, trained: tuple[int, ...], k: int | None,
                 next_selection: int | None, step: int, n_latent: int | None = None, layers: str = "auto",
                 labels: tuple[str, ...] = ()) -> None:
        n = len(scores) if scores else n_latent
        relayout = n is not None and n != self.n_latent  # the height only changes with n
        if scores:
            self.scores = tuple(scores)
        if n is not None:
            self.n_latent = n
            self.cursor = min(self.cursor, n - 1)
        self.trained, self.labels = frozenset(trained), tuple(labels)
        self.k, self.next_selection, self.step, self.layer_set = k, next_selection, step, layers
        self.refresh(layout=relayout)

    def set_pins(self, pin_on: tuple[int, ...], pin_off: tuple[int, ...]) -> None:
        """Show these pins (a new run's settings, or the run's after a refused change); posts nothing."""
        self.pin_on, self.pin_off = frozenset(pin_on), frozenset(pin_off)
        self.refresh()

    def clear(self, placeholder: str = WAITING) -> None:
        """No layers to show; `placeholder` says why (a saved session keeps no selection scores)."""
        self.scores, self.trained, self.k, self.next_selection, self.n_latent = (), frozenset(), None, None, None
        self.labels = ()
        self.layer_set, self.cursor, self.placeholder = "auto", 0, placeholder
        self.refresh(layout=True)

    # ----- pins ---------------------------------------------------------------------------------
    def pin_state(self, index: int) -> str:
        return "on" if index in self.pin_on else "off" if index in self.pin_off else "free"

    def _per_row(self) -> int:
        return max(1, self.size.width // 6)

    def _tall(self) -> bool:
        return self.has_class("-tall") and self.size.width >= 18

    def action_move(self, dx: int, dy: int) -> None:
        if not self.n_latent:
            return
        target = self.cursor + dx + dy * (1 if self._tall() else self._per_row())
        if 0 <= target < self.n_latent:  # up/down past the grid's first or last row stays put
            self.cursor = target
        elif dx:
            self.cursor = max(0, min(self.n_latent - 1, target))
        self.refresh()

    def action_cycle_pin(self) -> None:
        if not self.n_latent:
            self.notify("The layer map fills in once a run starts; until then type pins in the setup form.",
                        timeout=4)
            return
        i = self.cursor
        if i == self.n_latent - 1:
            self.notify(f"w{i} feeds only the final to_rgb: it never trains, so it cannot be pinned.", timeout=4)
            return
        state = {"free": "on", "on": "off", "off": "free"}[self.pin_state(i)]
        on, off = set(self.pin_on) - {i}, set(self.pin_off) - {i}
        if state == "on":
            on.add(i)
        elif state == "off":
            off.add(i)
        self.set_pins(tuple(sorted(on)), tuple(sorted(off)))
        self.post_message(LiveSettingChanged({"pin_on": tuple(sorted(on)), "pin_off": tuple(sorted(off))}))

    def on_click(self, event: Click) -> None:
        """A click on a cell puts the cursor there and cycles its pin."""
        n = self.n_latent or 0
        offset = event.get_content_offset(self)
        if offset is None or n == 0 or offset.y < HEADER_LINES:
            return
        row = offset.y - HEADER_LINES
        if self._tall():
            i = row
        else:
            col = offset.x // 6
            i = (row // 3) * self._per_row() + col if col < self._per_row() else n
        if 0 <= i < n:
            self.cursor = i
            self.action_cycle_pin()

    # ----- drawing ------------------------------------------------------------------------------
    def _header(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        if self.k is None:
            t.append("k=–", style="dim")
        elif self.layer_set != "auto":
            t.append(f"layers {self.layer_set}")
            t.append(f"  trained {len(self.trained)}", style="dim")
        else:
            t.append(f"k={self.k}" if self.k else "k=all")
            t.append(f"  trained {len(self.trained)}", style="dim")
            if self.next_selection is not None:
                t.append(f"  next select @{self.next_selection}", style="dim")
        return t

    def _pins_line(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        if self.has_focus:
            t.append("arrows move · space: on/off/free", style="italic")
            return t
        if not self.pin_on and not self.pin_off:
            t.append("no pins · m: pin layers", style="dim")
            return t
        if self.pin_on:
            t.append(f"{PIN_MARKS['on']} on {format_indices(self.pin_on)}")
        if self.pin_off:
            t.append("  " if self.pin_on else "")
            t.append(f"{PIN_MARKS['off']} off {format_indices(self.pin_off)}")
        return t

    def _cursor_line(self) -> Text:
        """What the cursor's index drives: "w3 → convs.2 16x16 up" (bold while the map has focus)."""
        i = self.cursor
        name = f" → {self.labels[i]}" if i < len(self.labels) else ""
        return Text(f"w{i}{name}", style="bold" if self.has_focus else "dim", no_wrap=True, overflow="ellipsis")

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        n = self.n_latent or 0
        if n == 0:
            return 2  # the header and the placeholder
        if width >= 18 and self.has_class("-tall"):
            return n + HEADER_LINES
        per_row = max(1, width // 6)
        rows = (n + per_row - 1) // per_row
        return HEADER_LINES + 3 * rows

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def _label(self, i: int) -> tuple[str, Style | str]:
        """The cell's name with its pin mark; reverse video under the cursor while the map has focus."""
        label = f"w{i}{PIN_MARKS[self.pin_state(i)]}"
        on = i in self.trained
        style: Style | str = "bold" if on else "dim"
        if self.has_focus and i == self.cursor:
            style = Style(reverse=True, bold=True)
        return label, style

    def render(self) -> Text:
        n = self.n_latent or 0
        if n == 0:
            return Text.assemble(self._header(), "\n", Text(self.placeholder, style="dim"))
        scores = self.scores if len(self.scores) == n else None  # a fixed layer set has no selection scores
        top = (max(scores) if scores else 0.0) or 1.0
        active = Style(color=self.active_colour, bold=True)
        idle = Style(color=self.idle_colour)
        lines = [self._header(), self._pins_line(), self._cursor_line()]

        def shade(i: int, on: bool) -> str:
            if scores is None:
                return _SHADES[4] if on else "·"
            s = scores[i]
            return _SHADES[min(4, max(1, round(4 * s / top)))] if s > 0 else _SHADES[0] if self._tall() else "·"

        if self._tall():
            for i in range(n):
                on = i in self.trained
                label, label_style = self._label(i)
                line = Text(no_wrap=True)
                line.append(f"{label:<5}", style=label_style)
                line.append(shade(i, on) * 3, style=active if on else idle)
                line.append(f" {_short(scores[i]) if scores else '–':>6}", style="" if on else "dim")
                if on:
                    line.append(" trained", style=active)
                elif i == n - 1:
                    line.append(" rgb only", style="dim")
                lines.append(line)
            return Text("\n").join(lines)
        per_row = self._per_row()
        for start in range(0, n, per_row):
            idx, bar, val = Text(no_wrap=True), Text(no_wrap=True), Text(no_wrap=True)
            for i in range(start, min(n, start + per_row)):
                on = i in self.trained
                label, label_style = self._label(i)
                idx.append(f"{label:<5}", style=label_style)
                idx.append(" ")
                bar.append(f"{shade(i, on) * 5} ", style=active if on else idle)
                val.append(f"{_short(scores[i]) if scores else '–':<6}", style="" if on else "dim")
            lines += [idx, bar, val]
        return Text("\n").join(lines)


def _short(v: float) -> str:
    """A score in at most 5 characters: 0.31, 0.012, 3e-05."""
    if v == 0:
        return "0"
    if abs(v) >= 0.01:
        return f"{v:.3f}"[:5]
    return f"{v:.0e}".replace("e-0", "e-")
