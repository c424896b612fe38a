"""CLIP guidance: encoders, prompt checks, text directions and the mixed directional/global loss.

Losses per CLIP model m (unit-norm embeddings everywhere):
    T      = normalise(mean over templates of (E_T(target_t) - E_T(source_t)))
    L_dir  = mean_batch(1 - cos(E_I(G_train(w)) - E_I(G_frozen(w)), T))
    L_glob = mean_batch(1 - cos(E_I(G_train(w)), E_T(target)))
    L_m    = (1 - g) * L_dir + g * L_glob            g = global_weight in [0, 1]
With target images (engine/target_images.py) T and E_T(target) are mixed with the images' direction and
mean embedding by image_weight a: normalise((1 - a) * text + a * image); a = 0 is the text alone, exactly.
    total  = sum over m of weight_m * L_m            (models with weight 0 are never evaluated)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.clip_vit import encode_image_lean, lean_visual
from engine.config import CONTEXT_LENGTH
from engine.errors import PromptError
from engine.templates import IMAGENET_TEMPLATES

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Below this length an image-embedding difference is not stretched to unit length: at step 0 the two
# generators agree, the direction is undefined and 1/|diff| would give Adam a gradient spike that
# freezes its second-moment estimate for hundreds of steps. Above it the loss is exactly 1 - cos.
MIN_DIRECTION_NORM = 1e-2


def _clip_module():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources deprecation inside openai-clip
        import clip

    return clip


@functools.cache
def _tokenizer():
    _clip_module()  # first: importing clip's submodule would run its package import unfiltered
    from clip.simple_tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def count_tokens(text: str) -> int:
    """Tokens CLIP sees for `text`, start and end tokens included (the limit is 77)."""
    return len(_tokenizer().encode(text)) + 2


def tokenize(texts: Sequence[str]) -> Tensor:
    return _clip_module().tokenize(list(texts), context_length=CONTEXT_LENGTH).long()


def expand_prompt(prompt: str, templates: bool) -> list[str]:
    return [t.format(prompt) for t in IMAGENET_TEMPLATES] if templates else [prompt]


def validate_prompts(source: str, target: str, templates: bool = False, images: bool = False) -> None:
    """Refuse prompts CLIP cannot use, before any model is loaded or step is run. With target `images`
    and no target prompt the run follows the images alone and uses neither prompt."""
    if images and not target.strip():
        return
    for label, text in (("source", source), ("target", target)):
        if not text or not text.strip():
            raise PromptError(
                f"The {label} prompt is empty: describe the {label} domain, e.g. 'a photo of a dog'.", label
            )
        longest = max(count_tokens(t) for t in expand_prompt(text.strip(), templates))
        if longest > CONTEXT_LENGTH:
            extra = " once filled into the templates" if templates else ""
            raise PromptError(
                f"The {label} prompt is {longest} CLIP tokens long{extra}; the limit is {CONTEXT_LENGTH}. "
                "Shorten it.",
                label,
            )
    if " ".join(source.lower().split()) == " ".join(target.lower().split()):
        raise PromptError(
            "Source and target prompts are the same, so there is no direction to follow: change the target.",
            "target",
        )


class ClipEncoder:
    """A frozen CLIP model with differentiable preprocessing for generator images in [-1, 1].

    Works with any object that has `encode_image(images)` and `encode_text(tokens)`: openai-clip's
    `CLIP`, a tiny one built for tests, or the colour-oracle demo model.
    """

    def __init__(self, model: nn.Module, name: str, input_resolution: int | None = None) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.name = name
        visual = getattr(model, "visual", None)
        self.input_resolution = int(input_resolution or getattr(visual, "input_resolution", 224))
        ref = next(iter(model.parameters()), None)
        self.device = ref.device if ref is not None else torch.device("cpu")
        self.dtype = ref.dtype if ref is not None else torch.float32
        # ((x + 1) / 2 - mean) / std = x * _scale + _shift: one op (resizing commutes with it: its weights sum to 1)
        std, mean = torch.tensor(CLIP_STD), torch.tensor(CLIP_MEAN)
        self._scale = (0.5 / std).view(1, 3, 1, 1).to(self.device)
        self._shift = ((0.5 - mean) / std).view(1, 3, 1, 1).to(self.device)
        self._visual = lean_visual(model)  # a vision transformer runs through engine.clip_vit
        self._text_cache: dict[str, Tensor] = {}

    def to(self, device: torch.device | str) -> ClipEncoder:
        self.model.to(device)
        self.device = torch.device(device)
        self._scale, self._shift = self._scale.to(device), self._shift.to(device)
        self._text_cache = {k: v.to(device) for k, v in self._text_cache.items()}
        return self

    def preprocess(self, images: Tensor) -> Tensor:
        """[-1, 1] -> CLIP input: short side resized (bicubic), centre crop, CLIP mean/std.

        Antialiased resizing: CLIP was trained on PIL-resized (antialiased) images, and a 1024 px face
        shrunk to 224 px without it aliases badly. The reference (torchvision 0.8) did not antialias.
        """
        r = self.input_resolution
        x = images.float()
        h, w = x.shape[-2:]
        if (h, w) != (r, r):
            scale = r / min(h, w)
            size = (max(r, round(h * scale)), max(r, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=size[0] < h)
            if size != (r, r):
                top, left = (size[0] - r) // 2, (size[1] - r) // 2
                x = x[:, :, top : top + r, left : left + r]
        return torch.addcmul(self._shift, x, self._scale).to(self.dtype)

    def encode_images(self, images: Tensor) -> Tensor:
        """Unit-norm image embeddings, differentiable with respect to `images`."""
        x = self.preprocess(images)
        features = self.model.encode_image(x) if self._visual is None else encode_image_lean(self._visual, x)
        return F.normalize(features.float(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> Tensor:
        """Unit-norm text embeddings [len(texts), D], cached per string. Always fp32, autocast off: the cache
        outlives the caller (a bf16 step's text target is reused by a later fp32 run on this encoder)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            with torch.autocast(self.device.type, enabled=False):
                emb = self.model.encode_text(tokenize(missing).to(self.device)).float()
            for t, e in zip(missing, F.normalize(emb, dim=-1), strict=True):
                self._text_cache[t] = e
        return torch.stack([self._text_cache[t] for t in texts])

    def text_direction(self, source: str, target: str, templates: bool = False) -> Tensor:
        """normalise(mean_t(E_T(target_t) - E_T(source_t))) over the templates, or the prompts alone."""
        diff = (
            self.encode_texts(expand_prompt(target, templates))
            - self.encode_texts(expand_prompt(source, templates))
        ).mean(0)
        norm = diff.norm()
        if norm < 1e-6:
            raise PromptError(
                f"CLIP {self.name} gives the source and target prompts the same embedding: "
                "make the target say what should change.",
                "target",
            )
        return diff / norm


def load_clip(path: str | Path, name: str | None = None, device: str | torch.device = "cpu") -> ClipEncoder:
    """Load an official CLIP file (TorchScript archive) or a plain state-dict file, weights exact.

    openai-clip's own `clip.load` breaks on state-dict files with torch 2.x and rounds weights through
    fp16 in `build_model`; loading the state dict again after building keeps them bit-exact.
    """
    clip = _clip_module()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"CLIP weights not found at {path}: download them with `nada-tui models download`."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sd = torch.jit.load(str(path), map_location="cpu").state_dict()
    except (RuntimeError, ValueError):
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(
                f"{path} is not a CLIP model file (expected an official CLIP .pt archive or a state dict)"
            ) from exc
    if not isinstance(sd, dict) or "visual.conv1.weight" not in sd and "visual.proj" not in sd:
        raise ValueError(f"{path} does not hold CLIP weights (no 'visual.*' tensors)")
    model = clip.model.build_model(dict(sd)).float()
    model.load_state_dict(sd)
    return ClipEncoder(model.to(device), name or path.stem)


class ClipLoss:
    """The weighted directional + global CLIP loss over one or more CLIP models."""

    def __init__(
        self,
        models: Sequence[tuple[ClipEncoder, float]],
        global_weight: float = 0.0,
        templates: bool = False,
        image_weight: float = 0.0,
    ) -> None:
        self.models = [(enc, float(w)) for enc, w in models if w != 0]  # weight 0: never evaluated
        if not self.models:
            raise ValueError("at least one CLIP model needs a non-zero weight")
        self.global_weight = float(global_weight)
        self.templates = templates
        self._directions: dict[tuple[str, str, str, bool], Tensor] = {}
        self.image_weight = float(image_weight)  # a: how much target images steer (0 = the text alone)
        self._image_targets: dict[str, tuple[Tensor, Tensor]] = {}
        self._global_targets: dict[tuple[str, str], Tensor] = {}
        # Replacements for a model's encode_images in the training loss (the trainer's compiled ones).
        self.image_encoders: dict[str, Callable[[Tensor], Tensor]] = {}

    def set_image_target(self, enc: ClipEncoder, direction: Tensor, embedding: Tensor) -> None:
        """The target images' direction and unit mean embedding for one model (see engine.target_images)."""
        self._image_targets[enc.name] = (direction, embedding)
        self._directions.clear()
        self._global_targets.clear()

    def _mixed(self, enc: ClipEncoder, text: Callable[[], Tensor], which: int) -> Tensor:
        """normalise((1 - a) * text + a * image); the text or the image term alone, untouched, at a = 0 or 1."""
        a = self.image_weight
        if a == 0 or enc.name not in self._image_targets:
            return text()
        image = self._image_targets[enc.name][which]
        return image if a == 1 else F.normalize((1 - a) * text() + a * image, dim=-1)

    def direction(self, enc: ClipEncoder, source: str, target: str) -> Tensor:
        key = (enc.name, source, target, self.templates)
        if key not in self._directions:
            self._directions[key] = self._mixed(enc, lambda: enc.text_direction(source, target, self.templates), 0)
        return self._directions[key]

    def global_target(self, enc: ClipEncoder, target: str) -> Tensor:
        """What the global loss aims at: E_T(target), mixed with the target images' mean embedding."""
        key = (enc.name, target)
        if key not in self._global_targets:
            self._global_targets[key] = self._mixed(enc, lambda: enc.encode_texts([target])[0], 1)
        return self._global_targets[key]

    def __call__(
        self, frozen_img: Tensor, trained_img: Tensor, source: str, target: str
    ) -> dict[str, Tensor]:
        """Named scalar terms: total, directional, global, and both per model ('directional/ViT-B/32')."""
        g = self.global_weight
        terms: dict[str, Tensor] = {}
        total = directional = glob = trained_img.new_zeros(())
        n = trained_img.shape[0]
        both = torch.cat([frozen_img.detach(), trained_img])  # one CLIP pass for both: half the launches
        for enc, weight in self.models:
            emb = self.image_encoders.get(enc.name, enc.encode_images)(both)
            frozen_emb, trained_emb = emb[:n].detach(), emb[n:]
            diff = trained_emb - frozen_emb
            edit = diff / diff.norm(dim=-1, keepdim=True).clamp_min(MIN_DIRECTION_NORM)
            l_dir = (1 - (edit * self.direction(enc, source, target)).sum(-1)).mean()
            l_glob = (1 - trained_emb @ self.global_target(enc, target)).mean()
            terms[f"directional/{enc.name}"] = l_dir
            terms[f"global/{enc.name}"] = l_glob
            directional = directional + weight * l_dir
            glob = glob + weight * l_glob
            total = total + weight * ((1 - g) * l_dir + g * l_glob)
        terms["directional"], terms["global"], terms["total"] = directional, glob, total
        return terms

    def global_losses(self, images: Tensor, target: str) -> Tensor:
        """Weighted global loss of each image [N], each from its own image alone: the objective of adaptive
        layer selection (their mean), which runs it in micro-batches."""
        loss = images.new_zeros(images.shape[0])
        for enc, weight in self.models:
            emb = enc.encode_images(images)
            loss = loss + weight * (1 - emb @ self.global_target(enc, target))
        return loss
