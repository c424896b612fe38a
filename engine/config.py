"""The settings table: every training setting once, with its CLI flag, form label, help, default and
allowed range, plus `TrainConfig` (the settings of one run), its validation and the demo/CLIP constants.

The CLI flags (`nada_tui/cli/_common.py`), the app's setup form (`nada_tui/widgets/setup_form.py`), sweep
files and the README's settings table are all generated from `SETTINGS`; a new setting is one field here.
Torch-free on purpose: `nada-tui --help`, listing models and the app's first paint never wait for torch.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

CONTEXT_LENGTH = 77  # CLIP's text context, in tokens (start and end tokens included)
DEFAULT_CLIP_MODEL = "ViT-B/32"
DEMO_GENERATOR_ID = "demo-tiny"
DEMO_CLIP_ID = "demo-colour-oracle"
DEMO_SOURCE = "a red image"
DEMO_TARGET = "a blue image"
# The reference scales lr and beta2 by its g_reg ratio 4/5; we keep that so its recipes carry over.
LR_SCALE = 0.8
ADAM_BETAS = (0.0, 0.99**0.8)
PRECISIONS = ("auto", "fp32", "tf32", "bf16")


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


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _auto_float(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    return _float(value)


def _paths(value: Any) -> tuple[str, ...]:
    """Paths as a list (CLI arguments, TOML arrays) or one line of text, split the way a shell splits it
    (the form and TOML strings: quote a path that holds spaces)."""
    if value is None:
        return ()
    if isinstance(value, str | os.PathLike):
        value = shlex.split(os.fspath(value))
    return tuple(os.fspath(v) for v in value if os.fspath(v).strip())


def _k(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    return _int(value)


def _seeds(value: Any) -> tuple[int, ...]:
    parts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    return tuple(_int(s) for s in parts)


def _new_seeds(value: Any) -> tuple[int, ...]:
    """Seeds typed by a user (CLI, form, sweep files) are 0 or more, as `generate --seed` is. Saved
    settings go through `_seeds` alone, so an old session with a negative seed still loads."""
    try:
        seeds = _seeds(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a list of whole numbers") from None
    bad = [s for s in seeds if not 0 <= s < 2**63]
    if bad:
        raise ValueError(f"seeds are whole numbers 0 or more; got {bad[0]}")
    return seeds


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


def _layers(value: Any) -> str:
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


def _clip_models(value: Any) -> tuple[tuple[str, float], ...]:
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


PARSERS: dict[str, Callable[[Any], Any]] = {
    "text": lambda v: str(v),
    "paths": _paths,
    "auto_float": _auto_float,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "k": _k,
    "seeds": _new_seeds,
    "clip": _clip_models,
    "choice": lambda v: str(v).strip().lower(),
    "layers": _layers,
    "indices": parse_indices,
}


# ----- the table ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One row of the settings table. `name` is the TrainConfig field; `default` its default."""

    name: str
    flag: str  # the CLI flag, e.g. "--iters"; sweep files accept it without dashes as an alias
    label: str  # the setup form's label; "" = not on the form
    help: str
    allowed: str  # the allowed values in words (error messages and the README)
    kind: str  # a key of PARSERS: how text becomes a value
    check: Callable[[Any], bool]
    default: Any = None
    choices: tuple[str, ...] = ()
    live: bool = False  # may change while a run trains (Trainer.update)
    default_text: str | None = None  # for the README where the bare default says too little
    metavar: str = ""

    def parse(self, value: Any) -> Any:
        """A CLI/form/TOML value -> this field's type; ConfigError names the field when it cannot."""
        try:
            parsed = PARSERS[self.kind](value)
        except (TypeError, ValueError) as exc:
            detail = str(exc) if self.kind in ("clip", "layers", "indices", "seeds") else f"{value!r} is not valid"
            raise ConfigError(self.name, f"{detail}; allowed: {self.allowed}") from None
        if self.choices and parsed not in self.choices:
            raise ConfigError(self.name, f"got {value!r}; allowed: {self.allowed}")
        return parsed

    def format(self, value: Any) -> str:
        """A value as the form and the README show it (parse(format(v)) == v)."""
        if value is None:
            return "auto" if self.kind in ("k", "auto_float") else ""
        if self.kind == "paths":
            return shlex.join(value)
        if self.kind == "clip":
            return format_clip_models(value)
        if self.kind == "indices":
            return format_indices(value)
        if self.kind == "seeds":
            return ",".join(str(s) for s in value)
        if self.kind == "bool":
            return "on" if value else "off"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    @property
    def sweep_key(self) -> str:
        return self.flag.removeprefix("--")


