"""Sweep files: many training runs from one TOML file, expanded and checked before anything is submitted.

    name = "faces to art"            # optional; the file name's stem otherwise
    [defaults]                       # settings every run shares
    model = "ffhq"
    source = "a photo of a person"
    iters = 300
    [grid]                           # every combination of these lists is a run
    target = ["a pencil sketch of a person", "a marble statue"]
    global_weight = [0.0, 0.2]
    [[runs]]                         # optional: runs listed one by one (each one crossed with the grid)
    name = "church {target}"
    [slurm]                          # optional: partition, time, gpus_per_job, array_parallelism, ...

Keys are `TrainConfig` fields or their CLI flag names (`iters`, `global-weight`, `global_weight`), or run
options: `model`, `checkpoint` (a generator file, relative to the sweep file), `demo = true` (the tiny
offline demo models, as `--demo`) and `name` (a session name; `{key}` fills in a setting of the run).
Runs = [[runs]] entries x the [grid] product (a missing side counts as one empty entry); a run's value
comes from the grid, else its [[runs]] entry, else [defaults], else the setting's default. Errors
(`SweepError`) name the file, the line and the key.

This module reads the file into a `Sweep`; the number of runs is checked against the cap
(`engine.sweeps.plan`) before the grid is expanded. Torch-free at import.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import (
    DEMO_CLIP_ID,
    DEMO_DEFAULTS,
    DEMO_GENERATOR_ID,
    DEMO_SOURCE,
    DEMO_TARGET,
    SETTINGS,
    ConfigError,
    Setting,
    TrainConfig,
    lookup,
)
from engine.sweeps import plan
from engine.sweeps.locator import key_lines

RUN_OPTIONS = ("model", "checkpoint", "demo", "name")
SECTIONS = ("name", "defaults", "grid", "runs", "slurm")
# [slurm] keys (and the matching `nada-tui sweep` flags) -> (type, meaning)
SLURM_OPTIONS: dict[str, tuple[type, str]] = {
    "partition": (str, "Slurm partition"),
    "time": (int, "time limit of each run, in minutes"),
    "gpus_per_job": (int, "GPUs per run"),
    "cpus_per_job": (int, "CPU cores per run"),
    "mem_gb": (float, "memory per run, in GB"),
    "array_parallelism": (int, "runs of the array that may run at once"),
    "account": (str, "Slurm account"),
    "qos": (str, "Slurm quality of service"),
    "constraint": (str, "Slurm node constraint"),
}


class SweepError(ValueError):
    """A sweep file that cannot be used; the message names the file, the line and the key."""

    def __init__(
        self, message: str, path: str | os.PathLike[str] | None = None, line: int | None = None, key: str | None = None
    ) -> None:
        where = str(path) if path is not None else "sweep"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")
        self.path = path
        self.line = line
        self.key = key


# ----- the sweep ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep. `values`: what this run sets through [grid] and its [[runs]] entry, by setting
    name (TrainConfig field or run option), as JSON values; the session is tagged with them."""

    index: int
    name: str
    model_id: str  # a registry name, a generator file path, or the demo generator's id
    config: TrainConfig
    demo: bool = False
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "model_id": self.model_id,
            "demo": self.demo,
            "config": self.config.to_dict(),
            "values": self.values,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        return cls(
            index=int(data["index"]),
            name=str(data["name"]),
            model_id=str(data["model_id"]),
            config=TrainConfig.from_dict(data["config"]),
            demo=bool(data.get("demo", False)),
            values=dict(data.get("values") or {}),
        )


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path | None  # the sweep file
    runs: tuple[RunSpec, ...]
    slurm: dict[str, Any] = field(default_factory=dict)  # [slurm] options, normalised keys
    keys: tuple[str, ...] = ()  # the settings that vary between runs, in file order
    shown: str | None = None  # the file as the user named it, for messages

    @property
    def id(self) -> str:
        return sweep_id(self.name)


