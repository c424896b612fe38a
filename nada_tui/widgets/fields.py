"""How each kind of setting (engine.setting_kinds) appears in the setup form: its widgets, how the form
reads a value from them and puts one back. Keyed by the kind's class, so a new setting of a known kind needs
no form code, and the engine stays free of Textual (it says what a value is; this module says how it is
edited).

A field's placeholder is what a blank field means: the recipe's default (the demo's own recipe in demo
mode), or for a prompt, where blank is a value of its own (no prompt), an example.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Switch

from engine.setting_kinds import (
    BoolSetting,
    ChoiceSetting,
    ClipModelsSetting,
    FloatSetting,
    IntSetting,
    PathsSetting,
    Setting,
    TextSetting,
)
from nada_tui.widgets.target_images import TargetImagesField

FieldMaker = Callable[[Setting, object, str], ComposeResult]  # (setting, value, placeholder) -> widgets
INPUT_TYPES: dict[type[Setting], str] = {IntSetting: "integer", FloatSetting: "number"}  # others: "text"


def _input_type(s: Setting) -> str:
    return INPUT_TYPES.get(type(s), "text")


def _text(s: Setting, value: object, placeholder: str) -> ComposeResult:
    yield Label(s.label, classes="field-label")
    yield Input(s.format(value), id=s.name, placeholder=placeholder, tooltip=s.help)
    yield Label("", id=f"{s.name}-tokens", classes="hint")  # the token count, once the tokenizer has loaded


def _paths(s: Setting, value: object, placeholder: str) -> ComposeResult:
    yield TargetImagesField(s, value)  # type: ignore[arg-type]


def _switch(s: Setting, value: object, placeholder: str) -> ComposeResult:
    with Horizontal(classes="field-row"):
        yield Label(s.label, classes="inline-label")
        yield Switch(bool(value), id=s.name, tooltip=s.help)


def _choice(s: Setting, value: object, placeholder: str) -> ComposeResult:
    yield Label(s.label, classes="field-label")
    yield Select([(c, c) for c in s.choices], value=str(value), allow_blank=False, id=s.name, compact=True,
                 tooltip=s.help)


def _clip_models(s: Setting, value: object, placeholder: str) -> ComposeResult:
    yield Label(s.label, classes="field-label")
    yield Input(s.format(value), id=s.name, placeholder=placeholder, tooltip=s.help)
    yield Label("available: …", id="clip-hint", classes="hint")  # filled in once the registry has loaded


def _wide_input(s: Setting, value: object, placeholder: str) -> ComposeResult:
    yield Label(s.label, classes="field-label")
    yield Input(s.format(value), id=s.name, placeholder=placeholder, type=_input_type(s), tooltip=s.help)


# Kinds with a row of their own; any other kind is a small field, two a row, unless the setting is `wide`.
FULL_WIDTH: dict[type[Setting], FieldMaker] = {
    TextSetting: _text,
    PathsSetting: _paths,
    BoolSetting: _switch,
    ChoiceSetting: _choice,
    ClipModelsSetting: _clip_models,
}


def _maker(s: Setting) -> FieldMaker | None:
    return next((FULL_WIDTH[k] for k in type(s).__mro__ if k in FULL_WIDTH), None)


def has_own_row(s: Setting) -> bool:
    return s.wide or _maker(s) is not None


def placeholder(s: Setting, recipe_value: object) -> str:
    """What a blank field means, shown in it: the recipe's default, or an example where blank means none."""
    return s.format(recipe_value) if s.blank_is_default else s.example


def own_row(s: Setting, value: object, recipe_value: object) -> ComposeResult:
    """The widgets of a setting with a row of its own (see has_own_row), then its note if it has one."""
    yield from (_maker(s) or _wide_input)(s, value, placeholder(s, recipe_value))
    if s.note:
        yield Label(s.note, classes="hint")


def small_field(s: Setting, value: object, recipe_value: object) -> ComposeResult:
    """A label and a short input, for the grid of numbers."""
    yield Label(s.label, classes="small-label")
    yield Input(s.format(value), id=s.name, type=_input_type(s), placeholder=placeholder(s, recipe_value),
                classes="small-input", tooltip=s.help)


def read(widget: Widget) -> object:
    """The field's value as the user left it: a switch's bool, a choice, or the input's text (stripped)."""
    if isinstance(widget, Switch):
        return widget.value
    if isinstance(widget, Select):
        return str(widget.value)
    assert isinstance(widget, Input)
    return widget.value.strip()


def write(widget: Widget, s: Setting, value: object) -> None:
    """Put a value into the field without posting a change (filling the form is not the user editing it)."""
    with widget.prevent(Input.Changed, Switch.Changed, Select.Changed):
        if isinstance(widget, Switch):
            widget.value = bool(value)
        elif isinstance(widget, Select):
            widget.value = str(value)
        else:
            assert isinstance(widget, Input)
            widget.value = s.format(value)
