"""Previews: choosing the renderer, scaling and encoding, the zoom and the sessions time-lapse by keys,
and the time-lapse export."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from _pilot import wait_until as _wait_until
from _sessions import demo_session
from PIL import Image

from engine import export, sessions, video
from engine.config import DEMO_GENERATOR_ID, demo_config
from nada_tui import graphics, sixel, user_config
from nada_tui.__main__ import build_parser, main
from nada_tui.app import NadaApp
from nada_tui.run_buffer import Preview, RunBuffer
from nada_tui.widgets.pixel_image import fit, halfblock_strips, prepare
from nada_tui.widgets.previews import PairView

# ----- the renderer ---------------------------------------------------------------------------------


def detect(choice: str, answered: str = "sixel", tmux: bool = False, tty: bool = True) -> graphics.Graphics:
    env = {"TMUX": "/tmp/tmux-0/default,1,0"} if tmux else {}
    return graphics.detect(choice, env, query=lambda: (answered, (9, 18)), is_terminal=lambda: tty)


def test_auto_takes_what_the_terminal_reports():
    assert detect("auto", "sixel").renderer == "sixel"
    assert detect("auto", "kitty").renderer == "kitty"
    assert detect("auto", "halfblocks").renderer == "halfblocks"
    assert detect("auto", "sixel").cell == (9, 18)


def test_tmux_passes_sixel_but_not_kitty_graphics():
    assert detect("auto", "sixel", tmux=True).renderer == "sixel"
    g = detect("auto", "kitty", tmux=True)
    assert g.renderer == "halfblocks" and "tmux" in g.reason
    assert detect("kitty", "kitty", tmux=True).renderer == "halfblocks"


def test_forced_choices_and_no_terminal():
    assert detect("sixel", "halfblocks").renderer == "sixel"  # the user knows their terminal
    assert detect("halfblocks", "sixel").renderer == "halfblocks"
    assert detect("auto", "sixel", tty=False).renderer == "halfblocks"
    with pytest.raises(ValueError, match="kitty"):
        detect("iterm")


def test_config_and_command_line(private_home):
    path = Path(private_home) / "c.toml"
    path.write_text('[preview]\nrenderer = "sixel"\n')
    assert user_config.load_settings(path).preview_renderer == "sixel"
    path.write_text('[preview]\nrenderer = "png"\n')
    s = user_config.load_settings(path)
    assert s.preview_renderer == "auto" and any("renderer" in p for p in s.problems)
    args = build_parser().parse_args(["--preview-renderer", "kitty", "--open", "2026"])
    assert args.preview_renderer == "kitty" and args.open == "2026"


# ----- scaling and encoding -------------------------------------------------------------------------


def test_fit_enlarges_by_whole_factors_and_shrinks_to_fit():
    assert fit((64, 64), (300, 200)) == (192, 192)
    assert fit((64, 64), (63, 200)) == (63, 63)
    assert fit((1024, 512), (512, 512)) == (512, 256)
    assert fit((64, 64), (0, 10)) == (0, 0)


def tile() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))


def test_prepare_for_each_renderer():
    half = prepare(tile(), None, 40, 20, graphics.Graphics("halfblocks"))
    assert half is not None and half.cells == (32, 16) and half.scale == 2  # 32 x 32 px in half blocks
    six = prepare(tile(), None, 40, 20, graphics.Graphics("sixel", (8, 16)))
    assert six is not None and six.kind == "sixel" and six.scale == 20  # 320 px across 40 cells of 8
    assert six.cells == (40, 20) and six.payload.startswith('\x1bP0;1;0q"1;1;320;320')
    kitty = prepare(tile(), (0, 0, 8, 8), 10, 10, graphics.Graphics("kitty", (10, 20)))
    assert kitty is not None and kitty.kind == "kitty" and kitty.scale == 12  # 8 px into 100 x 200 px


def test_halfblocks_are_finished_rows_of_the_image():
    # Prepared as ready rows of lower half blocks: the bottom pixel of each cell is its foreground, the
    # top one its background; equal neighbouring cells are one segment.
    image = Image.new("RGB", (6, 4), (10, 20, 30))
    image.paste((250, 0, 0), (0, 0, 3, 1))  # the top row's left half red
    image.paste((0, 0, 250), (3, 3, 6, 4))  # the bottom row's right half blue
    rows = halfblock_strips(image)
    assert len(rows) == 2 and all(r.cell_length == 6 for r in rows)

    def cells(row) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """(top, bottom) pixel of each cell."""
        out = []
        for seg in row:
            assert set(seg.text) == {"\u2584"}
            bottom, top = seg.style.color.triplet, seg.style.bgcolor.triplet
            out += [(tuple(top), tuple(bottom))] * len(seg.text)
        return out

    grey = (10, 20, 30)
    assert cells(rows[0]) == [((250, 0, 0), grey)] * 3 + [(grey, grey)] * 3
    assert cells(rows[1]) == [(grey, grey)] * 3 + [(grey, (0, 0, 250))] * 3
    assert len(list(rows[0])) == 2  # two runs, not six cells


@pytest.mark.parametrize("size", [(18, 18), (7, 5), (1, 1)])
def test_halfblocks_draw_the_cells_rich_pixels_draws(size):
    from rich.segment import Segment
    from rich_pixels import HalfcellRenderer

    image = Image.fromarray(np.random.default_rng(size[0]).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))

    def cells(segments) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
        return [(ch, tuple(seg.style.color.triplet), tuple(seg.style.bgcolor.triplet))
                for seg in segments for ch in seg.text]

    theirs = [cells(line) for line in Segment.split_lines(HalfcellRenderer().render(image, None))]
    assert [cells(row) for row in halfblock_strips(image)] == theirs


def decode_sixel(data: str, painted: np.ndarray | None = None) -> np.ndarray:
    """A small Sixel decoder for the test: the RGB image the terminal would draw (and, into `painted`
    when given, which of its pixels are drawn at all)."""
    body = data[data.index("q") + 1 : data.rindex("\x1b\\")]
    w, h = map(int, re.match(r'"1;1;(\d+);(\d+)', body).groups())
    out = np.zeros((h, w, 3))
    colours: dict[int, tuple[float, ...]] = {}
    x, band, colour = 0, 0, 0
    for m in re.finditer(r'#(\d+)(?:;2;(\d+);(\d+);(\d+))?|!(\d+)(.)|([?-~])|(\$)|(-)|"[\d;]+', body):
        if m.group(1) is not None:
            colour = int(m.group(1))
            if m.group(2) is not None:
                colours[colour] = tuple(int(m.group(i)) * 255 / 100 for i in (2, 3, 4))
            continue
        if m.group(8):
            x = 0
            continue
        if m.group(9):
            x, band = 0, band + 6
            continue
        count, char = (int(m.group(5)), m.group(6)) if m.group(5) else (1, m.group(7))
        if char is None:
            continue
        bits = ord(char) - 63
        for r in range(6):
            if bits >> r & 1 and band + r < h:
                out[band + r, x : x + count] = colours[colour]
                if painted is not None:
                    painted[band + r, x : x + count] = True
        x += count
    return out


def test_sixel_decodes_to_the_image():
    image = tile().resize((48, 40), Image.Resampling.NEAREST)
    drawn = decode_sixel(sixel.encode(image))
    assert np.abs(drawn - np.asarray(image, dtype=np.float64)).mean() < 3


def test_sixel_padding_leaves_the_cell_background_showing():
    # A 16 px tile in a 5 x 3 cell box of 10 x 20 px cells is drawn 48 x 48 px and padded to 50 x 60;
    # the padding must not be painted (a painted one showed as a grey strip under every tile in xterm).
    p = prepare(tile(), None, 5, 3, graphics.Graphics("sixel", (10, 20)), align="left")
    assert p is not None and p.cells == (5, 3)
    painted = np.zeros((60, 50), dtype=bool)
    drawn = decode_sixel(p.payload, painted)
    assert painted[:48, :48].all() and not painted[48:].any() and not painted[:, 48:].any()
    big = np.kron(np.asarray(tile(), dtype=np.float64), np.ones((3, 3, 1)))
    assert np.abs(drawn[:48, :48] - big).mean() < 3


# ----- the zoom, by keys ----------------------------------------------------------------------------


def captions(app: NadaApp) -> list[str]:
    return [str(c.content) for c in app.screen.query(".pair-caption") if c.parent.display]


wait_until = partial(_wait_until, timeout=20.0)


def previewed_buffer() -> RunBuffer:
    """A run's buffer holding a preview of four seeds (what a training run would have posted)."""
    buf = RunBuffer("run-zoom", demo_config(), DEMO_GENERATOR_ID, "20260101-120000-zoom", state="running")
    row_f, row_a = Image.new("RGB", (64, 16)), Image.new("RGB", (64, 16))
    for i in range(4):
        row_f.paste((200, 40 + 30 * i, 40), (16 * i, 0, 16 * i + 16, 16))
        row_a.paste((40, 40 + 30 * i, 200), (16 * i, 0, 16 * i + 16, 16))
    buf.set_preview(Preview(100, row_f, row_a, (0, 1, 2, 3)))
    return buf


