"""Your own photos through a session's generators: read, align or crop, invert into W+, render through
the frozen and the adapted generator, keep the results with the session.

    results = invert_photos("20261205-...", ["me.jpg"], "out", steps=500, on_event=print)
    image = render_latent(models_or_session, w_plus, strength=0.5)

One module a job: loading (reading any photo safely), framing (alignment or centre crop), perceptual
(LPIPS or the demo stand-in), inversion (the W+ optimisation), pti (pivotal tuning), rendering (the
session's generators, strength blends), outputs (the files), invert (the pipeline).
"""

from __future__ import annotations

from engine.photos.invert import DEFAULT_STEPS, PhotoResult, invert_photos
from engine.photos.outputs import load_latent
from engine.photos.rendering import SessionModels, load_session_models, render_latent

__all__ = [
    "DEFAULT_STEPS",
    "PhotoResult",
    "SessionModels",
    "invert_photos",
    "load_latent",
    "load_session_models",
    "render_latent",
]