def _setting(default: Any, flag: str, label: str, help: str, allowed: str, kind: str,
             check: Callable[[Any], bool] = lambda v: True, **more: Any) -> Any:
    return field(default=default, metadata={"setting": dict(flag=flag, label=label, help=help, allowed=allowed,
                                                            kind=kind, check=check, **more)})


def _between(lo: float, hi: float) -> Callable[[Any], bool]:
    return lambda v: lo <= v <= hi and math.isfinite(v)


def _at_least(lo: int) -> Callable[[Any], bool]:
    return lambda v: v >= lo


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one run. Field order is the order of the CLI help, the form and the README."""

    source: str = _setting("", "--source", "Source prompt", "what the generator makes now, e.g. 'a photo of a dog'",
                           "non-empty (unless target images alone), at most 77 CLIP tokens, not the target",
                           "text")
    target: str = _setting("", "--target", "Target prompt", "what it should make, e.g. 'a pencil drawing of a dog'",
                           "non-empty unless target images are given, at most 77 CLIP tokens, not the source",
                           "text")
    # Image targets (engine/target_images.py): instead of, or as well as, the target prompt.
    target_images: tuple[str, ...] = _setting(
        (), "--target-images", "Target images", "image files or folders of them to adapt towards, instead of or "
        "as well as the target prompt (copies are kept in the session)",
        "files or folders of png, jpg, jpeg or webp images, at most 64 images in all", "paths",
        lambda v: all(isinstance(p, str) and p.strip() for p in v), default_text="none", metavar="PATH")
    image_weight: float | None = _setting(
        None, "--image-weight", "img wt", "a in (1-a)*text + a*images, for the direction and the global "
        "target", "auto, or a number from 0 to 1 (below 1 needs a target prompt)", "auto_float",
        lambda v: v is None or (0 <= v <= 1 and math.isfinite(v)),
        default_text="auto = 1 with images alone, 0.5 with a target prompt too", metavar="A")
    target_image_batch: int = _setting(16, "--target-image-batch", "", "frozen-generator samples whose mean CLIP "
                                       "embedding the image direction starts from", "an integer from 1 to 256",
                                       "int", _between(1, 256), metavar="N")
    templates: bool = _setting(False, "--templates", "Templates",
                               "average the text direction over 79 ImageNet prompt templates (suits short class "
                               "names such as 'dog', not sentences)", "on or off", "bool")
    global_weight: float = _setting(0.0, "--global-weight", "Global weight",
                                    "g in (1-g)*directional + g*global; changes live in the app",
                                    "a number from 0 to 1", "float", _between(0, 1), live=True)
    iterations: int = _setting(300, "--iters", "iters", "training steps", "an integer from 1 to 1000000", "int",
                               _between(1, 1_000_000), live=True)
    lr: float = _setting(0.002, "--lr", "lr", "learning rate; Adam runs at lr x 0.8, as the reference",
                         "a number above 0 and at most 1", "float", lambda v: 0 < v <= 1 and math.isfinite(v))
    batch: int = _setting(2, "--batch", "batch", "images per step", "an integer from 1 to 256", "int",
                          _between(1, 256))
    seed: int = _setting(0, "--seed", "seed", "random seed of the run", "a non-negative integer", "int",
                         lambda v: 0 <= v < 2**63)
    layers: str = _setting("auto", "--layers", "layers",
                           "which W+ layers train: auto (adaptive selection: k, interval, falloff), all, coarse "
                           "(4-8 px), medium (16-32 px), fine (64 px and up), or W+ indices such as 0,1,4-7",
                           "auto, all, coarse, medium, fine, or W+ indices such as 0,1,4-7 that feed a "
                           "StyledConv of the model", "layers", lambda v: _layers(v) == v, metavar="SPEC")
    # None: int(2 * n_latent / 3); 0: every StyledConv trains
    auto_layer_k: int | None = _setting(None, "--k", "k", "W+ layers trained at a time: auto (2/3 of them), "
                                        "0 = all, or a number", "auto, 0 (all layers) or more", "k",
                                        lambda v: v is None or v >= 0, default_text="auto = int(2 n_latent / 3)",
                                        metavar="K")
    auto_layer_interval: int = _setting(10, "--interval", "every", "steps between layer selections (1 = every "
                                        "step, as the reference)", "1 (every step) or more", "int", _at_least(1))
    auto_layer_falloff: int = _setting(50, "--falloff", "falloff", "k drops by one every this many steps",
                                       "0 (off) or more", "int", _at_least(0))
    pin_on: tuple[int, ...] = _setting((), "--pin-on", "pin on", "W+ layers that always train (they count "
                                       "toward k); changes live in the app", "W+ indices such as 0,1,4-7 that "
                                       "feed a StyledConv, none also pinned off", "indices", live=True,
                                       default_text="none", metavar="INDICES")
    pin_off: tuple[int, ...] = _setting((), "--pin-off", "pin off", "W+ layers that never train; changes live "
                                        "in the app", "W+ indices such as 12 or 10-12 that feed a "
                                        "StyledConv, none also pinned on",
                                        "indices", live=True, default_text="none", metavar="INDICES")
    auto_layer_min_k: int = _setting(1, "--min-k", "", "k never drops below this", "1 or more", "int",
                                     _at_least(1))
    auto_layer_iters: int = _setting(1, "--layer-iters", "", "optimisation steps of each layer selection",
                                     "1 or more", "int", _at_least(1))
    auto_layer_batch: int = _setting(8, "--layer-batch", "", "latents scored in each layer selection",
                                     "an integer from 1 to 256", "int", _between(1, 256))
    mixing: float = _setting(0.0, "--mixing", "", "style-mixing probability in training batches (0.9 helps "
                             "shape changes)", "a probability from 0 to 1", "float", _between(0, 1))
    sample_truncation: float = _setting(0.7, "--truncation", "", "truncation of previews and samples",
                                        "a number from 0 to 1", "float", _between(0, 1))
    preview_every: int = _setting(25, "--preview-every", "preview", "save a preview grid every N steps",
                                  "0 (only at the end) or more", "int", _at_least(0), live=True)
    preview_seeds: tuple[int, ...] = _setting((0, 1, 2, 3), "--preview-seeds", "", "seeds of the preview grid",
                                              "1 to 16 seeds, each 0 or more", "seeds", lambda v: 1 <= len(v) <= 16,
                                              metavar="SEEDS")
    clip_models: tuple[tuple[str, float], ...] = _setting(
        ((DEFAULT_CLIP_MODEL, 1.0),), "--clip", "CLIP models (name=weight, ...)",
        "a CLIP model and its loss weight, NAME[:WEIGHT]; repeat for several (default ViT-B/32, or the colour "
        "oracle with --demo)", "weights 0 or more, at least one above 0", "clip",
        lambda v: len(v) >= 1 and all(w >= 0 and math.isfinite(w) for _, w in v) and any(w > 0 for _, w in v),
        metavar="NAME[:WEIGHT]")
    precision: str = _setting("auto", "--precision", "precision",
                              "arithmetic on the GPU: auto (tf32 on CUDA, fp32 on CPU), fp32, tf32, or bf16 "
                              "(CUDA only)", "auto, fp32, tf32 or bf16", "choice", choices=PRECISIONS)

    def __post_init__(self) -> None:
        # Tuples survive a JSON round trip as lists; normalise so equality and hashing keep working.
        object.__setattr__(self, "clip_models", _clip_models(self.clip_models))
        object.__setattr__(self, "preview_seeds", _seeds(self.preview_seeds))
        object.__setattr__(self, "target_images", _paths(self.target_images))
        for name in ("layers", "pin_on", "pin_off"):  # "0,1" or [0, 1] from JSON/TOML: one canonical form
            object.__setattr__(self, name, SETTINGS[name].parse(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        for s in SETTINGS.values():
            value = getattr(self, s.name)
            if not s.check(value) or (s.choices and value not in s.choices):
                raise ConfigError(s.name, f"got {value!r}; allowed: {s.allowed}")
        both = sorted(set(self.pin_on) & set(self.pin_off))
        if both:
            raise ConfigError("pin_off", f"w{both[0]} is pinned both on and off; pin it one way")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["clip_models"] = [list(m) for m in self.clip_models]
        d["preview_seeds"] = list(self.preview_seeds)
        d["target_images"] = list(self.target_images)
        d["pin_on"], d["pin_off"] = list(self.pin_on), list(self.pin_off)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from saved settings; unknown keys (from a newer version) are ignored."""
        return cls(**{k: v for k, v in data.items() if k in SETTINGS})

    @classmethod
    def parse(cls, values: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
        """Settings given as text or TOML values (keys: field names) on top of `base` or the defaults."""
        typed = {name: SETTINGS[name].parse(v) for name, v in values.items()}
        return base.replace(**typed) if base else cls(**typed)

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)


