"""Small modal dialogs: confirm, one-line prompt, a form of several fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [Binding("escape,n", "answer(False)", "No", show=False),
                Binding("y", "answer(True)", "Yes", show=False)]

    def __init__(self, question: str, yes: str = "Yes", no: str = "Cancel", danger: bool = False) -> None:
        super().__init__()
        self.question, self.yes, self.no, self.danger = question, yes, no, danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error" if self.danger else "primary")
                yield Button(f"{self.no} (n)", id="no")

    def on_mount(self) -> None:
        for button in self.query(Button):  # the safe answer gets the focus
            if button.id == ("no" if self.danger else "yes"):
                button.focus()

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


@dataclass(frozen=True)
class Choice:
    """A form field with fixed answers, shown as radio buttons (arrow keys move, Enter or Space picks):
    `options` are (value, label) pairs; `value` is the one picked at first."""

    key: str
    label: str
    options: tuple[tuple[str, str], ...]
    value: str


class FormDialog(ModalScreen[dict[str, str] | None]):
    """Fields: text fields (key, label, initial value) and `Choice` fields; returns {key: text or chosen
    value}, or None when cancelled. `check` (values -> what is wrong, or None) keeps the dialog open
    with its message under the fields and everything typed, until the values pass or the user cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, fields: list[tuple[str, str, str] | Choice], ok: str = "OK",
                 check: Callable[[dict[str, str]], str | None] | None = None) -> None:
        super().__init__()
        self.title_text, self.fields, self.ok, self.check = title, fields, ok, check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            for field in self.fields:
                if isinstance(field, Choice):
                    yield Label(field.label, classes="dialog-label")
                    with RadioSet(id=f"f-{field.key}", classes="dialog-choice"):
                        for value, label in field.options:
                            yield RadioButton(label, value=value == field.value, id=f"f-{field.key}-{value}")
                    continue
                key, label, value = field
                yield Label(label, classes="dialog-label")
                yield Input(value, id=f"f-{key}")
            yield Label("", id="dialog-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.ok, id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        for field in self.query(Input).results():
            field.focus()
            break

    def values(self) -> dict[str, str]:
        out = {}
        for field in self.fields:
            if isinstance(field, Choice):
                pressed = self.query_one(f"#f-{field.key}", RadioSet).pressed_button
                prefix = f"f-{field.key}-"
                out[field.key] = pressed.id.removeprefix(prefix) if pressed and pressed.id else field.value
            else:
                out[field[0]] = self.query_one(f"#f-{field[0]}", Input).value
        return out

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        values = self.values()
        problem = self.check(values) if self.check is not None else None
        if problem is None:
            self.dismiss(values)
        else:
            self.query_one("#dialog-error", Label).update(problem)

    @on(Input.Submitted)
    def submitted(self) -> None:
        self._submit()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._submit()
        else:
            self.dismiss(None)
