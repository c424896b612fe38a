"""Comparing sessions on the same preview seeds: what differs between them, each one's latest preview
grid, and the comparison as one labelled PNG.

    items = load_items(infos)                   # latest grid of each session, cut into seed tiles
    table = comparison(items)                   # seeds shown, one column per session, labels
    image = session_grid(info)                  # one session's newest grid, whole (PIL, or None)
    export_png(table, folder)                   # compare-<what>-<time>.png, labels drawn on it

A session's grid is its newest preview: `grid.png` (written when a run stops) or the newest
`samples/step_*.png`, whichever was written last, so a resumed or running session shows its latest
step. Reading is cheap (two small PNGs per session); call it off a UI thread all the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from engine import atomic
from engine.config import SETTINGS
from engine.sessions import layout
from engine.sessions.info import SessionInfo

MODEL_KEY = "model"  # the base model is compared as a setting too


@dataclass(frozen=True)
class Item:
    """One session's side of a comparison: its preview seeds as (frozen, adapted) tiles by seed."""

    info: SessionInfo
    step: int | None  # the step of the grid shown, when known
    frozen: dict[int, Image.Image] = field(default_factory=dict)
    adapted: dict[int, Image.Image] = field(default_factory=dict)

    @property
    def has_grid(self) -> bool:
        return bool(self.adapted)


@dataclass(frozen=True)
class Comparison:
    """What a comparison shows: the seeds (those every session has), the settings that differ, a label
    per session, and whether one "before" column serves them all (identical frozen tiles)."""

    items: tuple[Item, ...]
    seeds: tuple[int, ...]
    keys: tuple[str, ...]  # the settings that are not equal across the sessions
    labels: tuple[str, ...]  # one per item: "key=value, ..." (its name when nothing differs)
    shared_before: bool
    title: str = ""


# ----- what differs --------------------------------------------------------------------------------
def settings_of(info: SessionInfo) -> dict[str, Any]:
    """A session's comparable settings as text: every training setting and the base model."""
    out = {MODEL_KEY: info.model_id}
    cfg = info.data.get("config") if info.ok else None
    if isinstance(cfg, Mapping):
        try:
            config = info.config
        except Exception:  # unreadable settings compare as "?"; the session is listed all the same
            return {**out, **{name: "?" for name in SETTINGS}}
        out.update({name: s.format(getattr(config, name)) for name, s in SETTINGS.items()})
    return out


def differing_keys(infos: Sequence[SessionInfo]) -> tuple[str, ...]:
    """The settings whose values are not all equal, in the sweep's order when the sessions are runs of
    one sweep (its grid keys first), then the settings table's order."""
    rows = [settings_of(i) for i in infos]
    if len(rows) < 2:
        return ()
    keys = [k for k in (MODEL_KEY, *SETTINGS) if len({r.get(k) for r in rows}) > 1]
    first = [k for i in infos if i.sweep for k in (i.sweep.get("values") or {})]
    order = list(dict.fromkeys(k for k in first if k in keys)) + [k for k in keys if k not in first]
    return tuple(order)


def short_key(key: str) -> str:
    """A setting's name as the user types it in a sweep file (`global-weight`, `iters`)."""
    s = SETTINGS.get(key)
    return s.sweep_key if s is not None else key


def labels_for(infos: Sequence[SessionInfo], keys: Sequence[str]) -> tuple[str, ...]:
    out = []
    for info in infos:
        values = settings_of(info)
        # An empty value (no layers pinned, no target images) is said, not left as a bare "pin-on=".
        text = ", ".join(f"{short_key(k)}={values.get(k, '?') or 'none'}" for k in keys)
        out.append(text or info.name)
    return tuple(out)


