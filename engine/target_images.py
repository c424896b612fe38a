"""Target images (the reference's `--style_img_dir`): finding, checking, reading and embedding them.

A run may adapt towards a handful of pictures instead of, or as well as, a target prompt. Per CLIP model:

    image direction  = normalise(mean_i E_I(target_i) - mean_j E_I(G_frozen(z_j)))
    image target     = normalise(mean_i E_I(target_i))              (what the global loss aims at)
    direction        = normalise((1 - a) * text direction + a * image direction)
    global target    = normalise((1 - a) * E_T(target prompt) + a * image target)

with a = `image_weight` (auto: 1 with images alone, 0.5 with a target prompt too), z_j a fixed-seed batch
of `target_image_batch` samples. Every image E_I is unit norm, as everywhere in `engine.clip_loss`.
Source images (`source_images`, the reference's issue #51) take the frozen samples' place: the image
direction then starts from mean_j E_I(source_j), a domain the user shows rather than the generator's own.
They need target images (without them there is no image direction to start), and follow the same rules.

Reading: files or folders (not searched recursively) of png/jpg/jpeg/webp, at most 64 images. Every image
becomes 8-bit RGB (grayscale, palette, 16-bit and CMYK converted; transparency laid over white; EXIF
rotation applied) and is downscaled to at most 512 px on its longer side. That copy is what trains and
what a session keeps, so a fresh run and a resumed one see the same pixels. Anything unusable raises
`TargetImageError` (a ConfigError naming `target_images`) with what to do, before anything is written.

Importing this module does not import torch; the embedding helpers import it when called.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from engine import user_files
from engine.config import ConfigError, TrainConfig
from engine.image_files import ImageRules, read_image

if TYPE_CHECKING:
    from torch import Tensor

    from engine.clip_loss import ClipEncoder
    from engine.stylegan2 import Generator

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
MAX_TARGET_IMAGES = 64
MAX_SIDE = 512  # the longer side of the copy that trains and that a session keeps
MAX_ASPECT = 8  # longer side / shorter side: CLIP keeps only the centre square of what it is given
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default, for when a program has set the limit to None
FIELD = "target_images"
SOURCE_FIELD = "source_images"
SAMPLE_SEED_OFFSET = 7919  # the frozen samples' seed is the run's seed plus this
_KINDS = "png, jpg, jpeg or webp"


class TargetImageError(ConfigError):
    """Target images that cannot be used; the message names the path and says what to do."""

    def __init__(self, message: str, field: str = FIELD) -> None:
        super().__init__(field, message)


@dataclass(frozen=True)
class TargetImage:
    """One target image: where it came from and its RGB copy (longer side at most MAX_SIDE px)."""

    source: Path
    image: Image.Image
    note: str | None = None  # something to tell the user about it (an animation of which one frame is used)


# ----- settings that belong together -----------------------------------------------------------------
def resolve_image_weight(config: TrainConfig) -> float:
    """a in the mix: 0 without images; "auto" (None) is 1 with images alone, 0.5 with a target prompt too."""
    if not config.target_images:
        return 0.0
    if config.image_weight is not None:
        return float(config.image_weight)
    return 0.5 if config.target.strip() else 1.0


def check_image_settings(config: TrainConfig) -> None:
    """The rules between target prompt, target and source images and image_weight (no files are read here)."""
    if config.source_images and not config.target_images:
        raise ConfigError(
            SOURCE_FIELD,
            "source images replace the generator's own samples at the start of the image direction, which "
            "target images give: add target images (--target-images), or leave the source images out",
        )
    a = config.image_weight
    if a is None:
        return
    if not config.target_images:
        raise ConfigError(
            "image_weight",
            f"is {a:g} but no target images are given: add target images (--target-images) or leave it at auto",
        )
    if a < 1 and not config.target.strip():
        raise ConfigError(
            "image_weight",
            f"is {a:g}, but with target images alone there is no text direction to mix in: give a target "
            "prompt too, or leave it at auto (1)",
        )


def describe(target: str, count: int) -> str:
    """A run's target in a few words: "a sketch", "3 images", "a sketch + 3 images"."""
    if not count:
        return target
    images = f"{count} image{'s' if count != 1 else ''}"
    return f"{target} + {images}" if target.strip() else images


