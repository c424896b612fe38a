"""How this terminal can draw preview pixels: the Kitty graphics protocol, Sixel, or half blocks.

Decided once, at start-up, before Textual takes the terminal: the queries (Sixel in the primary device
attributes, a Kitty graphics query, the cell size in pixels) read the terminal's answers from stdin,
which Textual's input thread owns once the app runs. The queries are textual-image's (it asks for
Sixel first: WezTerm and Konsole answer the Kitty query too but draw its placeholders badly).

The choice is process-wide, like the terminal: `configure()` at start-up, `current()` everywhere else.
Without a terminal (tests, pipes) and by default the previews are half blocks, which work everywhere.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

RENDERERS = ("auto", "kitty", "sixel", "halfblocks")
DEFAULT_CELL = (10, 20)  # a VT340's cell, textual-image's guess when the terminal will not say


@dataclass(frozen=True)
class Graphics:
    """The renderer in use, the terminal's cell size in pixels, and why (shown under the previews)."""

    renderer: str  # "kitty", "sixel" or "halfblocks"
    cell: tuple[int, int] = DEFAULT_CELL
    reason: str = ""

    @property
    def pixels_per_cell(self) -> tuple[int, int]:
        """Image pixels one text cell shows: half blocks draw two (one above the other)."""
        return (1, 2) if self.renderer == "halfblocks" else self.cell


_current = Graphics("halfblocks", reason="default")


def current() -> Graphics:
    return _current


def use(graphics: Graphics) -> Graphics:
    """Make `graphics` the process's renderer (start-up; tests)."""
    global _current
    _current = graphics
    return graphics


def _is_terminal() -> bool:
    return all(f is not None and f.isatty() for f in (sys.__stdin__, sys.__stdout__))


def _query_terminal() -> tuple[str, tuple[int, int]]:
    """What the terminal answers: "sixel", "kitty" or "halfblocks", and its cell size in pixels."""
    # textual-image logs a warning when the terminal does not report its cell size; we fall back to
    # the same default it does, and the app has not drawn anything yet to explain a stray line.
    logging.getLogger("textual_image").setLevel(logging.ERROR)
    import textual_image.renderable as detected  # importing it queries the terminal
    from textual_image._terminal import get_cell_size

    kind = {detected.SixelImage: "sixel", detected.TGPImage: "kitty"}.get(detected.Image, "halfblocks")
    size = get_cell_size()
    return kind, (max(1, size.width), max(1, size.height))


def detect(
    choice: str, env: Mapping[str, str] | None = None, query=_query_terminal, is_terminal=_is_terminal
) -> Graphics:
    """The renderer for `choice` ("auto" asks the terminal). A forced "kitty" or "sixel" is honoured
    (a terminal may draw what it does not advertise) except Kitty graphics inside tmux, which tmux
    does not pass through to the outer terminal."""
    env = os.environ if env is None else env
    if choice not in RENDERERS:
        raise ValueError(f"preview renderer must be one of {', '.join(RENDERERS)}; got {choice!r}")
    if choice == "halfblocks":
        return Graphics("halfblocks", reason="set in config or on the command line")
    if not is_terminal():
        return Graphics("halfblocks", reason="not a terminal")
    answered, cell = query()
    in_tmux = bool(env.get("TMUX"))
    if choice == "auto":
        if answered == "kitty" and in_tmux:
            return Graphics("halfblocks", cell, "tmux does not pass Kitty graphics through")
        where = " through tmux" if in_tmux else ""
        why = f"the terminal{where} reports it" if answered != "halfblocks" else "no Sixel or Kitty graphics reported"
        return Graphics(answered, cell, why)
    if choice == "kitty" and in_tmux:
        return Graphics("halfblocks", cell, "tmux does not pass Kitty graphics through")
    return Graphics(choice, cell, "forced" + ("" if answered == choice else f" (the terminal reports {answered})"))


def configure(choice: str) -> Graphics:
    """Detect once at start-up and make it current. Kitty graphics place images with text cells whose
    24-bit colour names the image, so a terminal that speaks it gets truecolor output even where
    COLORTERM was not forwarded (SSH)."""
    g = use(detect(choice))
    if g.renderer == "kitty":
        os.environ.setdefault("COLORTERM", "truecolor")
    return g
