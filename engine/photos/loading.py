"""Reading a user's photo, whatever they hand us: only a regular file is opened (a FIFO or a device is
refused before any open), the pixel count is checked from the header before anything is decoded (a
decompression bomb is never decoded), EXIF rotation is honoured, every mode becomes 8-bit RGB
(engine.image_modes: CMYK, grayscale, palette, 16-bit, alpha over white), photos smaller than MIN_SIDE
are refused and larger than MAX_SIDE are downscaled. Every problem is a PhotoError naming the file and
saying what to do. Torch-free.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from PIL import Image, ImageOps

from engine import user_files
from engine.errors import PhotoError
from engine.image_modes import to_rgb8

MIN_SIDE = 64  # the shorter side below which a photo holds too little to invert
MAX_SIDE = 2048  # larger photos are downscaled (JPEG decodes at a reduced scale): alignment needs no more
MAX_PIXELS = 89_478_485  # PIL's own default: over it the header alone refuses the file (a possible bomb)


def _bomb(path: Path, size: tuple[int, int] | None, pixels: int | None = None) -> PhotoError:
    if size is not None:
        pixels = size[0] * size[1]
    shown = f"{size[0]} x {size[1]} px, " if size else ""
    amount = f"{pixels / 1e6:.0f} megapixels" if pixels else "too large"
    return PhotoError(
        f"{path} is {shown}{amount}, over the {MAX_PIXELS / 1e6:.0f} megapixel limit (a possible decompression "
        f"bomb), so it was not decoded: downscale it first, e.g. `magick '{path.name}' -resize "
        f"{MAX_SIDE}x{MAX_SIDE} smaller.png`"
    )


def not_a_file(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot be a photo without opening it (a FIFO, a device, a folder, missing), else None."""
    found = user_files.problem(Path(path))  # never opened: a FIFO would block its reader for ever
    return None if found is None else f"{path} {found}: give image files (png, jpg, webp, ...)"


def load_photo(path: str | os.PathLike[str]) -> Image.Image:
    """The photo at `path` as 8-bit RGB, upright, longer side at most MAX_SIDE. Raises PhotoError."""
    path = Path(path)
    problem = not_a_file(path)
    if problem is not None:
        raise PhotoError(problem)
    try:
        with warnings.catch_warnings():
            # PIL only warns between 1x and 2x its pixel limit; everything above MAX_PIXELS is refused below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise _bomb(path, img.size)
                if min(img.size) < MIN_SIDE:
                    raise PhotoError(
                        f"{path} is {img.width} x {img.height} px, smaller than the {MIN_SIDE} px minimum on its "
                        "shorter side: there is too little of it to invert; use a larger photo"
                    )
                img.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale, far less memory
                img.load()
                img = ImageOps.exif_transpose(img) or img
                rgb = to_rgb8(img)
    except PhotoError:
        raise
    except Image.DecompressionBombError as exc:  # PIL refuses above twice its limit, before we see the size
        match = re.search(r"\((\d+) pixels\)", str(exc))
        raise _bomb(path, None, int(match.group(1)) if match else None) from None
    except FileNotFoundError:
        raise PhotoError(f"{path} does not exist: check the path") from None
    except Image.UnidentifiedImageError:
        raise PhotoError(
            f"{path} is not an image (corrupt, or not really {path.suffix or 'an image'}): "
            "re-export it as PNG or JPEG, or leave it out"
        ) from None
    except MemoryError:
        raise PhotoError(f"{path} does not fit in memory: downscale it first") from None
    except Exception as exc:  # truncated data, bad chunks: PIL raises OSError, SyntaxError, ValueError, ...
        raise PhotoError(
            f"{path} cannot be read: {exc or type(exc).__name__} (truncated or corrupt?): re-export it, or leave it out"
        ) from None
    if rgb is img:
        rgb = rgb.copy()  # detached from the closed file
    rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)  # only ever shrinks
    return rgb


def find_photos(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """The files named by `paths`, folders expanded to their image files (by extension, sorted, not
    recursive); files are kept whatever their name so that a bad one is reported, not skipped."""
    out: dict[Path, None] = {}
    for given in paths:
        path = Path(os.fspath(given)).expanduser()
        if path.is_dir():
            try:
                entries = sorted(os.scandir(path), key=lambda e: e.name.casefold())
            except OSError as exc:
                raise PhotoError(f"the folder {path} cannot be read ({exc.strerror or exc})") from None
            for e in entries:
                if not e.name.startswith(".") and not e.is_dir():
                    out.setdefault(Path(e.path), None)
        else:
            out.setdefault(path, None)
    return list(out)
