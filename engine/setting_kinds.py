"""The kinds of setting: one class per kind of value (whole number, number, on/off, choice, paths, CLIP
models, W+ indices, ...), each knowing how text becomes its value, how a value is written back, and how it
is offered as a command-line flag. The training settings (`engine.config.SETTINGS`) and the run options
(`engine.run_options.RUN_OPTIONS`) are rows of these classes.

How a kind is shown as a form field is the TUI's business (`nada_tui/widgets/fields.py`, keyed by these
classes): the engine stays free of any UI toolkit. A flag is plain `argparse` from the standard library,
which the headless CLI, sweeps and the tests share, so it lives with the kind.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar


class ConfigError(ValueError):
    """A training setting out of range; `field` names it, the message gives the allowed values."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


# ----- parsing values that arrive as text (CLI, form, sweep files) or as JSON/TOML values -------------
def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError("expected a whole number")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    return float(value.strip() if isinstance(value, str) else value)


def _is_auto(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto"))


def paths(value: Any) -> tuple[str, ...]:
    """Paths as a list (CLI arguments, TOML arrays) or one line of text, split the way a shell splits it
    (the form and TOML strings: quote a path that holds spaces)."""
    if value is None:
        return ()
    if isinstance(value, str | os.PathLike):
        value = shlex.split(os.fspath(value))
    return tuple(os.fspath(v) for v in value if os.fspath(v).strip())


def seeds(value: Any) -> tuple[int, ...]:
    """Seeds as "0,1 2" or a list; saved settings take this path alone, so an old session with a negative
    seed still loads (seeds typed by a user go through SeedsSetting, which wants 0 or more)."""
    parts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    return tuple(_int(s) for s in parts)


# Named layer sets (engine.freezing resolves them by resolution for a given generator).
LAYER_SETS = ("auto", "all", "coarse", "medium", "fine")


def parse_indices(value: Any) -> tuple[int, ...]:
    """W+ indices as text ("0,1,4-7", spaces allowed) or a list of whole numbers -> sorted, unique."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(" ", ",").split(",") if p.strip()]
    elif isinstance(value, Iterable):
        parts = list(value)
    else:
        raise ValueError(f"{value!r} is not a list of W+ indices (e.g. 0,1,4-7)")
    out: set[int] = set()
    for part in parts:
        if isinstance(part, str) and "-" in part.strip("-"):
            lo, _, hi = part.partition("-")
            if not (lo.isdigit() and hi.isdigit()):
                raise ValueError(f"{part!r} is not a W+ index or range (e.g. 0,1,4-7)")
            if int(lo) > int(hi):
                raise ValueError(f"the range {part!r} runs backwards (write {hi}-{lo})")
            out.update(range(int(lo), int(hi) + 1))
            continue
        try:
            i = _int(part)
        except ValueError:
            raise ValueError(f"{part!r} is not a W+ index or range (e.g. 0,1,4-7)") from None
        if i < 0:
            raise ValueError(f"{part!r}: W+ indices start at 0")
        out.add(i)
    return tuple(sorted(out))


def format_indices(indices: Iterable[int]) -> str:
    """Sorted indices with runs of three or more as ranges: (0, 1, 4, 5, 6, 7) -> "0,1,4-7"."""
    items = sorted(set(indices))
    out: list[str] = []
    start = 0
    while start < len(items):
        end = start
        while end + 1 < len(items) and items[end + 1] == items[end] + 1:
            end += 1
        if end - start >= 2:
            out.append(f"{items[start]}-{items[end]}")
        else:
            out.extend(str(i) for i in items[start:end + 1])
        start = end + 1
    return ",".join(out)


def parse_layers(value: Any) -> str:
    """A layer set: one of LAYER_SETS, or explicit W+ indices kept in the canonical "0,1,4-7" form."""
    if isinstance(value, str) and value.strip().lower() in (*LAYER_SETS, ""):
        return value.strip().lower() or "auto"
    indices = parse_indices(value)
    if not indices:
        raise ValueError("no W+ indices given")
    return format_indices(indices)


def parse_clip_spec(text: str) -> tuple[str, float]:
    """`NAME`, `NAME:WEIGHT` or `NAME=WEIGHT` (a name may itself hold '/', as in ViT-B/32)."""
    text = text.strip()
    name, found, weight = text.rpartition("=")
    if found and name.strip():
        try:
            return name.strip(), float(weight)
        except ValueError:
            raise ValueError(f"{text!r}: the weight {weight.strip()!r} is not a number") from None
    name, found, weight = text.rpartition(":")
    if found and name.strip():
        try:
            return name.strip(), float(weight)
        except ValueError:
            pass  # a ':' inside a file name ("/models/my:clip.pt"), not a weight
    return text, 1.0


def clip_models(value: Any) -> tuple[tuple[str, float], ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(parse_clip_spec(item))
        else:
            name, weight = item
            out.append((str(name), float(weight)))
    return tuple(out)


def format_clip_models(models: Iterable[tuple[str, float]]) -> str:
    return ", ".join(f"{name}={weight:g}" for name, weight in models)


# ----- the kinds ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One row of a settings table. `name` is the TrainConfig field (or run option); `default` its
    default. A subclass is a kind: it says how a value is read (`convert`), written (`format`) and offered
    as a flag (`add_flag`)."""

    name: str
    flag: str  # the CLI flag, e.g. "--iters"; sweep files accept it without dashes as an alias
    label: str  # the setup form's label; "" = not on the form
    help: str
    allowed: str  # the allowed values in words (error messages and the README)
    check: Callable[[Any], bool] = lambda v: True
    default: Any = None
    choices: tuple[str, ...] = ()
    live: bool = False  # may change while a run trains (Trainer.update)
    default_text: str | None = None  # for the README where the bare default says too little
    metavar: str = ""  # the flag's value in help; "" = the kind's own (N, X, TEXT, PATH, ...)
    example: str = ""  # the form's placeholder where a blank field is a value of its own (a prompt)
    note: str = ""  # a line the form shows under the field
    wide: bool = False  # the form gives a number field a row of its own

    kind: ClassVar[str] = ""  # the kind's short name
    value_name: ClassVar[str] = "VALUE"  # the flag's metavar unless the row names one
    explains_errors: ClassVar[bool] = False  # its parse errors say more than "not valid"
    blank_is_default: ClassVar[bool] = True  # a blank form field means the recipe's default
    help_shows_default: ClassVar[bool] = True  # "(default X)" after the flag's help
    prompt: ClassVar[bool] = False  # the CLI lists it under "prompts", not "training settings"

    def convert(self, value: Any) -> Any:
        """A CLI/form/TOML value -> this kind's type; TypeError or ValueError when it cannot."""
        raise NotImplementedError

    def parse(self, value: Any) -> Any:
        """A CLI/form/TOML value -> this field's type; ConfigError names the field when it cannot."""
        try:
            parsed = self.convert(value)
        except (TypeError, ValueError) as exc:
            detail = str(exc) if self.explains_errors else f"{value!r} is not valid"
            raise ConfigError(self.name, f"{detail}; allowed: {self.allowed}") from None
        if self.choices and parsed not in self.choices:
            raise ConfigError(self.name, f"got {value!r}; allowed: {self.allowed}")
        return parsed

    def parse_checked(self, value: Any) -> Any:
        """`parse`, then the row's range check (a run option has no TrainConfig to check it later)."""
        parsed = self.parse(value)
        if not self.check(parsed):  # worded as TrainConfig.validate words it
            raise ConfigError(self.name, f"got {parsed!r}; allowed: {self.allowed}")
        return parsed

    def format(self, value: Any) -> str:
        """A value as the form and the README show it (parse(format(v)) == v)."""
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    @property
    def sweep_key(self) -> str:
        return self.flag.removeprefix("--")

    @property
    def default_shown(self) -> str:
        """The default in words (README, flag help)."""
        return self.default_text if self.default_text is not None else self.format(self.default)

    # ----- as a command-line flag ------------------------------------------------------------------
    def flag_help(self) -> str:
        shows = self.help_shows_default or self.default_text is not None
        return f"{self.help} (default {self.default_shown})" if shows else self.help

    def flag_arguments(self, checked: bool = False) -> dict[str, Any]:
        """argparse keywords for this kind: a value `parse` refuses (or, when `checked`, one out of range)
        is refused by argparse with the setting's own message."""
        def typed(text: str) -> Any:
            try:
                return self.parse_checked(text) if checked else self.parse(text)
            except ConfigError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        return {"type": typed, "metavar": self.metavar or self.value_name}

    def add_flag(self, parser: Any, dest: str, default: Any = None, checked: bool = False) -> None:
        """Register the flag on an argparse parser or group; `default` None means "not given". `checked`:
        the range is checked as the flag is read (run options: a training setting is checked with the
        others when its TrainConfig is built, so that argparse does not end the program for it)."""
        parser.add_argument(self.flag, dest=dest, default=default, help=self.flag_help(),
                            **self.flag_arguments(checked))

    def from_flag(self, value: Any) -> Any:
        """The parsed flag's value as the setting's type (lists from repeated flags become tuples)."""
        return value


class TextSetting(Setting):
    kind = "text"
    value_name = "TEXT"
    blank_is_default = False  # a blank prompt is no prompt (target images alone)
    help_shows_default = False
    prompt = True

    def convert(self, value: Any) -> str:
        return str(value)

    def flag_arguments(self, checked: bool = False) -> dict[str, Any]:
        return {"metavar": self.metavar or self.value_name}


class PathsSetting(Setting):
    kind = "paths"
    value_name = "PATH"
    blank_is_default = False  # a blank list is no paths
    prompt = True

    def convert(self, value: Any) -> tuple[str, ...]:
        return paths(value)

    def format(self, value: Any) -> str:
        return shlex.join(value or ())

    def flag_arguments(self, checked: bool = False) -> dict[str, Any]:
        # one or more: --target-images a.png b.png folder/
        return {"nargs": "+", "metavar": self.metavar or self.value_name}

    def from_flag(self, value: Any) -> Any:
        return tuple(value)


class IntSetting(Setting):
    kind = "int"
    value_name = "N"

    def convert(self, value: Any) -> int:
        return _int(value)


class FloatSetting(Setting):
    kind = "float"
    value_name = "X"

    def convert(self, value: Any) -> float:
        return _float(value)


class AutoIntSetting(Setting):
    """A whole number, or "auto" (None) for a value worked out from the model."""

    kind = "auto_int"
    value_name = "N"

    def convert(self, value: Any) -> int | None:
        return None if _is_auto(value) else _int(value)

    def format(self, value: Any) -> str:
        return "auto" if value is None else str(value)


class AutoFloatSetting(Setting):
    """A number, or "auto" (None) for a value worked out from the other settings."""

    kind = "auto_float"
    value_name = "X"

    def convert(self, value: Any) -> float | None:
        return None if _is_auto(value) else _float(value)

    def format(self, value: Any) -> str:
        return "auto" if value is None else f"{value:g}"


class BoolSetting(Setting):
    kind = "bool"

    def convert(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")

    def format(self, value: Any) -> str:
        return "on" if value else "off"

    def flag_arguments(self, checked: bool = False) -> dict[str, Any]:  # --templates / --no-templates
        return {"action": argparse.BooleanOptionalAction}


class FlagSetting(BoolSetting):
    """On when the flag is given (`--quiet`); there is no --no- form."""

    kind = "flag"
    help_shows_default = False

    def flag_arguments(self, checked: bool = False) -> dict[str, Any]:
        return {"action": "store_true"}


class ChoiceSetting(Setting):
    kind = "choice"

    def convert(self, value: Any) -> str:
        return str(value).strip().lower()

    def flag_arguments(self, checked: bool = False) -> dict[str, Any]:
        # no metavar: argparse shows the choices, {auto,fp32,tf32,bf16}
        return {**super().flag_arguments(checked), "choices": self.choices, "metavar": self.metavar or None}


class SeedsSetting(Setting):
    """Seeds typed by a user (CLI, form, sweep files) are 0 or more, as `generate --seed` is."""

    kind = "seeds"
    value_name = "SEEDS"
    explains_errors = True

    def convert(self, value: Any) -> tuple[int, ...]:
        try:
            out = seeds(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a list of whole numbers") from None
        bad = [s for s in out if not 0 <= s < 2**63]
        if bad:
            raise ValueError(f"seeds are whole numbers 0 or more; got {bad[0]}")
        return out

    def format(self, value: Any) -> str:
        return ",".join(str(s) for s in value)


class ClipModelsSetting(Setting):
    kind = "clip"
    value_name = "NAME[:WEIGHT]"
    explains_errors = True
    help_shows_default = False  # the help names the default, which depends on --demo

    def convert(self, value: Any) -> tuple[tuple[str, float], ...]:
        return clip_models(value)

    def format(self, value: Any) -> str:
        return format_clip_models(value)

    def flag_arguments(self, checked: bool = False) -> dict[str, Any]:  # repeat the flag for several models
        def typed(text: str) -> tuple[str, float]:
            try:
                return parse_clip_spec(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        return {"action": "append", "type": typed, "metavar": self.metavar or self.value_name}

    def from_flag(self, value: Any) -> Any:
        return tuple(value)


class LayersSetting(Setting):
    kind = "layers"
    value_name = "SPEC"
    explains_errors = True

    def convert(self, value: Any) -> str:
        return parse_layers(value)


class IndicesSetting(Setting):
    kind = "indices"
    value_name = "INDICES"
    explains_errors = True

    def convert(self, value: Any) -> tuple[int, ...]:
        return parse_indices(value)

    def format(self, value: Any) -> str:
        return format_indices(value or ())


# ----- checks shared by the tables ---------------------------------------------------------------------
def between(lo: float, hi: float) -> Callable[[Any], bool]:
    return lambda v: lo <= v <= hi and math.isfinite(v)


def at_least(lo: int) -> Callable[[Any], bool]:
    return lambda v: v >= lo