# ----- finding the files ------------------------------------------------------------------------------
def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _role(field: str) -> str:
    return field.split("_")[0]  # "target" or "source"


def _folder_images(folder: Path, field: str = FIELD) -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name.casefold())
    except OSError as exc:
        raise TargetImageError(f"the folder {folder} cannot be read ({exc.strerror or exc})", field) from None
    visible = [e for e in entries if not e.name.startswith(".")]
    found = [Path(e.path) for e in visible if e.is_file() and _is_image_name(Path(e.name))]
    if found:
        return found
    if not visible:
        raise TargetImageError(f"the folder {folder} is empty: put the {_role(field)} images ({_KINDS}) in it", field)
    others = [e.name for e in visible if e.is_file()]
    if others:
        raise TargetImageError(
            f"the folder {folder} holds no {_KINDS} files ({len(others)} other file"
            f"{'s' if len(others) != 1 else ''}, e.g. {others[0]!r}): add images, or convert them to PNG", field
        )
    raise TargetImageError(
        f"the folder {folder} holds only subfolders, no {_KINDS} files (subfolders are not searched): "
        "give the subfolders themselves", field
    )


def find_image_files(paths: Iterable[str | os.PathLike[str]], field: str = FIELD) -> list[Path]:
    """The image files named by `paths` (files, or folders of them), in order, each once. Cheap: lists
    folders and checks names, reads no image. Raises TargetImageError naming `field` (target_images or
    source_images)."""
    out: dict[Path, None] = {}
    for given in paths:
        path = Path(os.fspath(given)).expanduser()
        found_problem = user_files.problem(path, folder_ok=True)
        if found_problem is not None:
            raise TargetImageError(f"{given} {found_problem}: give files or folders of {_KINDS} images", field)
        if path.is_dir():
            found = _folder_images(path, field)
        elif not _is_image_name(path):
            raise TargetImageError(f"{given} is not a {_KINDS} file: convert it to PNG, or leave it out", field)
        else:
            found = [path]
        for f in found:
            out.setdefault(f.resolve(), None)
        if len(out) > MAX_TARGET_IMAGES:
            break
    if len(out) > MAX_TARGET_IMAGES:
        raise TargetImageError(
            f"more than {MAX_TARGET_IMAGES} {_role(field)} images given: pick at most {MAX_TARGET_IMAGES} (the "
            "direction uses their mean embedding, so a few dozen typical ones are plenty)", field
        )
    return list(out)


# ----- reading one image ------------------------------------------------------------------------------
def _max_pixels() -> int:
    limit = Image.MAX_IMAGE_PIXELS
    return int(limit) if limit else DEFAULT_MAX_PIXELS


def _too_narrow(path: Path, width: int, height: int) -> str | None:
    if max(width, height) <= MAX_ASPECT * max(1, min(width, height)):
        return None
    return (f"{path} is {width} x {height} px: its longer side is more than {MAX_ASPECT} times its shorter one, "
            "and CLIP would see only a square from its middle. Crop it nearer to a square")


TARGET_RULES = ImageRules(
    error=TargetImageError,
    give=f"{_KINDS} image files",
    max_pixels=_max_pixels,
    max_side=MAX_SIDE,
    downscale_advice=lambda path: f"downscale it (it trains at {MAX_SIDE} px anyway), e.g. `magick '{path.name}' "
                                  f"-resize {4 * MAX_SIDE}x{4 * MAX_SIDE} smaller.png`",
    size_problem=_too_narrow,
)


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """One image, checked and converted: 8-bit RGB, longer side at most MAX_SIDE px. Raises
    TargetImageError for a missing, corrupt, truncated or oversized file, or one that is not a regular file."""
    return read_target(path).image


def read_target(path: str | os.PathLike[str], field: str = FIELD) -> TargetImage:
    """`load_image` with a note for the user: an animated image (WebP, APNG) trains on its first frame.
    The TargetImageError names `field` (target_images or source_images)."""
    try:
        read = read_image(Path(path), TARGET_RULES)
    except TargetImageError as exc:
        if field == FIELD:
            raise
        raise TargetImageError(str(exc).removeprefix(f"{FIELD}: "), field) from None
    note = None
    if read.frames > 1:
        note = (f"{path} is animated ({read.frames} frames): only its first frame is used as a target image; "
                "export the frame you want as a PNG to choose another")
    return TargetImage(Path(path), read.image, note)


