"""A session's two generators, loaded once for photo work, and rendering a W+ code through them at any
strength (0 = the generator the session started from, 1 = adapted), blended as `generate` blends."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine import sessions
from engine.errors import PhotoError
from engine.stylegan2 import Generator


@dataclass
class SessionModels:
    """What photo inversion needs from a session: its info, the starting and the adapted generator."""

    info: sessions.SessionInfo
    start: Generator
    adapted: Generator
    device: torch.device

    @property
    def resolution(self) -> int:
        return self.start.size

    @property
    def is_demo(self) -> bool:
        from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID

        return self.info.model_id == DEMO_GENERATOR_ID or any(n == DEMO_CLIP_ID for n, _ in self.info.clip_models)


def load_session_models(
    session: str | sessions.SessionInfo | SessionModels,
    device: str | torch.device = "auto",
    root: str | os.PathLike[str] | None = None,
    progress: Any = None,
) -> SessionModels:
    """A session (id, prefix, SessionInfo, or already loaded) with its generators on `device`. Raises the
    session and model errors (damaged weights, a base model that no longer matches) with their messages."""
    if isinstance(session, SessionModels):
        return session
    from engine import device as devices
    from engine.runs import session_generators

    dev = devices.resolve_device(device)
    info = session if isinstance(session, sessions.SessionInfo) else sessions.load(session, root)
    if info.damaged:
        raise sessions.SessionError(f"session {info.id} is damaged: {info.damaged}")
    start, adapted = session_generators(info, dev, progress)
    return SessionModels(info, start.requires_grad_(False), adapted.requires_grad_(False), dev)


def as_w_plus(w_plus: Any, generator: Generator) -> torch.Tensor:
    """A W+ code ([n_latent, D] or [1, n_latent, D], array or tensor) as [1, n_latent, D] for `generator`."""
    t = torch.as_tensor(np.asarray(w_plus.detach().cpu() if isinstance(w_plus, torch.Tensor) else w_plus),
                        dtype=torch.float32)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    want = (generator.n_latent, generator.style_dim)
    if t.ndim != 3 or tuple(t.shape[1:]) != want:
        raise PhotoError(
            f"the latent has shape {tuple(t.shape)}, this generator takes W+ codes of {want[0]} x {want[1]}: "
            "it was made by a generator of another size; render it through a session of the same base model"
        )
    if not torch.isfinite(t).all():
        raise PhotoError("the latent holds NaN or infinite values: invert the photo again")
    return t.to(generator.latent_avg.device)


@torch.no_grad()
def render_w(generator: Generator, w_plus: torch.Tensor) -> Image.Image:
    from engine.sampling import to_pil

    return to_pil(generator.synthesis(w_plus, noise="const"))[0]


def render_latent(session: str | sessions.SessionInfo | SessionModels, w_plus: Any, strength: float = 1.0,
                  device: str | torch.device = "auto") -> Image.Image:
    """The W+ code through the session's generator at `strength` (0 = frozen, 1 = adapted), its stored
    noise. Pass a loaded SessionModels when rendering many strengths: ids and infos load the models."""
    from engine.export import blend, check_strength

    strength = check_strength(strength)
    models = load_session_models(session, device)
    if strength == 0.0:
        g = models.start
    elif strength == 1.0:
        g = models.adapted
    else:
        g = blend(models.start, models.adapted, strength)
    return render_w(g, as_w_plus(w_plus, g))


def latent_render_name(stem: str, session_id: str, strength: float) -> str:
    """`<stem>.<session id>.png`, with `.strength-<A>` before `.png` below full strength."""
    return f"{stem}.{session_id}" + ("" if strength == 1.0 else f".strength-{strength:g}") + ".png"


def render_latent_files(
    session: str | sessions.SessionInfo | SessionModels,
    files: list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    strength: float = 1.0,
    device: str | torch.device = "auto",
    overwrite: bool = False,
) -> list[Path]:
    """Render saved `.latent.npz` files through a session (`generate --latents`) into
    `out_dir/<stem>.<session id>[.strength-A].png`. Every file is read before anything is written; an
    existing output is replaced only with `overwrite`."""
    from engine import atomic
    from engine.errors import ExportError
    from engine.export import check_strength
    from engine.photos.outputs import latent_stem, load_latent, png_bytes

    strength = check_strength(strength)
    latents = [(latent_stem(f), load_latent(f)[0]) for f in files]
    models = load_session_models(session, device)
    out = Path(out_dir)
    targets = [out / latent_render_name(stem, models.info.id, strength) for stem, _ in latents]
    clash = [p for p in targets if p.exists()] if not overwrite else []
    if clash:
        raise ExportError(f"{clash[0]} already exists: choose another --out directory, or pass --overwrite")
    codes = [as_w_plus(w, models.start) for _, w in latents]  # all checked before the first write
    out.mkdir(parents=True, exist_ok=True)
    for code, path in zip(codes, targets, strict=True):
        atomic.write_bytes(path, png_bytes(render_latent(models, code, strength)))
    return targets