async def test_zoom_steps_through_the_seeds():
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 36)) as pilot:
        app.view.buffer = previewed_buffer()
        # four seeds, each caption with the scale it is shown at
        await wait_until(
            lambda: len(captions(app)) == 4 and all(re.match(r"seed \d  \d+(\.\d+)?x$", c) for c in captions(app)),
            "four seeds",
        )
        await pilot.press("escape", "z")
        await wait_until(lambda: len(captions(app)) == 1, "the zoom")
        assert captions(app)[0].startswith("seed 0  (1/4)")
        await pilot.press("right")
        await wait_until(lambda: captions(app)[0].startswith("seed 1  (2/4)"), "the next seed")
        await pilot.press("left", "left")
        await wait_until(lambda: captions(app)[0].startswith("seed 3  (4/4)"), "the last seed (wrapping)")
        await pilot.press("escape")
        await wait_until(lambda: len(captions(app)) == 4, "all seeds again")


def scales(app: NadaApp) -> list[float]:
    """The scale each pair's caption names ("seed 0  2x" -> 2.0); [] until every pair has one."""
    found = [re.search(r"  (\d+(?:\.\d+)?)x$", c) for c in captions(app)]
    return [float(m.group(1)) for m in found] if found and all(found) else []


async def test_previews_grow_with_their_panel_and_the_form_folds_while_training():
    # Issue 18 defect 10: at 120x40 the setup form kept a third of the screen and each preview was
    # drawn at a fraction of the room it had. While a run trains the form folds away (F4 brings it back)
    # and the previews grow with the terminal.
    from _pilot import screen_text

    def form_shown() -> bool:
        return any("DEMO: tiny offline models" in line for line in screen_text(app))

    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(form_shown, "the setup form")
        app.view.buffer = previewed_buffer()  # a running run
        # 16 px seeds, at least one cell a pixel once the form has folded (0.62x with the form shown); the
        # previews are laid out again a moment after the form folds
        await wait_until(lambda: len(scales(app)) == 4 and not form_shown() and scales(app)[0] >= 1,
                         "the previews at 1x or more, the form folded", describe=lambda: captions(app))
        small = scales(app)[0]
        await pilot.press("f4")
        await wait_until(form_shown, "the form, unfolded")
        await pilot.press("f4")
        await wait_until(lambda: not form_shown(), "the form, folded again")
        await pilot.resize_terminal(200, 60)
        await wait_until(lambda: scales(app) and scales(app)[0] > small, "larger previews")
        # the images take the room of their pair: as wide as half of it, or as tall as its row
        pair = app.screen.query(PairView).first()
        image = pair.query_one(".after")
        drawn = image.prepared.cells
        assert drawn[0] >= image.content_size.width - 2 or drawn[1] >= image.content_size.height - 1


