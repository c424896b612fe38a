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

This module also keeps the sweep's record on disk (`<data dir>/sweeps/<id>/`: `sweep.json`, one
`runs/<index>.json` per started run, submitit's `logs/`) and says how each run is doing
(`run_statuses`). Submission lives in `engine.sweep_exec`. Torch-free at import.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine import atomic, paths
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
MANIFEST = "sweep.json"
RUNS_DIR = "runs"
LOGS_DIR = "logs"
SCHEMA = 1


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


# ----- where keys are in the text (tomllib gives no line numbers) --------------------------------------
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _skip_string(text: str, i: int) -> int:
    """Index just past the TOML string starting at text[i] (basic, literal, or multi-line)."""
    q = text[i]
    if text.startswith(q * 3, i):
        end = text.find(q * 3, i + 3)
        while q == '"' and end > 0 and _escaped(text, end):
            end = text.find(q * 3, end + 1)
        end = len(text) - 3 if end < 0 else end
        # A closing run may be 4 or 5 quotes long (quotes inside the string next to the delimiter).
        end += 3
        while end < len(text) and text[end] == q:
            end += 1
        return end
    j = i + 1
    while j < len(text) and text[j] != q and text[j] != "\n":
        j += 2 if (q == '"' and text[j] == "\\") else 1
    return j + 1


def _escaped(text: str, i: int) -> bool:
    n = 0
    while i - 1 - n >= 0 and text[i - 1 - n] == "\\":
        n += 1
    return n % 2 == 1


def _read_key(text: str, i: int) -> tuple[list[str], int]:
    """A (dotted) key at text[i]: its parts and the index after it."""
    parts: list[str] = []
    while i < len(text):
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] in "\"'":
            end = _skip_string(text, i)
            parts.append(text[i + 1 : end - 1])
            i = end
        else:
            m = _BARE.match(text, i)
            if not m:
                break
            parts.append(m.group())
            i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        break
    return parts, i


def key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Where each key and table is: path -> 1-based line. Paths: ("name",), ("defaults",),
    ("defaults", "iters"), ("grid", "target"), ("runs", 0), ("runs", 0, "target"), ... Array-of-tables
    entries and inline tables in arrays get their index. The text must already be valid TOML."""
    lines: dict[tuple[Any, ...], int] = {}
    table: tuple[Any, ...] = ()
    aot: dict[tuple[Any, ...], int] = {}
    stack: list[list[Any]] = []  # ["arr", path, index] or ["tbl", path]
    line, i, n = 1, 0, len(text)
    at_key, value_path = True, ()

    def note(path: tuple[Any, ...], at: int) -> None:
        lines.setdefault(path, at)

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            if not stack:
                at_key = True
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if not stack and at_key and c == "[":
            double = text.startswith("[[", i)
            parts, j = _read_key(text, i + (2 if double else 1))
            name = tuple(parts)
            if double:
                aot[name] = aot.get(name, -1) + 1
                table = (*name, aot[name])
            else:
                table = name
            note(table, line)
            i = text.find("\n", j)
            i = n if i < 0 else i
            at_key = False
            continue
        if at_key:
            parts, j = _read_key(text, i)
            if not parts:  # not a key after all; move on
                i += 1
                continue
            base = stack[-1][1] if stack and stack[-1][0] == "tbl" else table
            value_path = (*base, *parts)
            note(value_path, line)
            i = text.find("=", j) + 1 or n
            at_key = False
            continue
        if c in "\"'":
            end = _skip_string(text, i)
            line += text.count("\n", i, end)
            i = end
            continue
        if c == "[":
            if stack and stack[-1][0] == "arr":
                top = stack[-1]
                top[2] += 1
                path = (*top[1], top[2])
            else:
                path = value_path
            stack.append(["arr", path, -1])
        elif c == "{":
            if stack and stack[-1][0] == "arr":
                top = stack[-1]
                top[2] += 1
                path = (*top[1], top[2])
                note(path, line)
            else:
                path = value_path
            stack.append(["tbl", path])
            at_key = True
        elif c in "]}":
            if stack:
                stack.pop()
        elif c == ",":
            if stack and stack[-1][0] == "tbl":
                at_key = True
        i += 1
    return lines


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
        points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())] or [{}]
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


def check_sweep(sweep: Sweep) -> Sweep:
    """The checks that need the model registry and CLIP's tokenizer (imports torch): known model names,
    prompts CLIP can use. Fills in a registry model's own source prompt where the file gives none."""
    from engine.clip_loss import PromptError, validate_prompts

    try:
        from engine import zoo
    except ImportError:  # pragma: no cover - the registry is part of the package
        zoo = None  # type: ignore[assignment]
    runs = []
    for run in sweep.runs:
        config = run.config
        if not run.demo and zoo is not None and not Path(run.model_id).is_absolute():
            entry = zoo.GENERATORS.get(run.model_id)
            imported = zoo.read_records().get(run.model_id) if run.model_id in zoo.imported_names() else None
            if entry is None and imported is None:
                raise _at(sweep, run, "model", zoo.unknown_model_message(run.model_id))
            if not config.source.strip():
                prompt = entry.source_prompt if entry is not None else (imported or {}).get("source_prompt", "")
                config = config.replace(source=prompt or "")
        if not config.source.strip():
            raise _at(sweep, run, "source", f'run {run.index + 1} has no source prompt: set source = "..."')
        try:
            validate_prompts(config.source, config.target, config.templates)
        except PromptError as exc:
            raise _at(
                sweep, run, "target" if "target" in str(exc).lower() else "source", f"run {run.index + 1}: {exc}"
            ) from None
        runs.append(
            run if config is run.config else RunSpec(run.index, run.name, run.model_id, config, run.demo, run.values)
        )
    return Sweep(sweep.name, sweep.path, tuple(runs), dict(sweep.slurm), sweep.keys, sweep.shown)


