"""Your own photos in the app, by keys: from the sessions screen `p` opens the photos screen of a trained
demo session; the file picker marks a photo the demo generator made and a file that is no image; F5 and
a few steps invert them: the good one converges and ends as photo | inverted | adapted side by side, the
bad one is listed with its message; `<` re-renders the adapted picture at strength 0.9; a folder marked in
the picker lists its photos (a FIFO among them fails with its message), and F8 stops a long inversion
between steps; the photos are kept in the session's photos/ folder and listed when the screen opens again.
As in test_tui.py the test presses keys and reads what a user sees."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from _pilot import RecordingApp, ready, screen_text, to_sessions, type_into, wait_for
from _sessions import demo_session
from PIL import Image
from textual.widgets import Label, OptionList, Static

from engine import export
from nada_tui.screens.photos import PhotosScreen
from nada_tui.widgets.file_picker import ImagePicker
from nada_tui.widgets.pixel_image import PixelImage, load

pytestmark = pytest.mark.usefixtures("small_demo", "one_thread")


def demo_photo(session_id: str, folder: Path) -> Path:
    """A picture the frozen demo generator made (so an exact latent exists), as a user's PNG."""
    [made] = export.generate(session_id, 1, folder / "made", seed=3, strength=0.0)
    photo = folder / "my photo.png"
    with Image.open(made) as image:  # twice the size, each pixel a 2x2 block: above the photo minimum
        image.resize((image.width * 2, image.height * 2), Image.Resampling.NEAREST).save(photo)
    return photo


def photo_lines(app) -> list[str]:
    """The photo list as the user reads it, one line per photo."""
    box = app.screen.query_one(OptionList)
    return [str(box.get_option_at_index(i).prompt) for i in range(box.option_count)]


def caption(app, key: str) -> str:
    return str(app.screen.query_one(f"#caption-{key}", Static).content)


def shown(app, key: str) -> np.ndarray | None:
    """The pixels of the picture a PixelImage shows now."""
    source = app.screen.query_one(f"#photo-{key}", PixelImage).source
    return None if source is None else np.asarray(load(*source))


async def open_photos(pilot) -> PhotosScreen:
    app = await ready(pilot)
    await to_sessions(pilot, 1)
    await pilot.press("p")
    await wait_for(app, lambda: isinstance(app.screen, PhotosScreen), "the photos screen")
    return app.screen


async def pick(pilot, *paths: Path) -> None:
    """o, then each path typed into the picker's path line (enter marks a file), then Use."""
    app = pilot.app
    await pilot.press("o")
    await wait_for(app, lambda: isinstance(app.screen, ImagePicker), "the picker")
    for path in paths:
        await type_into(pilot, "#picker-path", str(path), submit=True)
        await wait_for(app, lambda p=path: p.name in str(app.screen.query_one("#picker-marked", Label).content),
                       f"{path.name} marked")
    await pilot.click("#picker-use")
    await wait_for(app, lambda: isinstance(app.screen, PhotosScreen), "the picker to close")


async def invert(pilot, steps: int) -> None:
    """F5, the steps typed into the dialog, centre crop (the demo model has no faces), Invert."""
    app = pilot.app
    await pilot.press("f5")
    await wait_for(app, lambda: app.screen.query("#f-steps"), "the invert dialog")
    await type_into(pilot, "#f-steps", str(steps))
    await pilot.press("tab", "down", "down", "enter")  # the framing: the third choice
    await pilot.press("tab", "enter")  # Enter in a field submits the dialog
    await wait_for(app, lambda: isinstance(app.screen, PhotosScreen), "the dialog to close")


