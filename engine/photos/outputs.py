"""What a photo's inversion leaves on disk, written atomically (engine.atomic):

    <stem>.aligned.png   what was inverted (the aligned face or the centre crop, at the generator's size)
    <stem>.inverted.png  the frozen generator's render of the found latent
    <stem>.adapted.png   the session's adapted generator's render of it
    <stem>.latent.npz    `w_plus` [n_latent, style_dim] float32 and `meta`, a JSON string: session id,
                         model, steps, loss, psnr_db, align, pti, perceptual, photo, created

in the output folder and in the session's own `photos/` folder. The latent file alone is enough to render
the photo through any session of the same base model (`generate --latents`).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine import atomic
from engine.errors import PhotoError
from engine.sessions import layout

KINDS = ("aligned", "inverted", "adapted")
LATENT_SUFFIX = ".latent.npz"


def session_photos_dir(session_path: Path) -> Path:
    return session_path / layout.PHOTOS_DIR


def file_paths(folder: Path, stem: str) -> dict[str, Path]:
    """{"aligned": ..., "inverted": ..., "adapted": ..., "latent": ...} for `stem` in `folder`."""
    paths = {kind: folder / f"{stem}.{kind}.png" for kind in KINDS}
    paths["latent"] = folder / f"{stem}{LATENT_SUFFIX}"
    return paths


def latent_bytes(w_plus: np.ndarray, meta: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, w_plus=np.asarray(w_plus, dtype=np.float32), meta=np.array(json.dumps(dict(meta))))
    return buf.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def write_photo_files(folder: Path, stem: str, images: Mapping[str, Image.Image], w_plus: np.ndarray,
                      meta: Mapping[str, Any]) -> dict[str, Path]:
    """The four files of one photo in `folder` (made if missing), each atomic; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = file_paths(folder, stem)
    for kind in KINDS:
        atomic.write_bytes(paths[kind], png_bytes(images[kind]))
    atomic.write_bytes(paths["latent"], latent_bytes(w_plus, meta))
    return paths


def latent_stem(path: str | os.PathLike[str]) -> str:
    name = Path(path).name
    return name[: -len(LATENT_SUFFIX)] if name.endswith(LATENT_SUFFIX) else Path(name).stem


def load_latent(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """(w_plus [n_latent, D], meta) from a `.latent.npz`; PhotoError names the file and what is wrong."""
    from engine import user_files

    path = Path(path)
    found = user_files.problem(path)
    if found is not None:
        raise PhotoError(f"{path} {found}: give a .latent.npz that `nada-tui photos` wrote")
    try:
        with np.load(path, allow_pickle=False) as data:
            w = np.array(data["w_plus"], dtype=np.float32)
            meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError) as exc:
        raise PhotoError(
            f"{path} is not a latent file that `nada-tui photos` wrote ({type(exc).__name__}: {exc}): invert the "
            "photo again"
        ) from None
    if w.ndim == 3 and w.shape[0] == 1:
        w = w[0]
    return w, meta if isinstance(meta, dict) else {}