async def test_a_loading_run_shows_where_its_seeds_go_and_its_first_preview_fills_them():
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 36)):
        buf = previewed_buffer()
        preview, buf.preview = buf.preview, None  # still loading: no preview yet
        app.view.buffer = buf
        await wait_until(lambda: captions(app) == ["seed 0", "seed 1", "seed 2", "seed 3"], "the seeds' places")
        pairs = list(app.screen.query(PairView))
        buf.set_preview(preview)
        await wait_until(lambda: all(re.match(r"seed \d  \d+(\.\d+)?x$", c) for c in captions(app)), "the images")
        assert list(app.screen.query(PairView)) == pairs  # filled in place, not mounted again


# ----- the time-lapse -------------------------------------------------------------------------------


@pytest.fixture
def session_with_samples(small_demo, one_thread) -> str:
    return demo_session(iterations=6)


def test_export_timelapse_labels_each_step(session_with_samples, tmp_path, capsys):
    sid = session_with_samples
    samples = sessions.samples(sessions.load(sid).path)
    assert len(samples) >= 3
    assert main(["sessions", "export", sid, "--only", "timelapse", "--video-format", "webp",
                 "--out", str(tmp_path)]) == 0
    out = tmp_path / f"{sid}-timelapse.webp"
    assert f"wrote {out}" in capsys.readouterr().out
    with Image.open(out) as anim:
        assert anim.n_frames == len(samples)
        frames = []
        for i in range(anim.n_frames):
            anim.seek(i)
            frames.append(np.asarray(anim.convert("RGB"), dtype=np.float64))
    with Image.open(samples[-1]) as last:
        sample = np.asarray(last.convert("RGB"), dtype=np.float64)
    # enlarged by a whole factor to at least 1024 px across (the demo's grid is 128 px), pixels kept square
    k = frames[-1].shape[1] // sample.shape[1]
    assert frames[-1].shape[1] == k * sample.shape[1] >= video.TIMELAPSE_MIN_WIDTH
    sample = np.kron(sample, np.ones((k, k, 1)))
    band = frames[-1].shape[0] - sample.shape[0]
    assert band >= 12 and np.abs(frames[-1][band:] - sample).mean() < 1  # lossless, under the label band
    assert np.abs(frames[0][:band] - frames[-1][:band]).mean() > 0.5  # "step 2" is not "step 6"
    gif = export.export_videos(sid, tmp_path, ["timelapse"], video.VideoSettings(format="gif"))["timelapse"]
    with Image.open(gif) as anim:
        assert anim.format == "GIF" and anim.n_frames == len(samples)


