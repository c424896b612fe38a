"""The help screen (`?`): every key, with its binding id for remapping in config.toml."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = (
    "nada-tui adapts a StyleGAN2 generator toward a text description with CLIP (StyleGAN-NADA). Fill the "
    "setup (model, source and target prompts), start (F5), and watch the loss, the trained layers and the "
    "previews. Letter keys work when the cursor is not in a text field (Esc leaves one). Remap any key in "
    'config.toml under [keymap], e.g. "train.pause" = "p" (its path: `nada-tui locate`).'
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(expand=True, box=None, header_style="bold")
        table.add_column("Key", no_wrap=True)
        table.add_column("Action")
        table.add_column(Text("Id (for [keymap])"), style="dim", no_wrap=True)
        for keys, desc, bid in self.rows:
            table.add_row(keys, desc, bid)
        with VerticalScroll(classes="dialog help"):
            yield Static(Text("Help", style="bold"))
            yield Static(Text(INTRO))
            yield Static(table)
            yield Static(Text("Esc closes this help. Ctrl+P opens the command palette (actions, sessions, "
                              "themes).", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)


def binding_rows(classes: Iterable[type], keymap: dict[str, str],
                 key_display: Callable[[Binding], str]) -> list[tuple[str, str, str]]:
    """(keys as shown, description, binding id) for every described binding of `classes`, remaps applied."""
    rows = []
    for cls in classes:
        for b in getattr(cls, "BINDINGS", []):
            if not isinstance(b, Binding) or not b.description:
                continue
            keys = keymap.get(b.id or "", b.key) if b.id else b.key
            pretty = ", ".join(key_display(Binding(k.strip(), "")) for k in keys.split(","))
            rows.append((pretty, b.description, b.id or ""))
    return rows