def sweep_id(name: str) -> str:
    """The directory name of a sweep: lower-case letters, digits and dashes."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].strip("-")
    return text or "sweep"


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


@dataclass
class _Given:
    """A value as the file gives it, with where it came from (for error messages)."""

    value: Any
    key: str  # as written
    where: tuple[Any, ...]  # key_lines path


class _Parser:
    def __init__(self, text: str, path: Path | None, shown: str | os.PathLike[str] | None = None) -> None:
        self.text = text
        self.path = path
        self.shown = shown if shown is not None else path if path is not None else "sweep"
        self._lines: dict[tuple[Any, ...], int] | None = None

    def line(self, where: tuple[Any, ...]) -> int | None:
        if self._lines is None:
            self._lines = key_lines(self.text)
        # The key itself, else the closest enclosing table that has a line.
        for k in range(len(where), 0, -1):
            if where[:k] in self._lines:
                return self._lines[where[:k]]
        return None

    def error(self, message: str, where: tuple[Any, ...], key: str | None = None) -> SweepError:
        return SweepError(message, self.shown, self.line(where), key)

    # -- keys of one table -> canonical name -> _Given
    def table(self, data: Any, where: tuple[Any, ...], section: str) -> dict[str, _Given]:
        if not isinstance(data, dict):
            raise self.error(f"[{section}] must be a table of settings", where, section)
        out: dict[str, _Given] = {}
        for key, value in data.items():
            canon = canonical_key(key)
            if canon is None:
                raise self.error(f"unknown setting in [{section}]; {_known_keys()}", (*where, key), key)
            if canon in out:
                raise self.error(f"given twice in [{section}] (also as '{out[canon].key}')", (*where, key), key)
            out[canon] = _Given(value, key, (*where, key))
        return out

    def parse(self) -> Sweep:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"at line (\d+)", str(exc))
            raise SweepError(f"not valid TOML: {exc}", self.shown, int(m.group(1)) if m else None) from None
        for key in data:
            if key not in SECTIONS:
                hint = " (put settings under [defaults])" if canonical_key(key) else ""
                raise self.error(
                    f"unknown top-level key{hint}; a sweep file has name, [defaults], [grid], [[runs]] and [slurm]",
                    (key,),
                    key,
                )
        name = data.get("name", self.path.stem if self.path is not None else "sweep")
        if not isinstance(name, str) or not name.strip():
            raise self.error("the sweep's name must be a non-empty string", ("name",), "name")
        name = " ".join(name.split())
        defaults = self.table(data.get("defaults", {}), ("defaults",), "defaults")
        grid = self.grid(data)
        entries = self.entries(data)
        slurm = self.slurm(data.get("slurm", {}))
        runs: list[RunSpec] = []
        varying: list[str] = []
        for entry_index, entry in enumerate(entries):
            for key in entry:
                if key in grid:
                    raise self.error(
                        f"set both in [grid] and in [[runs]] entry {entry_index + 1}; keep one",
                        grid[key][0].where,
                        grid[key][0].key,
                    )
                if key != "name" and key not in varying:
                    varying.append(key)
        for key in grid:
            if key != "name" and key not in varying:
                varying.append(key)
        count = plan.run_count(len(entries), [len(values) for values in grid.values()])
        if count > plan.MAX_RUNS:
            where = next(iter(grid.values()))[0].where if grid else ("runs",)
            raise self.error(plan.too_many(count), where[:1])
        points = plan.grid_points(grid)
        for entry_index, entry in enumerate(entries):
            for point in points:
                given = {**defaults, **entry, **point}
                own = [k for k in (*entry, *point) if k != "name"]
                runs.append(self.run(len(runs), name, given, own, entry_index if data.get("runs") else None))
        return Sweep(
            name=name, path=self.path, runs=tuple(runs), slurm=slurm, keys=tuple(varying), shown=str(self.shown)
        )

    def grid(self, data: Mapping[str, Any]) -> dict[str, list[_Given]]:
        if "grid" not in data:
            return {}
        table = self.table(data["grid"], ("grid",), "grid")
        if not table:
            raise self.error(
                "empty grid: give each key a list of values, e.g. global_weight = [0.0, 0.2]", ("grid",), "grid"
            )
        out: dict[str, list[_Given]] = {}
        for canon, g in table.items():
            if not isinstance(g.value, list):
                raise self.error(
                    f"a grid key needs a list of values, e.g. {g.key} = [{_toml(g.value)}]", g.where, g.key
                )
            if not g.value:
                raise self.error("empty grid: this list has no values", g.where, g.key)
            out[canon] = [_Given(v, g.key, g.where) for v in g.value]
        return out

    def entries(self, data: Mapping[str, Any]) -> list[dict[str, _Given]]:
        if "runs" not in data:
            return [{}]
        runs = data["runs"]
        if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
            raise self.error("runs must be a list of tables: [[runs]] sections", ("runs",), "runs")
        if not runs:
            raise self.error("no runs: [[runs]] is empty", ("runs",), "runs")
        return [self.table(r, ("runs", i), "runs") for i, r in enumerate(runs)]

    def slurm(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error("[slurm] must be a table", ("slurm",), "slurm")
        out: dict[str, Any] = {}
        for key, value in data.items():
            canon = key.replace("-", "_")
            if canon not in SLURM_OPTIONS:
                raise self.error(f"unknown [slurm] option; known: {', '.join(SLURM_OPTIONS)}", ("slurm", key), key)
            kind, _ = SLURM_OPTIONS[canon]
            ok = isinstance(value, kind) and not isinstance(value, bool)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value, ok = float(value), True
            if not ok or (kind in (int, float) and value <= 0) or (kind is str and not value.strip()):
                want = {int: "a whole number above 0", float: "a number above 0", str: "a non-empty string"}[kind]
                raise self.error(f"expected {want}, got {_toml(value)}", ("slurm", key), key)
            out[canon] = value
        return out

    def run(self, index: int, sweep_name: str, given: dict[str, _Given], own: list[str], entry: int | None) -> RunSpec:
        label = f"run {index + 1}"
        where_run: tuple[Any, ...] = ("runs", entry) if entry is not None else ("defaults",)
        # -- which generator
        chosen = [k for k in ("model", "checkpoint") if k in given]
        demo_given = given.get("demo")
        demo = False
        if demo_given is not None:
            if not isinstance(demo_given.value, bool):
                raise self.error(
                    f"expected true or false, got {_toml(demo_given.value)}", demo_given.where, demo_given.key
                )
            demo = demo_given.value
        if demo and chosen:
            g = given[chosen[0]]
            raise self.error(f"{label}: set either demo = true or {chosen[0]}, not both", g.where, g.key)
        if len(chosen) > 1:
            g = given["checkpoint"]
            raise self.error(f"{label}: set either model or checkpoint, not both", g.where, g.key)
        if not demo and not chosen:
            raise self.error(
                f"{label} has no generator: set model = NAME, checkpoint = PATH or demo = true "
                "(in [defaults], its [[runs]] entry or the [grid])",
                where_run,
            )
        if demo:
            model_id = DEMO_GENERATOR_ID
        else:
            g = given[chosen[0]]
            if not isinstance(g.value, str) or not g.value.strip():
                raise self.error(f"expected a non-empty string, got {_toml(g.value)}", g.where, g.key)
            model_id = g.value.strip()
            if model_id == DEMO_GENERATOR_ID:
                demo = True
            elif chosen[0] == "checkpoint":
                file = Path(model_id).expanduser()
                if not file.is_absolute() and self.path is not None:
                    file = self.path.parent / file
                if not file.is_file():
                    raise self.error(f"no such generator file: {file}", g.where, g.key)
                model_id = str(file.resolve())
        # -- settings
        typed: dict[str, Any] = {}
        source_of: dict[str, _Given] = {}
        for canon, g in given.items():
            if canon in RUN_OPTIONS:
                continue
            try:
                typed[canon] = SETTINGS[canon].parse(g.value)
            except ConfigError as exc:
                raise self.error(_detail(exc), g.where, g.key) from None
            source_of[canon] = g
        if demo:
            typed.setdefault("source", DEMO_SOURCE)
            typed.setdefault("target", DEMO_TARGET)
            typed.setdefault("clip_models", ((DEMO_CLIP_ID, 1.0),))
            typed = {**DEMO_DEFAULTS, **typed}
        try:
            config = TrainConfig(**typed)
        except ConfigError as exc:
            g = source_of.get(exc.field)
            if g is None:
                raise self.error(f"{label}: {exc}", where_run) from None
            raise self.error(_detail(exc), g.where, g.key) from None
        if not config.target.strip():
            raise self.error(f'{label} has no target prompt: set target = "..."', where_run, "target")
        values: dict[str, Any] = {}
        for canon in own:
            if canon in ("model", "checkpoint"):
                values[canon] = model_id
            elif canon == "demo":
                values[canon] = demo
            else:
                values[canon] = _json_value(getattr(config, canon))
        # -- the session name
        if "name" in given:
            g = given["name"]
            if not isinstance(g.value, str):
                raise self.error(f"expected a string, got {_toml(g.value)}", g.where, g.key)
            fill = {
                **{s: getattr(config, s) for s in SETTINGS},
                "model": model_id,
                "demo": demo,
                "index": index + 1,
                "sweep": sweep_name,
            }
            fill.update({SETTINGS[s].sweep_key.replace("-", "_"): getattr(config, s) for s in SETTINGS})
            try:
                run_name = g.value.format(**fill)
            except (KeyError, IndexError, ValueError) as exc:
                raise self.error(
                    f"cannot fill in {exc} (use {{setting}} names, e.g. {{target}})", g.where, g.key
                ) from None
        else:
            shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
            run_name = f"{sweep_name} #{index + 1}" + (f": {shown}" if shown else "")
        return RunSpec(
            index=index,
            name=" ".join(run_name.split()) or f"{sweep_name} #{index + 1}",
            model_id=model_id,
            config=config,
            demo=demo,
            values=values,
        )


def _detail(exc: ConfigError) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith(f"{exc.field}: ") else text


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ",".join(_short(v) for v in value) + "]"
    return str(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _known_keys() -> str:
    flags = ", ".join(s.sweep_key for s in SETTINGS.values())
    return f"known: {flags} (or the TrainConfig field names), and model, checkpoint, demo, name"


def canonical_key(key: str) -> str | None:
    """A run option's name or the TrainConfig field a key (field name or CLI flag name) stands for."""
    if key in RUN_OPTIONS:
        return key
    setting: Setting | None = lookup(key)
    return setting.name if setting is not None else None


def parse_sweep(
    text: str, path: str | os.PathLike[str] | None = None, shown: str | os.PathLike[str] | None = None
) -> Sweep:
    """Expand a sweep file's text into runs (raises SweepError naming the line and key). `path` anchors
    relative checkpoint paths; errors name `shown` (default: `path`)."""
    return _Parser(text, Path(path) if path is not None else None, shown).parse()


def load_sweep(path: str | os.PathLike[str]) -> Sweep:
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepError("no such file", p) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"cannot read it: {exc}", p) from None
    return parse_sweep(text, p.resolve(), shown=path)

