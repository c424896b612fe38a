"""`invert_photos`: the whole photo pipeline for a session, what the CLI and the app call.

For each photo: read it (engine.photos.loading), frame it (align the face or centre-crop), invert it in
batches (engine.photos.inversion), optionally pivot-tune (engine.photos.pti), render it through the
frozen and the adapted generator, and write its files (engine.photos.outputs) in the session's `photos/`
folder and in `out_dir` when given. A photo that cannot be used is reported (PhotoFailed) and skipped;
the others go on. Events (engine.events) go to `on_event`; `stop()` (or an Event's is_set) ends the run
between steps, keeping the photos already finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from engine import device as devices
from engine import user_files
from engine.errors import ExportError, PhotoError
from engine.events import InversionProgress, PhotoDone, PhotoEvent, PhotoFailed
from engine.photos.framing import frame_photo, wants_alignment
from engine.photos.inversion import invert_batch, psnr_db
from engine.photos.loading import load_photo, not_a_file
from engine.photos.outputs import session_photos_dir, write_photo_files
from engine.photos.perceptual import perceptual_distance
from engine.photos.pti import apply_adaptation, pivotal_tune
from engine.photos.rendering import SessionModels, load_session_models
from engine.sampling import to_pil
from engine.stylegan2 import Generator

DEFAULT_STEPS = 500
MAX_STEPS = 100_000
CPU_BATCH = 4  # the most photos a CPU run optimises together by default
PREVIEW_EVERY = 10  # an InversionProgress carries the current reconstruction every this many steps


@dataclass(frozen=True)
class PhotoResult:
    """One inverted photo: its files (in out_dir when given, else in the session's photos/)."""

    photo: Path  # the file as given
    stem: str
    aligned: Path
    inverted: Path
    adapted: Path
    latent: Path
    psnr_db: float  # the inverted render against the aligned photo
    loss: float  # the reconstruction loss at the last step


def default_batch(resolution: int, device: torch.device) -> int:
    """Photos optimised together, by the memory free for them (about 1.5 GiB a photo at 1024 px, less
    with the square of the size): up to 16 on a GPU; up to CPU_BATCH on a CPU, where a batch of 4 costs
    less per photo than one at a time (docs/performance.md) but the first result comes later."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        most = 16
    else:
        free, most = devices.available_bytes(device) or 0, CPU_BATCH
    per_photo = 1.5 * 2**30 * (resolution / 1024) ** 2 + 256 * 2**20
    return int(max(1, min(most, free * 0.6 // per_photo)))


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique within one call (`face`, `face-2`, ...)."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = p.stem or "photo"
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        out.append(stem if n == 1 else f"{stem}-{n}")
    return out


def _stop_fn(stop: Any) -> Callable[[], bool] | None:
    if stop is None:
        return None
    if hasattr(stop, "is_set"):
        return stop.is_set
    return stop


def _check_counts(steps: int, pti_steps: int) -> None:
    if not 1 <= int(steps) <= MAX_STEPS:
        raise ExportError(f"--steps must be from 1 to {MAX_STEPS}; got {steps} (about 500 is typical)")
    if not 0 <= int(pti_steps) <= MAX_STEPS:
        raise ExportError(f"--pti must be from 0 (off) to {MAX_STEPS}; got {pti_steps} (100 to 350 is typical)")


@torch.no_grad()
def _render(g: Generator, w: torch.Tensor) -> torch.Tensor:
    return g.synthesis(w, noise="const")


def invert_photos(
    session: str | Any,
    photos: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    steps: int = DEFAULT_STEPS,
    align: bool | None = None,
    pti_steps: int = 0,
    on_event: Callable[[PhotoEvent], None] | None = None,
    stop: Any = None,
    device: str | torch.device = "auto",
    batch: int | None = None,
    root: str | os.PathLike[str] | None = None,
) -> list[PhotoResult]:
    """Invert `photos` through `session` (an id, a SessionInfo or a loaded SessionModels); see the module
    docstring. `align`: None = the model's default (faces aligned). Raises only for the session (missing,
    damaged, its models unloadable) and bad counts; a bad photo is a PhotoFailed event."""
    _check_counts(steps, pti_steps)
    emit = on_event or (lambda _e: None)
    should_stop = _stop_fn(stop)
    models = load_session_models(session, device, root)
    dev = models.device
    align = wants_alignment(models.info.model_id) if align is None else bool(align)
    distance = perceptual_distance(models.is_demo, dev)
    paths = [Path(os.fspath(p)) for p in photos]
    batch_size = [batch or default_batch(models.resolution, dev)]  # halved when the device runs out of memory

    def stopped() -> bool:
        return should_stop is not None and should_stop()

    def invert_ready(ready: list[tuple[int, Path, str, Any]]) -> list[PhotoResult]:
        done: list[PhotoResult] = []
        first = 0
        while first < len(ready) and not stopped():
            chunk = ready[first : first + batch_size[0]]
            try:
                done += _invert_chunk(models, chunk, len(paths), distance, steps, pti_steps, align, out_dir, emit,
                                      should_stop)
            except torch.OutOfMemoryError:
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                if batch_size[0] > 1:  # the batch was too large for the device: again with half as many photos
                    batch_size[0] //= 2
                    continue
                for _index, path, _stem, _img in chunk:
                    emit(PhotoFailed(path, f"{path}: out of memory on {dev} even alone: free memory, or use "
                                           "--device cpu"))
            first += len(chunk)
        return done

    # What is no file at all (a FIFO, a folder) is said at once; photos are read and framed a batch at a
    # time, so the first results come before the last is aligned.
    refused = {path: problem for path in paths if (problem := not_a_file(path)) is not None}
    for path, problem in refused.items():
        emit(PhotoFailed(path, problem))
    results: list[PhotoResult] = []
    ready: list[tuple[int, Path, str, Any]] = []
    for i, (path, stem) in enumerate(zip(paths, unique_stems(paths), strict=True)):
        if stopped():
            return results
        if path in refused:
            continue
        try:
            framed = frame_photo(load_photo(path), models.resolution, align, str(dev), source=str(path))
            ready.append((i, path, stem, framed))
        except PhotoError as exc:  # alignment's messages do not know the file: name it
            message = str(exc)
            emit(PhotoFailed(path, message if str(path) in message else f"{path}: {message}"))
        if len(ready) >= batch_size[0]:
            results += invert_ready(ready)
            ready = []
    return results + invert_ready(ready)


def _invert_chunk(models: SessionModels, chunk: list[tuple[int, Path, str, Any]], count: int, distance: Any,
                  steps: int, pti_steps: int, align: bool, out_dir: Any, emit: Callable[[PhotoEvent], None],
                  stop: Callable[[], bool] | None) -> list[PhotoResult]:
    from engine.target_images import to_tensor

    targets = torch.cat([to_tensor(item[3]) for item in chunk]).to(models.device)

    def on_step(step: int, losses: list[float], images: torch.Tensor | None) -> None:
        pictures = to_pil(images) if images is not None else [None] * len(chunk)
        for (index, path, _stem, _img), loss, picture in zip(chunk, losses, pictures, strict=True):
            emit(InversionProgress(path, index, count, step, steps, loss, picture))

    found = invert_batch(models.start, targets, distance, steps, on_step, PREVIEW_EVERY, stop)
    if found.stopped:
        return []
    out: list[PhotoResult] = []
    for j, (_index, path, stem, aligned) in enumerate(chunk):
        w = found.w_plus[j : j + 1]
        inverted, adapted_g = found.renders[j : j + 1], models.adapted
        if pti_steps:
            tuned = pivotal_tune(models.start, w, targets[j : j + 1], distance, pti_steps, stop)
            if stop is not None and stop():  # half-tuned: keep nothing of this photo
                break
            inverted, adapted_g = _render(tuned, w), apply_adaptation(tuned, models.start, models.adapted)
        psnr = psnr_db(inverted, targets[j : j + 1])[0]
        images = {"aligned": aligned, "inverted": to_pil(inverted)[0], "adapted": to_pil(_render(adapted_g, w))[0]}
        meta = {
            "session": models.info.id,
            "model": models.info.model_id,
            "steps": steps,
            "loss": found.losses[j],
            "psnr_db": psnr,
            "align": align,
            "pti": pti_steps,
            "perceptual": distance.name,
            "photo": str(path),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            files = write_photo_files(session_photos_dir(models.info.path), stem, images, w[0].cpu().numpy(), meta)
            if out_dir is not None:
                files = write_photo_files(Path(out_dir), stem, images, w[0].cpu().numpy(), meta)
        except OSError as exc:
            folder = Path(out_dir) if out_dir is not None else session_photos_dir(models.info.path)
            emit(PhotoFailed(path, f"{path}: its results cannot be written: {user_files.folder_problem(folder, exc)}"))
            continue
        result = PhotoResult(path, stem, files["aligned"], files["inverted"], files["adapted"], files["latent"],
                             psnr, found.losses[j])
        out.append(result)
        emit(PhotoDone(path, result))
    return out