def _at(sweep: Sweep, run: RunSpec, key: str, message: str) -> SweepError:
    """An error about `key` of a run, at the line where the file sets it (grid, entry, or defaults)."""
    line = None
    if sweep.path is not None:
        try:
            lines = key_lines(sweep.path.read_text(encoding="utf-8"))
        except OSError:
            lines = {}
        names = [key] + (
            [SETTINGS[key].sweep_key, SETTINGS[key].sweep_key.replace("-", "_")] if key in SETTINGS else []
        )
        # The grid first (it is what differs between runs), then [[runs]] entries, then [defaults].
        entries = sorted({p[1] for p in lines if len(p) == 2 and p[0] == "runs" and isinstance(p[1], int)})
        for where in [("grid",), *[("runs", e) for e in entries], ("defaults",)]:
            line = next((lines[(*where, n)] for n in names if (*where, n) in lines), None)
            if line is not None:
                break
    return SweepError(message, sweep.shown or sweep.path, line, key)


# ----- the record on disk ---------------------------------------------------------------------------
def sweeps_dir() -> Path:
    """Where sweep records and submitit's logs live (beside the sessions, in the user data dir)."""
    return paths.data_dir() / "sweeps"


def sweep_dir(sweep_or_id: Sweep | str) -> Path:
    ident = sweep_or_id.id if isinstance(sweep_or_id, Sweep) else sweep_id(sweep_or_id)
    return sweeps_dir() / ident


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class SweepRecord:
    """`sweep.json`: the expanded runs as submitted, and every submission (executor, job ids)."""

    name: str
    id: str
    file: str | None
    created: str
    sessions_root: str
    runs: list[RunSpec]
    submissions: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return sweeps_dir() / self.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "name": self.name,
            "id": self.id,
            "file": self.file,
            "created": self.created,
            "sessions_root": self.sessions_root,
            "keys": self.keys,
            "runs": [r.to_dict() for r in self.runs],
            "submissions": self.submissions,
        }

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic.write_json(self.dir / MANIFEST, self.to_dict())

    def add_submission(self, executor: str, job_ids: Mapping[int, str], resumed: Mapping[int, str]) -> None:
        self.submissions.append(
            {
                "time": _now(),
                "executor": executor,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "jobs": {str(i): j for i, j in job_ids.items()},
                "resumed": {str(i): s for i, s in resumed.items()},
            }
        )
        self.save()

    def latest_job(self, index: int) -> tuple[str, str] | None:
        """(executor, job id) of the last submission of run `index`."""
        for sub in reversed(self.submissions):
            job = sub.get("jobs", {}).get(str(index))
            if job is not None:
                return str(sub.get("executor")), str(job)
        return None


def new_record(sweep: Sweep, sessions_root: str | os.PathLike[str] | None = None) -> SweepRecord:
    from_root = Path(sessions_root) if sessions_root is not None else paths.sessions_dir()
    return SweepRecord(
        name=sweep.name,
        id=sweep.id,
        file=str(sweep.path) if sweep.path is not None else None,
        created=_now(),
        sessions_root=str(from_root.resolve()),
        runs=list(sweep.runs),
        keys=list(sweep.keys),
    )


def read_record(name_or_id: str) -> SweepRecord:
    """A sweep's record by name or id (SweepError when there is none)."""
    d = sweep_dir(name_or_id)
    try:
        data = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(list_sweeps()) or "none yet"
        raise SweepError(f"no sweep named '{name_or_id}' in {sweeps_dir()} (known: {known})") from None
    except (OSError, ValueError) as exc:
        raise SweepError(f"the record of sweep '{name_or_id}' is unreadable ({d / MANIFEST}): {exc}") from None
    return SweepRecord(
        name=str(data["name"]),
        id=str(data["id"]),
        file=data.get("file"),
        created=str(data.get("created", "")),
        sessions_root=str(data["sessions_root"]),
        runs=[RunSpec.from_dict(r) for r in data["runs"]],
        submissions=list(data.get("submissions") or []),
        keys=list(data.get("keys") or []),
    )


