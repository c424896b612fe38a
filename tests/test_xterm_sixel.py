"""End to end in a real terminal: the app in xterm with Sixel (`xterm -ti vt340`) under Xvfb shows a
saved session's previews, and a screenshot of the X screen holds the session's pixels.

The session is trained here (a few steps of the 32 px tiny generator), then `nada-tui --open ID` shows
it read-only. The pair captions say at what scale the previews are drawn ("4x"); the same app, run
headless at xterm's size and cell size, reads that scale from them, and the test looks in the
screenshot for the saved grid's first seed (frozen and adapted tiles) enlarged by it, pixel for
pixel. The compare view is checked the same way: reached by keys (sent with xdotool), its tiles are
Sixel images too. Skipped, with the reason, where xterm, Xvfb, ImageMagick's `import` or xdotool are
missing (.ci/run installs them).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _sessions import demo_session
from PIL import Image

from engine import sessions
from nada_tui import graphics
from nada_tui.app import NadaApp

pytestmark = [pytest.mark.usefixtures("small_demo", "one_thread"), pytest.mark.slow]

COLS, ROWS = 150, 40
FONT = ("-fa", "DejaVu Sans Mono", "-fs", "9")
# xterm as a VT340 answers the device-attributes query with Sixel; 256 colour registers (a VT340 has
# 16) so the previews are not posterized.
XTERM = (
    "xterm",
    "-ti",
    "vt340",
    "-u8",
    "-xrm",
    "XTerm*numColorRegisters: 256",
    "-xrm",
    "XTerm*decGraphicsID: vt340",
    "-geometry",
    f"{COLS}x{ROWS}+0+0",
    *FONT,
)
MAX_MEAN_ERROR = 6.0  # per channel, 0..255: Sixel's 256-colour palette costs a little


def missing_tools() -> str | None:
    absent = [t for t in ("xterm", "Xvfb", "import", "xdotool") if shutil.which(t) is None]
    return f"needs {', '.join(absent)} (Debian: xterm, xvfb, imagemagick, xdotool)" if absent else None


@pytest.fixture
def x_display(tmp_path):
    """A private Xvfb server; yields its DISPLAY."""
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def saved_session() -> str:
    return demo_session(iterations=4)


def in_xterm(display: str, tmp_path: Path, *command: str) -> subprocess.Popen:
    env = {**os.environ, "DISPLAY": display, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TEXTUAL_ANIMATIONS": "none"}
    env.pop("COLORTERM", None)
    return subprocess.Popen(
        [*XTERM, "-e", *command], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def cell_size(display: str, tmp_path: Path) -> tuple[int, int]:
    """xterm's cell in pixels, as the app sees it (the terminal's window size ioctl)."""
    out = tmp_path / "cell.txt"
    probe = (
        "import fcntl, struct, sys, termios; r, c, w, h = struct.unpack('HHHH', fcntl.ioctl(1, "
        f"termios.TIOCGWINSZ, bytes(8))); open({str(out)!r}, 'w').write(f'{{w // c}} {{h // r}}')"
    )
    in_xterm(display, tmp_path, sys.executable, "-c", probe).wait(30)
    w, h = out.read_text().split()
    return int(w), int(h)


def expected_scale(session_id: str, cell: tuple[int, int]) -> int:
    """The scale the app's captions name for these previews at xterm's size with Sixel."""
    before = graphics.current()
    graphics.use(graphics.Graphics("sixel", cell, "test"))
    try:
        return asyncio.run(_read_scale(session_id))
    finally:
        graphics.use(before)


async def _read_scale(session_id: str) -> int:
    app = NadaApp(device="cpu", open_session=session_id)
    async with app.run_test(size=(COLS, ROWS)):
        for _ in range(600):
            captions = [str(c.content) for c in app.screen.query(".pair-caption")]
            found = [re.search(r"seed 0\s+(\d+)x", c) for c in captions]
            if any(found):
                return int(next(f for f in found if f).group(1))
            await asyncio.sleep(0.05)
    raise AssertionError(f"no scale in the captions: {captions}")


def screenshot(display: str, path: Path) -> np.ndarray:
    subprocess.run(
        ["import", "-display", display, "-window", "root", str(path)],
        check=True,
        timeout=30,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def best_match(screen: np.ndarray, tile: np.ndarray) -> tuple[float, int, int]:
    """(mean absolute error per channel, y, x) of the place where `tile` fits `screen` best: the
    least squared difference, found for every position at once with FFTs."""
    h, w = tile.shape[:2]
    H, W = screen.shape[:2]
    ssd = np.zeros((H - h + 1, W - w + 1))
    for c in range(3):
        s, t = screen[..., c], tile[..., c]
        f = np.fft.rfft2(s) * np.conj(np.fft.rfft2(t, s.shape))
        corr = np.fft.irfft2(f, s.shape)[: H - h + 1, : W - w + 1]
        sq = np.pad(np.cumsum(np.cumsum(s * s, 0), 1), ((1, 0), (1, 0)))
        window = sq[h:, w:] - sq[:-h, w:] - sq[h:, :-w] + sq[:-h, :-w]
        ssd += window - 2 * corr + (t * t).sum()
    y, x = np.unravel_index(np.argmin(ssd), ssd.shape)
    err = float(np.abs(screen[y : y + h, x : x + w] - tile).mean())
    return err, int(y), int(x)


@pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or "")
def test_xterm_sixel_shows_the_sessions_pixels(x_display, tmp_path):
    sid = saved_session()
    info = sessions.load(sid)
    with Image.open(info.path / sessions.GRID_FILE) as im:
        grid = np.asarray(im.convert("RGB"), dtype=np.float64)
    side = grid.shape[0] // 2  # frozen row over adapted row, one tile per seed
    frozen, adapted = grid[:side, :side], grid[side:, :side]

    cell = cell_size(x_display, tmp_path)
    k = expected_scale(sid, cell)
    assert k >= 2, f"previews at {k}x: too small to judge"

    app = in_xterm(x_display, tmp_path, sys.executable, "-m", "nada_tui", "--open", sid)
    try:
        shot = tmp_path / "xterm.png"
        deadline = time.monotonic() + 90
        while True:
            time.sleep(2)
            screen = screenshot(x_display, shot)
            big_f = np.kron(frozen, np.ones((k, k, 1)))
            big_a = np.kron(adapted, np.ones((k, k, 1)))
            err_f, yf, xf = best_match(screen, big_f)
            err_a, ya, xa = best_match(screen, big_a)
            if (err_f < MAX_MEAN_ERROR and err_a < MAX_MEAN_ERROR) or time.monotonic() > deadline:
                break
        keep = os.environ.get("NADA_TUI_KEEP_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep)
            shutil.copy(info.path / sessions.GRID_FILE, keep + ".grid.png")
            Path(keep + ".txt").write_text(f"{k} {cell} {xf} {yf} {xa} {ya}")
        assert app.poll() is None, "the app exited"
        assert err_f < MAX_MEAN_ERROR, f"seed 0 before: best match off by {err_f:.1f} per channel at ({xf}, {yf})"
        assert err_a < MAX_MEAN_ERROR, f"seed 0 after: best match off by {err_a:.1f} per channel at ({xa}, {ya})"
        # before | after, side by side on the same rows
        assert ya == yf and xa > xf + frozen.shape[1] * k - 1
    finally:
        app.terminate()
        app.wait(10)


async def _compare_scale(cell: tuple[int, int]) -> int:
    """The whole factor the compare view draws its first tile at, at xterm's size with Sixel."""
    from nada_tui.screens.compare import CompareScreen
    from nada_tui.widgets.pixel_image import PixelImage

    before = graphics.current()
    graphics.use(graphics.Graphics("sixel", cell, "test"))
    try:
        app = NadaApp(device="cpu")
        async with app.run_test(size=(COLS, ROWS)) as pilot:
            await pilot.press("f3")
            await pilot.pause(2)
            await pilot.press("space", "down", "space", "c")
            for _ in range(600):
                tiles = list(app.screen.query(PixelImage)) if isinstance(app.screen, CompareScreen) else []
                if tiles and tiles[0].prepared is not None:
                    assert tiles[0].prepared.kind == "sixel"
                    return round(tiles[0].prepared.scale)
                await asyncio.sleep(0.05)
    finally:
        graphics.use(before)
    raise AssertionError("the compare view drew no tile")


