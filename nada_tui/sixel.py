"""Sixel encoding of a PIL image (DEC's format: bands of six pixel rows, one pass per colour).

Ours rather than textual-image's: its 0.12 encoder draws streaks of wrong colours in xterm (a 128 px
preview measured 14.6 mean error per channel against 1.2 with this one, tests/test_xterm_sixel.py
style). This one is plain: a palette of at most 256 colours (Pillow's fast octree, no dithering so
enlarged pixels stay flat), every colour defined before the first band, and each band written as one
pass per colour present in it, run-length coded, with transparent zeros (P2 = 1) so passes never
paint over each other. numpy does the bit packing; a 900 x 450 image takes about 0.2 s.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

MAX_COLOURS = 256
_RUN = re.compile(rb"(.)\1{3,}")


def _rle(row: bytes) -> bytes:
    return _RUN.sub(lambda m: b"!%d%s" % (len(m.group(0)), m.group(1)), row)


def encode(image: Any, colours: int = MAX_COLOURS) -> str:
    """The DCS string that draws `image` at the cursor, one image pixel per screen pixel; where an RGBA
    image is fully transparent nothing is drawn."""
    from PIL import Image

    rgb = image.convert("RGB")
    q = rgb.quantize(colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    idx = np.asarray(q, dtype=np.int64)
    h, w = idx.shape
    palette = np.array(q.getpalette()[: 3 * colours], dtype=np.int64).reshape(-1, 3)
    clear = len(palette)  # an index past the palette: a pixel left undrawn
    if image.mode == "RGBA":
        idx = np.where(np.asarray(image.getchannel("A")) == 0, clear, idx)
    out = [b'\x1bP0;1;0q"1;1;%d;%d' % (w, h)]
    for i in np.unique(idx[idx != clear]):
        r, g, b = (palette[i] * 100 + 127) // 255
        out.append(b"#%d;2;%d;%d;%d" % (i, r, g, b))
    cols = np.arange(w)
    bits = np.zeros((clear + 1, w), dtype=np.uint8)
    bands = []
    for y in range(0, h, 6):
        band = idx[y : y + 6]
        bits[:] = 0
        for r in range(band.shape[0]):
            bits[band[r], cols] += np.uint8(1 << r)  # one colour per pixel: no index repeats in a row
        passes = []
        for c in np.unique(band[band != clear]):
            row = bits[c]
            last = int(np.flatnonzero(row)[-1]) + 1  # trailing zeros draw nothing: leave them out
            passes.append(b"#%d" % c + _rle((row[:last] + 63).tobytes()))
        bands.append(b"$".join(passes))
    # No graphics newline after the last band: it would move below the image (and scroll at the bottom).
    out.append(b"-".join(bands))
    out.append(b"\x1b\\")
    return b"".join(out).decode("ascii")
