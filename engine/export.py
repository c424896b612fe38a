"""Getting things out of a session: N images, a rosinality `.pt`, PNG grids and metrics as CSV here;
videos (engine.video) and NVIDIA's layout (engine.export_nvidia) through the functions at the end.

`strength` in [0, 1] blends the generator the session started from (0, reproduced exactly) with its
latest adapted weights (1), tensor by tensor: w = lerp(start, adapted, strength).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch

from engine import atomic, sessions
from engine.errors import ExportError, write_failed
from engine.generator_files import save_rosinality
from engine.sampling import NVIDIA_MAX_SEED, SEED_CONVENTIONS, grid, render_seeds, to_pil
from engine.stylegan2 import Generator
from engine.video_settings import VideoSettings

MAX_IMAGES = 100_000


def _from_0_to_1(value: float, what: str) -> float:
    v = float(value)
    if not (0.0 <= v <= 1.0) or not math.isfinite(v):
        raise ExportError(f"{what}; got {value}")
    return v


def check_strength(strength: float) -> float:
    return _from_0_to_1(strength, "strength must be from 0 (the base generator) to 1 (fully adapted)")


def check_truncation(truncation: float) -> float:
    return _from_0_to_1(truncation, "truncation must be from 0 to 1 (1 = none, 0.7 is typical)")


def blend(start: Generator, adapted: Generator, strength: float) -> Generator:
    """A generator whose parameters are lerp(start, adapted, strength); 0 and 1 are exact copies."""
    strength = check_strength(strength)
    if strength == 0.0:
        return copy.deepcopy(start)
    if strength == 1.0:
        return copy.deepcopy(adapted)
    out = copy.deepcopy(start)
    a = dict(adapted.named_parameters())
    with torch.no_grad():
        for name, p in out.named_parameters():
            p.copy_(torch.lerp(p, a[name], strength))
    return out


def session_generator(
    ref: str | sessions.SessionInfo,
    strength: float = 1.0,
    device: str | torch.device = "cpu",
    root: str | os.PathLike[str] | None = None,
    progress: Callable[..., Any] | None = None,
) -> tuple[sessions.SessionInfo, Generator]:
    """The session's generator at `strength` (loads the base model; may download)."""
    info, _, g = _load(ref, strength, device, root, progress)
    return info, g


def _load(
    ref: str | sessions.SessionInfo,
    strength: float,
    device: str | torch.device = "cpu",
    root: str | os.PathLike[str] | None = None,
    progress: Callable[..., Any] | None = None,
) -> tuple[sessions.SessionInfo, Generator, Generator]:
    """(info, the generator the session started from, the one at `strength`), each loaded once."""
    from engine.runs import session_generators

    check_strength(strength)
    info = ref if isinstance(ref, sessions.SessionInfo) else sessions.load(ref, root)
    start, adapted = session_generators(info, device, progress)
    return info, start, blend(start, adapted, strength)


def generate(
    ref: str | sessions.SessionInfo,
    n: int,
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    truncation: float | None = None,
    strength: float = 1.0,
    device: str | torch.device = "cpu",
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    batch: int = 16,
    on_image: Callable[[int, Path], None] | None = None,
    seed_convention: str = "ours",
) -> list[Path]:
    """Render seeds seed..seed+n-1 into `out_dir/seed_NNNNNN.png`. Existing files are never replaced
    unless `overwrite`; truncation defaults to the session's sample truncation. `seed_convention`
    (engine.sampling.SEED_CONVENTIONS) says how a seed becomes z: "nvidia" draws it as NVIDIA's generate.py."""
    if not 1 <= int(n) <= MAX_IMAGES:
        raise ExportError(f"-n must be from 1 to {MAX_IMAGES}; got {n}")
    if seed_convention not in SEED_CONVENTIONS:
        raise ExportError(f"--seed-convention must be one of {', '.join(SEED_CONVENTIONS)}; got {seed_convention!r}")
    top = NVIDIA_MAX_SEED + 1 if seed_convention == "nvidia" else 2**63
    if seed < 0 or seed + n > top:
        raise ExportError(f"--seed must be from 0 to {top - int(n)} for {n} images; got {seed}")
    check_strength(strength)
    out = Path(out_dir)
    seeds = list(range(int(seed), int(seed) + int(n)))
    targets = [out / f"seed_{s:06d}.png" for s in seeds]
    if not overwrite:
        clash = [p for p in targets if p.exists()]
        if clash:
            raise ExportError(
                f"{clash[0]} already exists ({len(clash)} of the {n} files would be replaced): "
                "choose another --out directory or --seed, or pass --overwrite."
            )
    info, g = session_generator(ref, strength, device, root)
    t = check_truncation(info.config.sample_truncation if truncation is None else truncation)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i in range(0, len(seeds), batch):
        chunk = seeds[i : i + batch]
        images = to_pil(render_seeds(g, chunk, t, batch, seed_convention))
        for s, img, path in zip(chunk, images, targets[i : i + batch], strict=True):
            atomic.write_with(path, lambda buf, img=img: img.save(buf, format="PNG"))
            written.append(path)
            if on_image is not None:
                on_image(s, path)
    return written


