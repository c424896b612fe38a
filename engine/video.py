"""Videos of a session: a latent walk (frozen | adapted side by side, the step and prompts drawn on), a
strength sweep from the starting generator (0) to the adapted one (1), and the training time-lapse of its
saved previews. MP4 (H.264 through the ffmpeg that imageio-ffmpeg ships), animated WebP or GIF.

Each file is encoded in a private temp folder, then put in place by engine.atomic (temp file beside the
target, rename): a read-only folder or a full disk leaves nothing half written.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from engine import atomic, sessions
from engine.errors import ExportError, write_failed
from engine.sampling import seed_latents, to_pil
from engine.stylegan2 import Generator
from engine.video_settings import VIDEO_KINDS, VideoSettings

# Generated images smaller than this are enlarged (a 64 px demo tile would make an unreadable video).
MIN_TILE = 256
# Time-lapse frames narrower than this are enlarged by a whole factor, each pixel a square block as the
# previews draw them; the stored previews are used at full size, never shrunk.
TIMELAPSE_MIN_WIDTH = 1024
WALK_MAX_SEEDS = 8
SWEEP_SEEDS = 4
RENDER_BATCH = 8

Progress = Callable[[str, int, int], None]  # (video kind, frames done, frames in all)


# ----- frames ------------------------------------------------------------------------------------------
def sample_step(path: Path) -> int | None:
    """The step of a saved preview grid from its name (`samples/step_000150.png` -> 150)."""
    stem = Path(path).stem
    return int(stem[5:]) if stem.startswith("step_") and stem[5:].isdigit() else None


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def label_frame(image: Image.Image, text: str) -> Image.Image:
    """`image` under a dark band that says `text` (shortened with "..." to fit), as an RGB image whose
    sides are even (H.264's 4:2:0 colour needs them even)."""
    w, h = image.size
    band = max(12, min(48, w // 16))
    band += band % 2
    font = _font(int(band * 0.75))
    out = Image.new("RGB", (w + w % 2, h + band + h % 2), (16, 16, 16))
    out.paste(image.convert("RGB"), (0, band))
    draw = ImageDraw.Draw(out)
    room = w - band // 2
    shown = text
    while len(shown) > 4 and draw.textlength(shown, font=font) > room:
        shown = shown[:-4].rstrip() + "..."
    draw.text((max(2, band // 4), band // 2), shown, fill=(240, 240, 240), font=font, anchor="lm")
    return out


def _scaled(img: Image.Image, side: int) -> Image.Image:
    if img.height == side:
        return img
    exact = side % img.height == 0
    return img.resize((img.width * side // img.height, side),
                      Image.Resampling.NEAREST if exact else Image.Resampling.LANCZOS)


def _tile(g: Generator, settings: VideoSettings) -> int:
    return int(settings.size) if settings.size else max(g.size, MIN_TILE)


def _catmull_rom(points: Tensor, u: float) -> Tensor:
    """The closed uniform Catmull-Rom spline through `points` [K, ...] at u in [0, K): it passes through
    every point, and its velocity is continuous, so the walk loops without a jerk."""
    k = points.shape[0]
    i, t = int(math.floor(u)) % k, u - math.floor(u)
    p0, p1, p2, p3 = (points[(i + d) % k] for d in (-1, 0, 1, 2))
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)


@torch.no_grad()
def walk_frames(info: sessions.SessionInfo, start: Generator, adapted: Generator, settings: VideoSettings,
                seeds: Sequence[int], truncation: float) -> Iterator[Image.Image]:
    """A loop through the seeds' latents (a spline in W, each generator mapping the same z), frozen |
    adapted side by side, under a band with the step and the prompts."""
    z = seed_latents(seeds, start.z_dim).to(start.latent_avg.device)
    keys = [g.truncate(g.mapping(z), truncation) for g in (start, adapted)]
    side = _tile(start, settings)
    text = f"frozen | adapted, step {info.step}: {info.source} -> {info.target}"
    n = settings.frames
    for first in range(0, n, RENDER_BATCH):
        chunk = range(first, min(n, first + RENDER_BATCH))  # a few frames a call: far fewer conv launches
        halves = [to_pil(g.synthesis(g.w_plus(torch.stack([_catmull_rom(w, i * len(seeds) / n) for i in chunk])),
                                     "const")) for g, w in zip((start, adapted), keys, strict=True)]
        for frozen, changed in zip(*halves, strict=True):
            row = Image.new("RGB", (2 * frozen.width, frozen.height))
            row.paste(frozen, (0, 0))
            row.paste(changed, (frozen.width, 0))
            yield label_frame(_scaled(row, side), text)


@torch.no_grad()
def strength_frames(start: Generator, adapted: Generator, settings: VideoSettings, seeds: Sequence[int],
                    truncation: float) -> Iterator[Image.Image]:
    """The seeds in a row, rendered by lerp(start, adapted, s) for s from 0 to 1 (weights blended as
    engine.export.blend does, in one working copy)."""
    work = copy.deepcopy(start)
    a = [p.detach().clone() for p in start.parameters()]
    b = [p.detach() for p in adapted.parameters()]
    z = seed_latents(seeds, start.z_dim).to(start.latent_avg.device)
    side = _tile(start, settings)
    n = settings.frames
    for i in range(n):
        s = i / (n - 1)
        for p, pa, pb in zip(work.parameters(), a, b, strict=True):
            p.copy_(torch.lerp(pa, pb, s))
        images = to_pil(work.render(z, truncation=truncation, noise="const"))
        row = Image.new("RGB", (len(images) * images[0].width, images[0].height))
        for j, img in enumerate(images):
            row.paste(img, (j * img.width, 0))
        yield label_frame(_scaled(row, side), f"strength {s:.2f}  (0 = the starting generator, 1 = adapted)")


def timelapse_images(path: Path, settings: VideoSettings) -> list[Image.Image]:
    """The saved preview grids (frozen row over adapted row) in step order, each labelled with its step,
    at full stored size: enlarged by a whole factor to TIMELAPSE_MIN_WIDTH, or to --size per image."""
    files = sessions.samples(path)
    if not files:
        raise ExportError(f"{path.name} has no saved previews yet (samples/step_*.png): nothing to animate")
    frames = []
    for f in files:
        with Image.open(f) as img:
            img.load()
            step = sample_step(f)
            if settings.size:
                big = _scaled(img, 2 * int(settings.size))  # two rows: frozen over adapted
            else:
                k = max(1, -(-TIMELAPSE_MIN_WIDTH // img.width))  # ceil: at least the minimum width
                big = img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST) if k > 1 else img
            frames.append(label_frame(big, f"step {step}" if step is not None else f.stem))
    size = frames[-1].size  # a resumed run may have another tile size: one frame size for the file
    return [fr if fr.size == size else fr.resize(size, Image.Resampling.LANCZOS) for fr in frames]


def _held(images: list[Image.Image], settings: VideoSettings) -> Iterator[Image.Image]:
    """Each image for an equal share of the video's frames (at least one frame each)."""
    per = max(1, round(settings.frames / len(images)))
    for img in images:
        for _ in range(per):
            yield img


# ----- encoding ----------------------------------------------------------------------------------------
def _encode_mp4(frames: Iterator[Image.Image], target: Path, fps: int, tick: Callable[[], None]) -> None:
    import imageio_ffmpeg

    writer = None
    try:
        for frame in frames:
            if writer is None:
                writer = imageio_ffmpeg.write_frames(
                    str(target), frame.size, fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                    quality=None, macro_block_size=2, ffmpeg_log_level="error",
                    output_params=["-crf", "18", "-preset", "medium", "-movflags", "+faststart"],
                )
                writer.send(None)
            writer.send(frame.convert("RGB").tobytes())
            tick()
    finally:
        if writer is not None:
            writer.close()


def _encode_animation(frames: Iterator[Image.Image], target: Path, fmt: str, duration_ms: float,
                      lossless: bool, tick: Callable[[], None]) -> None:
    images = []
    for frame in frames:
        images.append(frame)
        tick()
    extra: dict[str, Any] = ({"lossless": True} if lossless else {"quality": 90}) if fmt == "webp" else {}
    images[0].save(target, format=fmt.upper(), save_all=True, append_images=images[1:],
                   duration=round(duration_ms), loop=0, **extra)


def write_video(frames: Iterator[Image.Image], total: int, out_path: str | os.PathLike[str], settings: VideoSettings,
                kind: str = "video", progress: Progress | None = None, lossless: bool = False) -> Path:
    """Encode `frames` (`total` of them) as settings.format into `out_path`, atomically."""
    out = Path(out_path)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(kind, done, total)

    with tempfile.TemporaryDirectory(prefix="nada-video-") as tmp:
        encoded = Path(tmp) / f"video.{settings.format}"
        if settings.format == "mp4":
            _encode_mp4(frames, encoded, int(settings.fps), tick)
        else:
            per = settings.seconds * 1000 / total if kind == "timelapse" else 1000 / settings.fps
            _encode_animation(frames, encoded, settings.format, per, lossless, tick)
        data = encoded.read_bytes()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(out, data)
    except OSError as exc:
        raise write_failed(out, exc) from None
    return out


def video_name(session_id: str, kind: str, fmt: str) -> str:
    return f"{session_id}-{kind}.{fmt}"


def export_timelapse(path: Path, out_path: str | os.PathLike[str], settings: VideoSettings,
                     progress: Progress | None = None) -> Path:
    """The time-lapse of a session folder's saved previews. MP4 holds each preview for an equal share of
    the seconds; WebP and GIF store one frame per preview (WebP losslessly)."""
    images = timelapse_images(path, settings)
    if settings.format == "mp4":
        per = max(1, round(settings.frames / len(images)))
        return write_video(_held(images, settings), per * len(images), out_path, settings, "timelapse", progress)
    return write_video(iter(images), len(images), out_path, settings, "timelapse", progress, lossless=True)


def export_videos(
    info: sessions.SessionInfo,
    out_dir: str | os.PathLike[str],
    kinds: Sequence[str] = VIDEO_KINDS,
    settings: VideoSettings | None = None,
    generators: Callable[[], tuple[Generator, Generator]] | None = None,
    truncation: float | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """`<id>-walk`, `<id>-strength` and `<id>-timelapse` videos in `out_dir`; `generators()` gives (start,
    adapted), loaded only when a walk or a sweep is asked for."""
    settings = (settings or VideoSettings()).check()
    unknown = [k for k in kinds if k not in VIDEO_KINDS]
    if unknown:
        raise ExportError(f"unknown video {unknown[0]!r}; choose from {', '.join(VIDEO_KINDS)}")
    out = Path(out_dir)
    t = info.config.sample_truncation if truncation is None else truncation
    preview = [int(s) for s in info.config.preview_seeds]
    written: dict[str, Path] = {}
    pair = generators() if generators is not None and {"walk", "strength"} & set(kinds) else None
    for kind in kinds:
        target = out / video_name(info.id, kind, settings.format)
        if kind == "timelapse":
            written[kind] = export_timelapse(info.path, target, settings, progress)
            continue
        if pair is None:
            raise ExportError(f"the {kind} video needs the session's generators")
        start, adapted = pair
        if kind == "walk":
            seeds = preview[:WALK_MAX_SEEDS] if len(preview) >= 2 else [0, 1, 2, 3]
            frames = walk_frames(info, start, adapted, settings, seeds, t)
        else:
            frames = strength_frames(start, adapted, settings, (preview or [0, 1, 2, 3])[:SWEEP_SEEDS], t)
        written[kind] = write_video(frames, settings.frames, target, settings, kind, progress)
    return written
