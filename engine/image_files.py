"""Reading one image file a user hands us, the one reader that target images and photos share: only a
regular file is opened (a FIFO or a device is refused before any open: it would block its reader for
ever), the pixel count is checked from the header before anything is decoded (a decompression bomb is
never decoded), JPEGs decode at a reduced scale, EXIF rotation is honoured, every mode becomes 8-bit RGB
(engine.image_modes) and the result is shrunk to a longest side. What differs per kind of image (its
error class, size rules, advice) comes in an `ImageRules`. Torch-free.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from engine import user_files
from engine.image_modes import to_rgb8


@dataclass(frozen=True)
class ImageRules:
    """What one kind of image may be, and how its refusals read."""

    error: type[Exception]  # raised with the message for the user
    give: str  # what to give instead of something that is not a file: "png, jpg, ... image files"
    max_pixels: Callable[[], int]  # over it the header alone refuses the file
    max_side: int  # the longer side of what is returned (only ever shrunk)
    downscale_advice: Callable[[Path], str]  # what to do with an over-large file
    size_problem: Callable[[Path, int, int], str | None] = lambda path, width, height: None


@dataclass(frozen=True)
class ReadImage:
    image: Image.Image  # 8-bit RGB, upright, longer side at most the rules' max_side
    frames: int  # an animated file's frame count (its first frame is `image`)


def read_image(path: Path, rules: ImageRules) -> ReadImage:
    """The image at `path`, checked and converted by `rules`. Raises `rules.error` with what to do."""
    problem = user_files.problem(path)
    if problem is not None:
        raise rules.error(f"{path} {problem}: give {rules.give}")
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its pixel limit; everything above max_pixels is refused below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > rules.max_pixels():
                    raise rules.error(_bomb(path, rules, img.size))
                complaint = rules.size_problem(path, img.width, img.height)
                if complaint is not None:
                    raise rules.error(complaint)
                frames = int(getattr(img, "n_frames", 1) or 1)
                img.draft("RGB", (rules.max_side, rules.max_side))  # JPEG: a reduced scale, far less memory
                img.load()
                img = ImageOps.exif_transpose(img) or img
                rgb = to_rgb8(img)
                if rgb is img:
                    rgb = rgb.copy()  # detached from the file, which closes here
    except rules.error:
        raise
    except Image.DecompressionBombError as exc:  # PIL refuses above twice its limit, before we see the size
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise rules.error(_bomb(path, rules, None, int(found.group(1)) if found else None)) from None
    except FileNotFoundError:
        raise rules.error(f"{path} does not exist: check the path") from None
    except Image.UnidentifiedImageError:
        raise rules.error(
            f"{path} is not an image (corrupt, or not really {path.suffix or 'an image'}): "
            "re-export it as PNG or JPEG, or leave it out"
        ) from None
    except MemoryError:
        raise rules.error(f"{path} does not fit in memory: downscale it first") from None
    except Exception as exc:  # truncated data, bad chunks: PIL raises OSError, SyntaxError, ValueError, ...
        raise rules.error(
            f"{path} cannot be read: {exc or type(exc).__name__} (truncated or corrupt?): re-export it, or leave it out"
        ) from None
    rgb.thumbnail((rules.max_side, rules.max_side), Image.Resampling.LANCZOS)  # only ever shrinks
    return ReadImage(rgb, frames)


def _bomb(path: Path, rules: ImageRules, size: tuple[int, int] | None, pixels: int | None = None) -> str:
    if size is not None:
        pixels = size[0] * size[1]
    shown = f"{size[0]} x {size[1]} px, " if size else ""
    amount = f"{pixels / 1e6:.0f} megapixels" if pixels else "too large"
    return (
        f"{path} is {shown}{amount}, over the {rules.max_pixels() / 1e6:.0f} megapixel limit (a possible "
        f"decompression bomb), so it was not decoded: {rules.downscale_advice(path)}"
    )
