"""The settings table: every training setting once, with its CLI flag, form label, help, default and
allowed range, plus `TrainConfig` (the settings of one run), its validation and the demo/CLIP constants.

The CLI flags (`nada_tui/cli/_common.py`), the app's setup form (`nada_tui/widgets/setup_form.py`), sweep
files and the README's settings table are all generated from `SETTINGS`; a new setting is one field here.
Torch-free on purpose: `nada-tui --help`, listing models and the app's first paint never wait for torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from engine.setting_kinds import (
    LAYER_SETS,
    AutoFloatSetting,
    AutoIntSetting,
    BoolSetting,
    ChoiceSetting,
    ClipModelsSetting,
    ConfigError,
    FloatSetting,
    IndicesSetting,
    IntSetting,
    LayersSetting,
    PathsSetting,
    SeedsSetting,
    Setting,
    TextSetting,
    at_least,
    between,
    clip_models,
    format_clip_models,
    format_indices,
    parse_clip_spec,
    parse_indices,
    parse_layers,
    paths,
    seeds,
)

# Names other modules import from here (the table's kinds live in engine.setting_kinds).
__all__ = ["LAYER_SETS", "ConfigError", "Setting", "format_clip_models", "format_indices", "parse_clip_spec",
           "parse_indices"]

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
NOISE_MODES = ("shared", "independent")
COMPILE_MODES = ("off", "compile", "graphs")  # engine/compiled.py


def _setting(default: Any, flag: str, label: str, help: str, allowed: str, kind: type[Setting],
             check: Callable[[Any], bool] = lambda v: True, **more: Any) -> Any:
    """A TrainConfig field and its row of the table: `kind` is the class of engine.setting_kinds that
    reads, writes and offers it as a flag."""
    return field(default=default, metadata={"setting": dict(kind=kind, flag=flag, label=label, help=help,
                                                            allowed=allowed, check=check, **more)})


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one run. Field order is the order of the CLI help, the form and the README."""

    source: str = _setting("", "--source", "Source prompt", "what the generator makes now, e.g. 'a photo of a dog'",
                           "non-empty (unless target images alone), at most 77 CLIP tokens, not the target",
                           TextSetting, example="a photo of a dog")
    target: str = _setting("", "--target", "Target prompt", "what it should make, e.g. 'a pencil drawing of a dog'",
                           "non-empty unless target images are given, at most 77 CLIP tokens, not the source",
                           TextSetting, example="a pencil drawing of a dog")
    # Image targets (engine/target_images.py): instead of, or as well as, the target prompt.
    target_images: tuple[str, ...] = _setting(
        (), "--target-images", "Target images", "image files or folders of them to adapt towards, instead of or "
        "as well as the target prompt (copies are kept in the session)",
        "files or folders of png, jpg, jpeg or webp images, at most 64 images in all", PathsSetting,
        lambda v: all(isinstance(p, str) and p.strip() for p in v), default_text="none", metavar="PATH")
    source_images: tuple[str, ...] = _setting(
        (), "--source-images", "", "image files or folders of them showing the source domain: the image "
        "direction starts from their mean CLIP embedding instead of the generator's own samples (needs target "
        "images; copies are kept in the session)",
        "files or folders of png, jpg, jpeg or webp images, at most 64 images in all; needs target images",
        PathsSetting, lambda v: all(isinstance(p, str) and p.strip() for p in v), default_text="none",
        metavar="PATH")
    image_weight: float | None = _setting(
        None, "--image-weight", "img wt", "a in (1-a)*text + a*images, for the direction and the global "
        "target", "auto, or a number from 0 to 1 (below 1 needs a target prompt)", AutoFloatSetting,
        lambda v: v is None or (0 <= v <= 1 and math.isfinite(v)),
        default_text="auto = 1 with images alone, 0.5 with a target prompt too", metavar="A")
    target_image_batch: int = _setting(16, "--target-image-batch", "", "frozen-generator samples whose mean CLIP "
                                       "embedding the image direction starts from (unless source images "
                                       "are given)", "an integer from 1 to 256",
                                       IntSetting, between(1, 256), metavar="N")
    templates: bool = _setting(False, "--templates", "Templates",
                               "average the text direction over 79 ImageNet prompt templates (suits short class "
                               "names such as 'dog', not sentences)", "on or off", BoolSetting,
                               note='templates fill the prompt into 79 photo templates: best for short class '
                               'names ("dog")')
    global_weight: float = _setting(0.0, "--global-weight", "Global weight (0 directional .. 1 global; live)",
                                    "g in (1-g)*directional + g*global; changes live in the app",
                                    "a number from 0 to 1", FloatSetting, between(0, 1), live=True,
                                    wide=True)  # the seed's one loss slider
    iterations: int = _setting(300, "--iters", "iters", "training steps", "an integer from 1 to 1000000", IntSetting,
                               between(1, 1_000_000), live=True)
    lr: float = _setting(0.002, "--lr", "lr", "learning rate; Adam runs at lr x 0.8, as the reference",
                         "a number above 0 and at most 1", FloatSetting, lambda v: 0 < v <= 1 and math.isfinite(v))
    batch: int = _setting(2, "--batch", "batch", "images per step", "an integer from 1 to 256", IntSetting,
                          between(1, 256))
    seed: int = _setting(0, "--seed", "seed", "random seed of the run", "a non-negative integer", IntSetting,
                         lambda v: 0 <= v < 2**63)
    layers: str = _setting("auto", "--layers", "layers",
                           "which W+ layers train: auto (adaptive selection: k, interval, falloff), all, coarse "
                           "(4-8 px), medium (16-32 px), fine (64 px and up), or W+ indices such as 0,1,4-7",
                           "auto, all, coarse, medium, fine, or W+ indices such as 0,1,4-7 that feed a "
                           "StyledConv of the model", LayersSetting, lambda v: parse_layers(v) == v, metavar="SPEC")
    # None: int(2 * n_latent / 3); 0: every StyledConv trains
    auto_layer_k: int | None = _setting(None, "--k", "k", "W+ layers trained at a time: auto (2/3 of them), "
                                        "0 = all, or a number", "auto, 0 (all layers) or more", AutoIntSetting,
                                        lambda v: v is None or v >= 0, default_text="auto = int(2 n_latent / 3)",
                                        metavar="K")
    auto_layer_interval: int = _setting(10, "--interval", "every", "steps between layer selections (1 = every "
                                        "step, as the reference)", "1 (every step) or more", IntSetting, at_least(1))
    auto_layer_falloff: int = _setting(50, "--falloff", "falloff", "k drops by one every this many steps",
                                       "0 (off) or more", IntSetting, at_least(0))
    pin_on: tuple[int, ...] = _setting((), "--pin-on", "pin on", "W+ layers that always train (they count "
                                       "toward k); changes live in the app", "W+ indices such as 0,1,4-7 that "
                                       "feed a StyledConv, none also pinned off", IndicesSetting, live=True,
                                       default_text="none", metavar="INDICES")
    pin_off: tuple[int, ...] = _setting((), "--pin-off", "pin off", "W+ layers that never train; changes live "
                                        "in the app", "W+ indices such as 12 or 10-12 that feed a "
                                        "StyledConv, none also pinned on",
                                        IndicesSetting, live=True, default_text="none", metavar="INDICES")
    auto_layer_min_k: int = _setting(1, "--min-k", "", "k never drops below this", "1 or more", IntSetting,
                                     at_least(1))
    auto_layer_iters: int = _setting(1, "--layer-iters", "", "optimisation steps of each layer selection",
                                     "1 or more", IntSetting, at_least(1))
    auto_layer_batch: int = _setting(8, "--layer-batch", "", "latents scored in each layer selection",
                                     "an integer from 1 to 256", IntSetting, between(1, 256))
    mixing: float = _setting(0.0, "--mixing", "", "style-mixing probability in training batches (0.9 helps "
                             "shape changes)", "a probability from 0 to 1", FloatSetting, between(0, 1))
    noise: str = _setting("shared", "--noise", "", "noise maps of a training step: shared (the frozen and the "
                          "trained render get the same maps, so they agree exactly before training) or "
                          "independent (each its own draw, as the reference)", "shared or independent",
                          ChoiceSetting, choices=NOISE_MODES)
    sample_truncation: float = _setting(0.7, "--truncation", "", "truncation of previews and samples",
                                        "a number from 0 to 1", FloatSetting, between(0, 1))
    preview_every: int = _setting(25, "--preview-every", "preview", "save a preview grid every N steps",
                                  "0 (only at the end) or more", IntSetting, at_least(0), live=True)
    preview_seeds: tuple[int, ...] = _setting((0, 1, 2, 3), "--preview-seeds", "", "seeds of the preview grid",
                                              "1 to 16 seeds, each 0 or more", SeedsSetting,
                                              lambda v: 1 <= len(v) <= 16, metavar="SEEDS")
    clip_models: tuple[tuple[str, float], ...] = _setting(
        ((DEFAULT_CLIP_MODEL, 1.0),), "--clip", "CLIP models (name=weight, ...)",
        "a CLIP model and its loss weight, NAME[:WEIGHT]; repeat for several (default ViT-B/32, or the colour "
        "oracle with --demo)", "weights 0 or more, at least one above 0", ClipModelsSetting,
        lambda v: len(v) >= 1 and all(w >= 0 and math.isfinite(w) for _, w in v) and any(w > 0 for _, w in v),
        metavar="NAME[:WEIGHT]")
    precision: str = _setting("auto", "--precision", "precision",
                              "arithmetic on the GPU: auto (tf32 on CUDA, fp32 on CPU), fp32, tf32, or bf16 "
                              "(CUDA only)", "auto, fp32, tf32 or bf16", ChoiceSetting, choices=PRECISIONS)
    compile: str = _setting("off", "--compile", "", "capture the fixed-shape parts of a step (the frozen render, "
                            "the CLIP image encoders) on CUDA: off (eager), compile (torch.compile) or graphs "
                            "(torch.compile with CUDA graphs: one launch each); the first steps compile",
                            "off, compile or graphs (CUDA only)", ChoiceSetting, choices=COMPILE_MODES)

    def __post_init__(self) -> None:
        # Tuples survive a JSON round trip as lists; normalise so equality and hashing keep working.
        object.__setattr__(self, "clip_models", clip_models(self.clip_models))
        object.__setattr__(self, "preview_seeds", seeds(self.preview_seeds))
        object.__setattr__(self, "target_images", paths(self.target_images))
        object.__setattr__(self, "source_images", paths(self.source_images))
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
        d["source_images"] = list(self.source_images)
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
        kind = meta.pop("kind")
        out[f.name] = kind(name=f.name, default=f.default, **meta)
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
        rows.append(f"| `{s.name}` | {flag} | {s.default_shown} | {s.allowed} |")
    return "\n".join(rows)