async def test_sessions_screen_steps_through_saved_previews(session_with_samples):
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("f3")

        def caption() -> str:
            return str(app.screen.query_one(".timelapse-caption").content)

        await wait_until(lambda: "step 6" in caption(), "the newest preview")
        n = len(sessions.samples(sessions.load(session_with_samples).path))
        assert f"{n}/{n}" in caption()
        await pilot.press("left")
        await wait_until(lambda: "step 4" in caption() and f"{n - 1}/{n}" in caption(), "an earlier preview")
        await pilot.press("right", "right")  # stops at the newest
        await wait_until(lambda: "step 6" in caption(), "the newest again")


async def test_few_colours_are_said_under_the_previews_not_over_them(monkeypatch):
    # Issue 18 defect 11: a toast about the missing truecolor covered the previews at 80x24 for 12 s.
    # The advice now sits in the previews panel's bottom border, and no toast comes.
    from _pilot import RecordingApp, screen_text
    from textual import constants

    monkeypatch.setattr(constants, "COLOR_SYSTEM", "256")
    app = RecordingApp()
    async with app.run_test(size=(80, 24)):
        app.view.buffer = previewed_buffer()
        await wait_until(lambda: len(scales(app)) == 4, "the previews")
        assert any("halfblocks (256 colours: try COLORTERM=truecolor)" in line for line in screen_text(app))
        assert app.shown == []