def load_target_images(paths: Iterable[str | os.PathLike[str]], field: str = FIELD) -> list[TargetImage]:
    """Every image named by `paths`, read and checked (see the module docstring); [] for no paths. The
    notes of animated images are in each TargetImage's `note`. Errors name `field`."""
    return [read_target(f, field) for f in find_image_files(paths, field)]


# ----- embeddings (torch from here on) ---------------------------------------------------------------
def to_tensor(image: Image.Image) -> Tensor:
    """An RGB PIL image -> [1, 3, H, W] in [-1, 1], the range of generator images."""
    import numpy as np
    import torch

    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1


def frozen_samples(generator: Generator, count: int, seed: int, chunk: int = 4) -> Iterator[Tensor]:
    """`count` fixed-seed samples of the frozen generator (no truncation, its stored noise), `chunk` at a
    time. The seed is offset from the run's so the samples are not the first training batch again."""
    import torch

    device = generator.latent_avg.device
    rng = torch.Generator(device).manual_seed(seed + SAMPLE_SEED_OFFSET)
    z = torch.randn(count, generator.z_dim, generator=rng, device=device)
    with torch.no_grad():
        for i in range(0, count, chunk):
            yield generator.render(z[i : i + chunk], truncation=1.0, noise="const")


def image_targets(
    encoders: Sequence[ClipEncoder],
    frozen_batches: Iterable[Tensor],
    images: Sequence[Image.Image],
    source_images: Sequence[Image.Image] = (),
) -> dict[str, tuple[Tensor, Tensor]]:
    """Per encoder name: (image direction, image target), as in the module docstring.

    `frozen_batches`: the frozen generator's samples ([n, 3, H, W] in [-1, 1]), in chunks so that a large
    generator never holds the whole batch at once; with `source_images` those images are the start of the
    direction instead (and `frozen_batches` may be empty). Everything runs without gradients."""
    import torch
    import torch.nn.functional as F

    if not images:
        raise TargetImageError("no target images to build a direction from")
    sums: dict[str, Any] = {}
    count = 0
    with torch.no_grad():
        if source_images:  # the user's own picture of the source domain, one image at a time (sizes differ)
            frozen_batches = (to_tensor(im) for im in source_images)
        for batch in frozen_batches:
            count += batch.shape[0]
            for enc in encoders:
                emb = enc.encode_images(batch.to(enc.device)).sum(0)
                sums[enc.name] = emb if enc.name not in sums else sums[enc.name] + emb
        if not count:
            raise ValueError("image_targets needs at least one frozen sample")
        tensors = [to_tensor(im) for im in images]
        out: dict[str, tuple[Tensor, Tensor]] = {}
        for enc in encoders:
            # One image at a time: the images differ in size, and CLIP's preprocessing resizes each.
            target = torch.stack([enc.encode_images(t.to(enc.device))[0] for t in tensors]).mean(0)
            diff = target - sums[enc.name] / count
            if float(diff.norm()) < 1e-6:
                start = "source images" if source_images else "generator's own samples"
                raise TargetImageError(
                    f"CLIP {enc.name} sees the target images as the {start}, so there is no "
                    "direction to follow: pick images of the style you want"
                )
            out[enc.name] = (diff / diff.norm(), F.normalize(target, dim=-1))
    return out


def set_image_targets(
    loss: Any,
    frozen: Generator,
    config: TrainConfig,
    images: Sequence[Image.Image],
    source_images: Sequence[Image.Image] = (),
) -> None:
    """Give `loss` (an engine.clip_loss.ClipLoss) the images' direction and target for each of its CLIP
    models, as the run trains them; nothing when its image_weight is 0 (the text alone)."""
    if loss.image_weight == 0:
        return
    samples = () if source_images else frozen_samples(frozen, config.target_image_batch, config.seed)
    found = image_targets([enc for enc, _ in loss.models], samples, images, source_images)
    for enc, _ in loss.models:
        loss.set_image_target(enc, *found[enc.name])
