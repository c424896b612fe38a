"""Scores of an adaptation: how well it follows its direction, how close it lands to its target, and whether
it kept its variety. `nada-tui eval` measures them; every run measures the cheap ones when it ends.

For n samples (seeds 0 .. n-1, the seeds `generate` uses; truncation 0.7; the stored noise), rendered by
the frozen generator F and the adapted one A from the same z, and one CLIP model (the session's CLIP
model with the largest loss weight; its name is stored with the scores), every embedding unit norm:

    clip_direction   = mean_i cos(E(A_i) - E(F_i), T)      T: the run's direction as it trained (text,
                                                            target images, source images, or a mix)
    clip_target      = mean_i cos(E(A_i), G)               G: the global loss's target (prompt and/or images)
    diversity        = mean over pairs i != j of 1 - cos(E(A_i), E(A_j))
    diversity_frozen = the same for F: a diversity well below it is mode collapse

A sample whose two renders agree (no edit at all) counts as cos 0 in clip_direction. Fixed seeds and the
sample count make two sessions' scores comparable when they share the CLIP model. `--fid FOLDER` adds FID
and KID against real images (engine/fid.py). The figures are written to the session's `scores.json`
(engine/sessions/scores.py, torch-free) only once all of them are measured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.clip_loss import ClipEncoder, ClipLoss
from engine.config import TrainConfig
from engine.sampling import seed_latents
from engine.sessions.scores import EVAL_SAMPLES, RUN_END_SAMPLES, write_scores
from engine.stylegan2 import Generator

__all__ = ["EVAL_SAMPLES", "RUN_END_SAMPLES", "ScoreError", "evaluate_session", "measure", "write_scores"]

MIN_SAMPLES = 2  # diversity needs a pair
MAX_SAMPLES = 10_000
SCORE_TRUNCATION = 0.7
SAME_RENDER = 1e-6  # an embedding difference below this is "no edit": cos counts as 0
CHUNK = 8  # samples rendered and encoded at a time


class ScoreError(ValueError):
    """Scores that cannot be measured as asked; the message says what to change. Nothing is written."""


def check_samples(samples: int) -> int:
    if not MIN_SAMPLES <= samples <= MAX_SAMPLES:
        raise ScoreError(
            f"--samples must be from {MIN_SAMPLES} to {MAX_SAMPLES} (diversity compares pairs of samples); "
            f"got {samples}"
        )
    return samples


def main_encoder(loss: ClipLoss) -> ClipEncoder:
    """The CLIP model scores use: the one with the largest loss weight (the first of equals)."""
    return max(loss.models, key=lambda m: m[1])[0]


def _mean_pairwise_distance(emb: torch.Tensor) -> float:
    """Mean of 1 - cos over ordered pairs i != j of unit-norm rows."""
    n = emb.shape[0]
    total = float((emb @ emb.T).sum())
    return 1.0 - (total - n) / (n * (n - 1))


@torch.no_grad()
def embeddings(
    frozen: Generator, adapted: Generator, enc: ClipEncoder, samples: int, chunk: int = CHUNK
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP embeddings [samples, D] of the frozen and adapted renders of seeds 0 .. samples-1."""
    device = frozen.latent_avg.device
    out_f, out_a = [], []
    for i in range(0, samples, chunk):
        z = seed_latents(range(i, min(samples, i + chunk)), frozen.z_dim).to(device)
        for g, out in ((frozen, out_f), (adapted, out_a)):
            img = g.render(z, truncation=SCORE_TRUNCATION, noise="const")
            out.append(enc.encode_images(img.to(enc.device)).float())
    return torch.cat(out_f), torch.cat(out_a)


@torch.no_grad()
def measure(
    frozen: Generator, adapted: Generator, loss: ClipLoss, config: TrainConfig, samples: int, chunk: int = CHUNK
) -> dict[str, Any]:
    """The CLIP scores of `adapted` against `frozen` (see the module docstring); `loss` holds the run's
    directions and targets (its image targets set, as the trainer sets them)."""
    check_samples(samples)
    enc = main_encoder(loss)
    direction = loss.direction(enc, config.source, config.target).float()
    target = loss.global_target(enc, config.target).float()
    emb_f, emb_a = embeddings(frozen, adapted, enc, samples, chunk)
    diff = emb_a - emb_f
    norm = diff.norm(dim=-1)
    cos = (diff @ direction) / norm.clamp_min(SAME_RENDER)
    cos = torch.where(norm < SAME_RENDER, torch.zeros_like(cos), cos)
    return {
        "clip_direction": float(cos.mean()),
        "clip_target": float((emb_a @ target).mean()),
        "diversity": _mean_pairwise_distance(emb_a),
        "diversity_frozen": _mean_pairwise_distance(emb_f),
        "fid": None,
        "kid": None,
        "samples": samples,
        "seeds": f"0-{samples - 1}",
        "truncation": SCORE_TRUNCATION,
        "clip_model": enc.name,
    }


def stamp(record: dict[str, Any], step: int, by: str) -> dict[str, Any]:
    """Add what the figures belong to: the session's step, who measured them ("eval", "run end"), when."""
    return {**record, "step": step, "by": by, "computed": time.strftime("%Y-%m-%dT%H:%M:%S")}


def scoring_loss(config: TrainConfig, clips: dict[str, ClipEncoder], frozen: Generator, images: list[Any],
                 sources: list[Any]) -> ClipLoss:
    """A ClipLoss with the session's directions and targets, built as its Trainer builds them."""
    from engine.target_images import resolve_image_weight, set_image_targets

    encoders = [(clips[n], w) for n, w in config.clip_models if w > 0]
    loss = ClipLoss(encoders, config.global_weight, config.templates, resolve_image_weight(config))
    set_image_targets(loss, frozen, config, images, sources)
    return loss


def evaluate_session(
    ref: str,
    samples: int = EVAL_SAMPLES,
    root: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    fid_folder: str | os.PathLike[str] | None = None,
    progress: Callable[..., Any] | None = None,
    fid_features: str = "inception",
) -> dict[str, Any]:
    """Measure a saved session's scores (and FID/KID against `fid_folder`), write its scores.json, return
    the record. `fid_features`: "inception", or "standin" in offline tests (engine.fid). Everything is
    checked before any model loads. Raises ScoreError, DamagedSession (a
    damaged session, or weights that cannot be read), zoo/model errors, FidError (engine.fid)."""
    from engine import device as devices
    from engine import runs, sessions

    check_samples(samples)
    info = sessions.load(ref, root)
    fid_files = None
    if fid_folder is not None:
        from engine import fid

        fid_files = fid.find_real_images(Path(fid_folder))
    images = [t.image for t in sessions.target_images(info)]
    sources = [t.image for t in sessions.source_images(info)]
    config = info.config
    dev = devices.resolve_device(device)
    frozen, adapted = runs.session_generators(info, dev, progress)
    clips = runs.load_clip_models(config, dev, progress)
    loss = scoring_loss(config, clips, frozen, images, sources)
    record = measure(frozen, adapted, loss, config, samples)
    if fid_files is not None:
        from engine import fid

        record.update(fid.fid_kid(adapted, fid_files, samples, dev, fid_features, progress))
        record["fid_folder"] = str(Path(fid_folder).resolve())  # type: ignore[arg-type]
    record = stamp({"session": info.id, **record}, info.step, "eval")
    write_scores(info.path, record)
    return record