# ----- the grids ----------------------------------------------------------------------------------
def latest_grid_path(path: Path) -> Path | None:
    """The newest preview grid of a session directory, or None."""
    candidates = [path / layout.GRID_FILE, *sorted((path / layout.SAMPLES_DIR).glob("step_*.png"))[-1:]]
    best: tuple[int, Path] | None = None
    for p in candidates:
        try:
            mtime = p.stat().st_mtime_ns
        except OSError:
            continue
        if best is None or mtime > best[0]:
            best = (mtime, p)
    return best[1] if best else None


def grid_stamp(path: Path) -> tuple[str, int] | None:
    """(file name, mtime) of the newest grid: changes whenever a new preview is written."""
    p = latest_grid_path(path)
    if p is None:
        return None
    try:
        return p.name, p.stat().st_mtime_ns
    except OSError:
        return None


def session_grid(info: SessionInfo) -> Image.Image | None:
    """The session's latest preview (frozen row over adapted row) as an RGB image, or None: the newest
    grid first, then `grid.png`, then the samples newest first (a file that cannot be read is skipped)."""
    newest = latest_grid_path(info.path)
    candidates = [*([newest] if newest else []), info.path / layout.GRID_FILE,
                  *sorted((info.path / layout.SAMPLES_DIR).glob("step_*.png"))[::-1]]
    for path in candidates:
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, ValueError):
            continue
    return None


def _step_of(p: Path) -> int | None:
    stem = p.stem
    return int(stem.split("_", 1)[1]) if stem.startswith("step_") and stem[5:].isdigit() else None


def load_item(info: SessionInfo) -> Item:
    """The session's newest grid cut into tiles (frozen row over adapted row, one column per seed)."""
    seeds = _seeds(info)
    p = latest_grid_path(info.path) if info.ok else None
    if p is None or not seeds:
        return Item(info, None)
    try:
        with Image.open(p) as img:
            grid = img.convert("RGB")
    except (OSError, ValueError):
        return Item(info, None)
    w, h = grid.size
    tile_w, tile_h = w // len(seeds), h // 2
    if tile_w < 1 or tile_h < 1:
        return Item(info, None)
    frozen, adapted = {}, {}
    for i, seed in enumerate(seeds):
        box = (i * tile_w, 0, (i + 1) * tile_w, tile_h)
        frozen[seed] = grid.crop(box)
        adapted[seed] = grid.crop((box[0], tile_h, box[2], 2 * tile_h))
    step = _step_of(p)
    if step is None:  # grid.png: written at the step the session stopped at
        step = info.step
    return Item(info, step, frozen, adapted)


def _seeds(info: SessionInfo) -> tuple[int, ...]:
    try:
        return tuple(info.config.preview_seeds) if info.ok else ()
    except Exception:
        return ()


def load_items(infos: Sequence[SessionInfo]) -> list[Item]:
    return [load_item(i) for i in infos]


def _same(images: Sequence[Image.Image]) -> bool:
    first = images[0]
    side = (min(first.width, 64), min(first.height, 64))
    small = [im.resize(side, Image.Resampling.BOX).tobytes() for im in images]
    # Bit-identical up to resampling noise: the frozen generator of one base model renders the same.
    ref = small[0]
    return all(len(b) == len(ref) and max(abs(x - y) for x, y in zip(b, ref, strict=True)) <= 2 for b in small[1:])


def comparison(items: Sequence[Item], title: str = "") -> Comparison:
    """Which seeds, settings and labels a comparison of `items` shows."""
    infos = [it.info for it in items]
    keys = differing_keys(infos)
    with_grid = [it for it in items if it.has_grid]
    if with_grid:
        common = set(with_grid[0].adapted)
        for it in with_grid[1:]:
            common &= set(it.adapted)
        seeds = tuple(s for s in with_grid[0].adapted if s in common)
    else:
        seeds = ()
    shared = bool(seeds) and all(_same([it.frozen[s] for it in with_grid]) for s in seeds)
    return Comparison(tuple(items), seeds, keys, labels_for(infos, keys), shared, title)