def keys(display: str, *names: str) -> None:
    """Key presses into the xterm (the pointer over it: with no window manager, focus follows it)."""
    env = {**os.environ, "DISPLAY": display}
    subprocess.run(["xdotool", "mousemove", "200", "200"], env=env, check=True, timeout=10)
    for name in names:
        subprocess.run(["xdotool", "key", name], env=env, check=True, timeout=10)
        time.sleep(0.5)


@pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or "")
def test_xterm_sixel_draws_the_compare_view(x_display, tmp_path):
    # Issue 17: the compare view drew rich-pixels half blocks whatever the terminal could do (in xterm,
    # posterized to 16 colours); it now draws through the one pixel widget, so Sixel reaches it.
    first = saved_session()
    saved_session_to = demo_session(iterations=4, target="a green image")
    with Image.open(sessions.load(first).path / sessions.GRID_FILE) as im:
        grid = np.asarray(im.convert("RGB"), dtype=np.float64)
    side = grid.shape[0] // 2
    frozen = grid[:side, :side]  # seed 0 before: the shared "before" column
    assert saved_session_to != first

    cell = cell_size(x_display, tmp_path)
    k = asyncio.run(_compare_scale(cell))
    assert k >= 2, f"compare tiles at {k}x: too small to judge"

    app = in_xterm(x_display, tmp_path, sys.executable, "-m", "nada_tui")
    try:
        time.sleep(15)  # the app up, the model registry read
        keys(x_display, "F3")
        time.sleep(5)
        keys(x_display, "space", "Down", "space", "c")
        shot = tmp_path / "compare.png"
        big = np.kron(frozen, np.ones((k, k, 1)))
        deadline = time.monotonic() + 90
        while True:
            time.sleep(2)
            err, y, x = best_match(screenshot(x_display, shot), big)
            if err < MAX_MEAN_ERROR or time.monotonic() > deadline:
                break
        keep = os.environ.get("NADA_TUI_KEEP_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep + ".compare.png")
        assert app.poll() is None, "the app exited"
        assert err < MAX_MEAN_ERROR, f"seed 0 before in the compare view: off by {err:.1f} per channel at ({x}, {y})"
    finally:
        app.terminate()
        app.wait(10)