def list_sweeps() -> list[str]:
    try:
        return sorted(e.name for e in sweeps_dir().iterdir() if (e / MANIFEST).is_file())
    except FileNotFoundError:
        return []


def write_run_start(record_dir: str | os.PathLike[str], index: int, session_id: str, job_id: str | None) -> None:
    """Called by a run's job once its session exists: links run `index` to that session."""
    d = Path(record_dir) / RUNS_DIR
    d.mkdir(parents=True, exist_ok=True)
    atomic.write_json(
        d / f"{index}.json",
        {
            "index": index,
            "session": session_id,
            "job": job_id,
            "host": socket.gethostname(),
            "started": _now(),
        },
    )


def run_session_id(record: SweepRecord, index: int) -> str | None:
    try:
        data = json.loads((record.dir / RUNS_DIR / f"{index}.json").read_text(encoding="utf-8"))
        return str(data["session"])
    except (OSError, ValueError, KeyError):
        return None


# ----- how the runs are doing -----------------------------------------------------------------------
@dataclass
class RunStatus:
    index: int
    name: str
    values: dict[str, Any]
    status: str  # a session status, or "queued" / "starting" / "not started"
    session_id: str | None = None
    step: int = 0
    iterations: int = 0
    loss: float | None = None
    job: str | None = None
    executor: str | None = None
    log: str | None = None  # the job's output file, when there is one
    message: str | None = None  # why a run failed or never started, when known


def slurm_states(job_ids: Iterable[str]) -> dict[str, str] | None:
    """Slurm job id ("123" or "123_4") -> state (PENDING, RUNNING, ...) for jobs squeue still knows;
    None when squeue cannot be asked."""
    import shutil
    import subprocess

    ids = sorted({j.split("_")[0] for j in job_ids})
    if not ids or shutil.which("squeue") is None:
        return None if not ids and shutil.which("squeue") is None else {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(ids)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return None
    states = {}
    for line in out.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job:
            states[job] = state
    return states


def _local_alive(sub: Mapping[str, Any]) -> bool:
    """Whether the `nada-tui sweep` process that runs a local submission is still alive (same host)."""
    if sub.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(sub.get("pid", 0)), 0)
    except (OSError, ValueError):
        return False
    return int(sub.get("pid", 0)) > 0


def run_statuses(record: SweepRecord) -> list[RunStatus]:
    """One row per run: its session's status, step and loss (live from metrics.jsonl), or where its job is."""
    from engine.sessions.info import read_info
    from engine.sessions.watch import last_metrics

    jobs = {r.index: record.latest_job(r.index) for r in record.runs}
    slurm_ids = [j for e_j in jobs.values() if e_j and e_j[0] == "slurm" for j in [e_j[1]]]
    queue = slurm_states(slurm_ids) if slurm_ids else {}
    out = []
    for run in record.runs:
        executor, job = jobs[run.index] or (None, None)
        row = RunStatus(
            run.index,
            run.name,
            dict(run.values),
            "not started",
            job=job,
            executor=executor,
            iterations=run.config.iterations,
        )
        sid = run_session_id(record, run.index)
        in_queue = None
        if executor == "slurm" and queue is not None and job is not None:
            in_queue = queue.get(job)
        elif executor == "local":
            sub = next((s for s in reversed(record.submissions) if str(run.index) in s.get("jobs", {})), {})
            in_queue = "PENDING" if _local_alive(sub) else None
        if job is not None and (record.dir / LOGS_DIR / f"{job}_0_log.out").exists():
            row.log = str(record.dir / LOGS_DIR / f"{job}_0_log.out")
        if sid is not None:
            info = read_info(Path(record.sessions_root) / sid)
            row.session_id = sid
            row.status = info.status
            row.message = info.damaged or info.data.get("message") or None
            row.step, row.iterations, row.loss = info.step, info.iterations or row.iterations, info.final_loss
            last = last_metrics(info.path / "metrics.jsonl")
            if last is not None and int(last["step"]) >= row.step:
                row.step = int(last["step"])
                total = (last.get("losses") or {}).get("total")
                row.loss = float(total) if isinstance(total, int | float) else row.loss
            if info.status in ("interrupted", "stopped", "failed") and in_queue in ("PENDING", "CONFIGURING"):
                row.status = "queued"  # resubmitted; its job has not started yet
        elif in_queue in ("PENDING", "CONFIGURING", "REQUEUED"):
            row.status = "queued"
        elif in_queue is not None:
            row.status = "starting"
        elif row.log is not None:
            row.message = "its job ended before the run's session was made (cancelled while loading, or an error)"
        out.append(row)
    return out