def _table() -> dict[str, Setting]:
    out = {}
    for f in fields(TrainConfig):
        meta = dict(f.metadata["setting"])
        out[f.name] = Setting(name=f.name, default=f.default, **meta)
    return out


SETTINGS: dict[str, Setting] = _table()


def lookup(key: str) -> Setting | None:
    """A setting by field name or CLI flag name, with dashes or underscores: "iters", "global-weight"."""
    want = key.strip().removeprefix("--").replace("_", "-")
    for s in SETTINGS.values():
        if want in (s.name.replace("_", "-"), s.sweep_key):
            return s
    return None


def default_k(n_latent: int) -> int:
    return int(2 * n_latent / 3)


# The demo's own recipe: a new user's first run must show the method working, so the 64 px demo turns
# its previews clearly blue in 100 steps (mean colour of the 4 preview seeds (186, 41, 95) -> (53, 35, 215);
# the reference's lr 0.002 gave (166, 43, 122) after 50 steps). Real models keep the reference's recipe.
DEMO_DEFAULTS: dict[str, Any] = {"iterations": 100, "lr": 0.01, "preview_every": 10}


def demo_config(**changes: Any) -> TrainConfig:
    """The `--demo` run: red -> blue with the colour oracle, with the demo's recipe (DEMO_DEFAULTS)."""
    values = {"source": DEMO_SOURCE, "target": DEMO_TARGET, "clip_models": ((DEMO_CLIP_ID, 1.0),),
              **DEMO_DEFAULTS, **changes}
    return TrainConfig(**values)


def default_clip_models(demo: bool) -> tuple[tuple[str, float], ...]:
    return ((DEMO_CLIP_ID, 1.0),) if demo else ((DEFAULT_CLIP_MODEL, 1.0),)


def markdown_table() -> str:
    """The README's settings table (a test checks the README holds exactly this)."""
    rows = ["| setting (`TrainConfig`) | CLI flag | default | allowed |", "|---|---|---|---|"]
    for s in SETTINGS.values():
        flag = f"`{s.flag} {s.metavar}`" if s.metavar else f"`{s.flag}`"
        default = s.default_text if s.default_text is not None else s.format(s.default)
        rows.append(f"| `{s.name}` | {flag} | {default} | {s.allowed} |")
    return "\n".join(rows)