# ----- one PNG ------------------------------------------------------------------------------------
EXPORT_TILE = 256  # largest tile side in the exported PNG (samples are at most 256 px)
MIN_EXPORT_TILE = 128


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ValueError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels (a word longer than a line is cut by characters)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        trial = f"{line} {word}" if line else word
        if draw.textlength(trial, font=font) <= width:
            line = trial
            continue
        if line:
            lines.append(line)
        line = word
        while len(line) > 1 and draw.textlength(line, font=font) > width:
            cut = len(line) - 1
            while cut > 1 and draw.textlength(line[:cut], font=font) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    lines.append(line)
    return lines


def render_png(comp: Comparison, tile: int | None = None) -> Image.Image:
    """The comparison as one image: a title, a label over each session's column, one row per seed;
    a "before" column first when every session starts from the same images (else each session shows
    before | after)."""
    items = [it for it in comp.items if it.has_grid]
    if not items or not comp.seeds:
        raise ValueError("none of these sessions has saved a preview yet")
    # Small demo tiles are scaled up so the labels fit over them; real samples keep their size.
    side = tile or min(EXPORT_TILE, max(MIN_EXPORT_TILE, *(it.adapted[comp.seeds[0]].width for it in items)))
    pad, gap = 12, 6
    font, small = _font(max(12, side // 10)), _font(max(11, side // 12))
    per_item = 1 if comp.shared_before else 2
    col_w = per_item * side + (per_item - 1) * 2
    seed_w = 70
    columns = len(items) + (1 if comp.shared_before else 0)
    width = pad * 2 + seed_w + columns * col_w + (columns - 1) * gap
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_of = {id(it): label for it, label in zip(comp.items, comp.labels, strict=True)}
    heads: list[list[tuple[str, bool]]] = []  # per column: (line, dim)
    if comp.shared_before:
        heads.append([("before (frozen)", False)])
    for it in items:
        head = [(line, False) for line in _wrap(probe, label_of[id(it)], font, col_w)]
        if it.step is not None:
            head.append((f"step {it.step}", True))
        heads.append(head)
    line_h = int(getattr(font, "size", 11) * 1.3)
    head_h = max(len(h) for h in heads) * line_h + gap
    title_h = line_h + gap
    height = pad * 2 + title_h + head_h + len(comp.seeds) * side + (len(comp.seeds) - 1) * gap
    out = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(out)
    draw.text((pad, pad), comp.title or "comparison", fill=(235, 235, 235), font=font)
    top = pad + title_h
    x = pad + seed_w
    xs = []
    for head in heads:
        for n, (line, dim) in enumerate(head):
            draw.text((x, top + n * line_h), line, fill=(150, 150, 160) if dim else (235, 235, 235),
                      font=small if dim else font)
        xs.append(x)
        x += col_w + gap
    y = top + head_h
    for seed in comp.seeds:
        draw.text((pad, y + side // 2 - line_h // 2), f"seed {seed}", fill=(200, 200, 200), font=font)
        col = 0
        if comp.shared_before:
            out.paste(items[0].frozen[seed].resize((side, side), Image.Resampling.LANCZOS), (xs[0], y))
            col = 1
        for it in items:
            cx = xs[col]
            if not comp.shared_before:
                out.paste(it.frozen[seed].resize((side, side), Image.Resampling.LANCZOS), (cx, y))
                cx += side + 2
            out.paste(it.adapted[seed].resize((side, side), Image.Resampling.LANCZOS), (cx, y))
            col += 1
        y += side + gap
    return out


def export_png(comp: Comparison, folder: str | os.PathLike[str], slug: str = "") -> Path:
    """Write the comparison into `folder` as compare-<slug>-<time>.png (atomic); returns its path."""
    from engine.sessions import slugify

    image = render_png(comp)
    out_dir = Path(folder).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out_dir / f"compare-{slugify(slug or comp.title or 'sessions')}-{stamp}.png"
    atomic.write_with(out, lambda buf: image.save(buf, format="PNG"))
    return out