def export_rosinality(
    ref: str | sessions.SessionInfo,
    out_path: str | os.PathLike[str],
    strength: float = 1.0,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the session's generator as a rosinality `.pt` (atomic). Loads with `strict=True` into a
    rosinality Generator built with the same size/style_dim/n_mlp/channel_multiplier."""
    _, g = session_generator(ref, strength, "cpu", root)
    return _save_pt(g, out_path)


def _save_pt(g: Generator, out_path: str | os.PathLike[str]) -> Path:
    try:
        return save_rosinality(g, out_path)
    except OSError as exc:  # a read-only folder, a full disk: say which file, and that none was left half written
        raise write_failed(out_path, exc) from None


def _write_file(out_path: str | os.PathLike[str], fill: Callable[[BinaryIO], Any]) -> Path:
    """Atomically write what `fill(buffer)` writes to `out_path`, making its folder first."""
    out = Path(out_path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_with(out, fill)
    except OSError as exc:
        raise write_failed(out, exc) from None
    return out


def export_grid(
    ref: str | sessions.SessionInfo,
    out_path: str | os.PathLike[str],
    seeds: Sequence[int] | None = None,
    truncation: float | None = None,
    strength: float = 1.0,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """A PNG: the seeds from the starting generator (top row) and the adapted one (bottom row)."""
    info, start, g = _load(ref, strength, root=root)
    return _write_grid(info, start, g, out_path, seeds, truncation)


def _write_grid(
    info: sessions.SessionInfo,
    start: Generator,
    g: Generator,
    out_path: str | os.PathLike[str],
    seeds: Sequence[int] | None,
    truncation: float | None,
) -> Path:
    seeds = list(seeds) if seeds else list(info.config.preview_seeds)
    t = check_truncation(info.config.sample_truncation if truncation is None else truncation)
    top = to_pil(render_seeds(start, seeds, t))
    bottom = to_pil(render_seeds(g, seeds, t))
    image = grid(top + bottom, columns=len(seeds))
    return _write_file(out_path, lambda buf: image.save(buf, format="PNG"))


def _cell(value: float | int | None) -> float | int | str:
    return "" if value is None else value


def metrics_csv(records: Sequence[sessions.MetricsLine]) -> str:
    loss_keys: list[str] = []
    for r in records:
        for k in r.losses:
            if k not in loss_keys:
                loss_keys.append(k)
    # "total" first, then the terms, then per-model terms: the columns people plot first come first.
    loss_keys.sort(key=lambda k: (k != "total", "/" in k, k))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["step", *loss_keys, "lr", "k", "trained", "global_weight", "it_per_s", "elapsed_s", "time"])
    for r in records:
        w.writerow(
            [
                r.step,
                *[_cell(r.losses.get(k)) for k in loss_keys],
                _cell(r.lr),
                _cell(r.k),
                " ".join(str(i) for i in r.trained),
                _cell(r.global_weight),
                _cell(r.it_per_s),
                _cell(r.elapsed_s),
                _cell(r.time),
            ]
        )
    return buf.getvalue()


def export_metrics(
    ref: str | sessions.SessionInfo, out_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Path:
    """metrics.jsonl as CSV: step, each loss term, lr, k, trained indices, ..."""
    path = ref.path if isinstance(ref, sessions.SessionInfo) else sessions.resolve(ref, root)
    text = metrics_csv(sessions.read_metrics(path))
    return _write_file(out_path, lambda buf: buf.write(text.encode("utf-8")))


def export_all(
    ref: str,
    out_dir: str | os.PathLike[str],
    strength: float = 1.0,
    root: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """`<id>.pt`, `<id>-grid.png` and `<id>-metrics.csv` in `out_dir` (the generators load once)."""
    info, start, g = _load(ref, strength, root=root)
    out = Path(out_dir)
    return {
        "pt": _save_pt(g, out / f"{info.id}.pt"),
        "grid": _write_grid(info, start, g, out / f"{info.id}-grid.png", None, None),
        "csv": export_metrics(info, out / f"{info.id}-metrics.csv"),
    }


# ----- videos and NVIDIA's layout -------------------------------------------------------------------
def export_videos(
    ref: str | sessions.SessionInfo,
    out_dir: str | os.PathLike[str],
    kinds: Sequence[str] | None = None,
    settings: VideoSettings | None = None,
    strength: float = 1.0,
    device: str | torch.device = "cpu",
    root: str | os.PathLike[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Path]:
    """The session's videos (engine.video: latent walk, strength sweep, time-lapse) in `out_dir`; the
    generators load only for a walk or a sweep."""
    from engine import video

    check_strength(strength)
    info = ref if isinstance(ref, sessions.SessionInfo) else sessions.load(ref, root)

    def generators() -> tuple[Generator, Generator]:
        _, start, g = _load(info, strength, device)
        return start, g

    return video.export_videos(info, out_dir, tuple(kinds or video.VIDEO_KINDS), settings, generators,
                               progress=progress)


def export_nvidia(
    ref: str | sessions.SessionInfo,
    out_path: str | os.PathLike[str],
    strength: float = 1.0,
    root: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """`<name>.nvidia.pt` for NVIDIA's stylegan2-ada-pytorch and, beside it, the script that makes their
    `.pkl` (engine.export_nvidia). -> (the .pt, the script)."""
    from engine import export_nvidia

    _, g = session_generator(ref, strength, "cpu", root)
    return export_nvidia.save(g, out_path)