async def test_invert_a_photo_and_a_bad_file_by_keys_then_blend(tmp_path: Path) -> None:
    sid = demo_session()
    photo = demo_photo(sid, tmp_path)
    bad = tmp_path / "notes.png"
    bad.write_text("these are notes, not a picture")
    app = RecordingApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_photos(pilot)
        await pick(pilot, photo, bad)
        assert [line[2:] for line in photo_lines(app)] == ["my photo.png", "notes.png"]

        await invert(pilot, 30)
        await wait_for(app, lambda: any("step" in line and "loss" in line for line in photo_lines(app))
                       or "done" in photo_lines(app)[0], "the inversion's progress")
        await wait_for(app, lambda: "done" in photo_lines(app)[0] and "✗" in photo_lines(app)[1],
                       "both photos ended", timeout=120)
        assert "dB PSNR" in photo_lines(app)[0]
        assert "notes.png" in photo_lines(app)[1] and len(photo_lines(app)[1]) > len("✗ notes.png  ")
        assert any("1 failed" in line for line in screen_text(app)[:1])

        # the good photo: photo | inverted | adapted, three pictures side by side
        await pilot.press("home")
        await wait_for(app, lambda: all(shown(app, k) is not None for k in ("original", "inverted", "adapted")),
                       "the three pictures")
        assert caption(app, "adapted") == "adapted · strength 1.0"
        rows = [line for line in screen_text(app) if line.count("▄") > 6]
        assert rows and all(len([run for run in line.split() if "▄" in run]) == 3 for line in rows[:4])
        full = shown(app, "adapted")

        await pilot.press("less_than_sign")
        await wait_for(app, lambda: caption(app, "adapted") == "adapted · strength 0.9", "the strength caption")
        await wait_for(app, lambda: shown(app, "adapted") is not full
                       and not np.array_equal(shown(app, "adapted"), full), "the blend at 0.9")

        # the bad file: its message where the user looks
        await pilot.press("down")
        await wait_for(app, lambda: "notes.png" in str(app.screen.query_one("#photo-message", Static).content),
                       "the failure message")

        # kept with the session: listed when the screen opens again
        await pilot.press("escape")
        await pilot.press("p")
        await wait_for(app, lambda: isinstance(app.screen, PhotosScreen) and photo_lines(app)
                       and "my photo" in photo_lines(app)[0], "the saved photo")


async def test_f8_stops_a_long_inversion_between_steps(tmp_path: Path) -> None:
    sid = demo_session()
    photo = demo_photo(sid, tmp_path / "pics")
    os.mkfifo(tmp_path / "pics" / "pipe.png")  # no photo: opening it to draw it would block for good
    app = RecordingApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_photos(pilot)
        await pilot.press("o")  # a folder this time: marked in the picker's tree, its photos listed
        await wait_for(app, lambda: isinstance(app.screen, ImagePicker), "the picker")
        await type_into(pilot, "#picker-path", str(tmp_path), submit=True)
        tree = app.screen.query_one("#picker-tree")
        await wait_for(app, lambda: [str(n.label) for n in tree.root.children] == ["pics", "xdg"],
                       "the folder listing")
        await pilot.press("down", "space", "u")
        await wait_for(app, lambda: isinstance(app.screen, PhotosScreen) and photo_lines(app), "the folder's photos")
        assert [line[2:] for line in photo_lines(app)] == [photo.name, "pipe.png"]
        await invert(pilot, 100_000)
        await wait_for(app, lambda: "step" in photo_lines(app)[0], "the inversion's first steps")
        await pilot.press("f8")
        await wait_for(app, lambda: "stopped" in photo_lines(app)[0], "the stop", timeout=60)
        assert "inverting" not in screen_text(app)[0]
        assert "✗ pipe.png" in photo_lines(app)[1]
        await pilot.press("down")
        await wait_for(app, lambda: "pipe.png" in str(app.screen.query_one("#photo-message", Static).content),
                       "the FIFO's message")
        ids = {row[2] for row in app.binding_rows()}  # the help lists the screen's keys, remappable by id
        assert {"sessions.photos", "photos.pick", "photos.start", "photos.stop", "photos.weaker"} <= ids
