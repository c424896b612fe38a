"""Reading a user's photo, whatever they hand us, through the one image reader (engine.image_files: a FIFO
or device refused before any open, a decompression bomb never decoded, EXIF rotation honoured, every mode
to 8-bit RGB) with a photo's rules: photos smaller than MIN_SIDE are refused, larger than MAX_SIDE
downscaled. Every problem is a PhotoError naming the file and saying what to do. Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from engine import user_files
from engine.errors import PhotoError
from engine.image_files import ImageRules, read_image

MIN_SIDE = 64  # the shorter side below which a photo holds too little to invert
MAX_SIDE = 2048  # larger photos are downscaled (JPEG decodes at a reduced scale): alignment needs no more
MAX_PIXELS = 89_478_485  # PIL's own default: over it the header alone refuses the file (a possible bomb)
GIVE = "image files (png, jpg, webp, ...)"


def _too_small(path: Path, width: int, height: int) -> str | None:
    if min(width, height) >= MIN_SIDE:
        return None
    return (f"{path} is {width} x {height} px, smaller than the {MIN_SIDE} px minimum on its shorter side: there "
            "is too little of it to invert; use a larger photo")


PHOTO_RULES = ImageRules(
    error=PhotoError,
    give=GIVE,
    max_pixels=lambda: MAX_PIXELS,
    max_side=MAX_SIDE,
    downscale_advice=lambda path: f"downscale it first, e.g. `magick '{path.name}' -resize {MAX_SIDE}x{MAX_SIDE} "
                                  "smaller.png`",
    size_problem=_too_small,
)


def not_a_file(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot be a photo without opening it (a FIFO, a device, a folder, missing), else None."""
    found = user_files.problem(Path(path))  # never opened: a FIFO would block its reader for ever
    return None if found is None else f"{path} {found}: give {GIVE}"


def load_photo(path: str | os.PathLike[str]) -> Image.Image:
    """The photo at `path` as 8-bit RGB, upright, longer side at most MAX_SIDE. Raises PhotoError."""
    return read_image(Path(path), PHOTO_RULES).image


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
