"""Target images in the app, by keys: a bad path is refused before anything starts; the picker marks a
folder, the form shows its thumbnails, the run trains towards them, the session keeps copies, the
sessions table says "-> 3 images", and once the originals are gone the session still retrains.
As in test_tui.py the test presses keys and reads what a user sees."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _pilot import RecordingApp, ready, status, type_into, wait_for
from PIL import Image
from textual.widgets import DataTable, Input, Label

from engine import sessions
from nada_tui.screens.sessions import SessionsScreen
from nada_tui.widgets.file_picker import ImagePicker

pytestmark = pytest.mark.usefixtures("small_demo", "one_thread")


def blue_pngs(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (24, 16), (0, 0, 255)).save(folder / f"{i}.png")
    return folder


def text_of(app, selector: str) -> str:
    """A label's text on the current screen ("" while another screen shows)."""
    found = app.screen.query(selector)
    return str(found.first(Label).content) if found else ""


async def test_pick_a_folder_of_target_images_by_keys_and_train(tmp_path: Path, monkeypatch) -> None:
    pics = tmp_path / "pics"
    blue = blue_pngs(pics / "blue")
    monkeypatch.chdir(pics)  # the picker opens at the working directory
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        await type_into(pilot, "#target", "")  # the images alone
        await type_into(pilot, "#iterations", "4")
        await type_into(pilot, "#preview_every", "0")

        # a path that does not exist: refused at start, the cursor goes to the field, nothing is written
        await type_into(pilot, "#target_images", str(tmp_path / "gone"))
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: any("does not exist" in m for _, _, m in app.shown), "the refusal")
        assert app.focused is app.screen.query_one("#target_images", Input)
        await wait_for(app, lambda: "does not exist" in text_of(app, "#target-images-hint"), "the hint")
        assert sessions.list_sessions() == []

        # the picker: down to "blue", space marks it, u uses it
        await pilot.press("end", "ctrl+u", "ctrl+o")
        await wait_for(app, lambda: isinstance(app.screen, ImagePicker), "the picker")
        tree = app.screen.query_one("#picker-tree")
        await wait_for(app, lambda: [str(n.label) for n in tree.root.children] == ["blue"], "the folder listing")
        await pilot.press("down", "space")
        await wait_for(app, lambda: "marked: blue/" in text_of(app, "#picker-marked"), "the mark")
        await pilot.press("u")
        await wait_for(app, lambda: not isinstance(app.screen, ImagePicker), "the picker to close")
        assert app.screen.query_one("#target_images", Input).value == str(blue)
        await wait_for(app, lambda: text_of(app, "#target-images-hint").startswith("3 images"), "the thumbnails")
        assert "24x16" in text_of(app, "#target-images-hint")
        assert text_of(app, "#prompt-warning") == ""  # no target prompt needed with images

        await pilot.press("escape", "f5")
        await wait_for(app, lambda: " finished " in status(app), "the run", timeout=60)
        [info] = sessions.list_sessions()
        assert info.target_image_count == 3 and info.config.target_images == (str(blue),)
        assert sorted(p.name for p in (info.path / sessions.TARGETS_DIR).iterdir()) == ["000.png", "001.png",
                                                                                        "002.png"]
        await wait_for(app, lambda: sessions.list_sessions()[0].status == "finished", "the session released")

        await pilot.press("f3")
        assert isinstance(app.screen, SessionsScreen)
        table = app.screen.query_one(DataTable)
        await wait_for(app, lambda: table.row_count == 1, "the sessions table")
        cells = [str(getattr(c, "plain", c)) for c in table.get_row_at(0)]
        assert any(c.endswith("-> 3 images") for c in cells), cells

        # the originals go; retrain (a fork of the session) trains on the session's copies
        shutil.rmtree(blue)
        await pilot.press("f2", "ctrl+r")
        await wait_for(app, lambda: len(sessions.list_sessions()) == 2 and " finished " in status(app),
                       "the retrained run", timeout=60)
        fork = next(i for i in sessions.list_sessions() if i.id != info.id)
        assert fork.parent_id == info.id and fork.target_image_count == 3


@pytest.mark.parametrize("renderer", ["halfblocks", "sixel"])
async def test_thumbnails_are_drawn_like_every_image(tmp_path: Path, renderer: str) -> None:
    # The thumbnails go through the app's one image widget, so a Sixel terminal gets real pixels
    # (before, they were rich-pixels half blocks whatever the terminal could draw).
    from nada_tui import graphics
    from nada_tui.widgets.pixel_image import PixelImage

    blue = blue_pngs(tmp_path / "blue")
    before = graphics.current()
    graphics.use(graphics.Graphics(renderer, (10, 20), "test"))
    try:
        app = RecordingApp()
        async with app.run_test(size=(160, 60)) as pilot:
            await ready(pilot)
            await type_into(pilot, "#target_images", str(blue))
            await wait_for(app, lambda: text_of(app, "#target-images-hint").startswith("3 images"), "the hint")
            thumbs = app.screen.query_one("#target-thumbs", PixelImage)
            # three 10-cell thumbnails, a column apart, 5 rows tall
            await wait_for(app, lambda: thumbs.prepared is not None and thumbs.prepared.cells == (32, 5),
                           "the thumbnails")
            assert thumbs.display and thumbs.prepared.kind == renderer
    finally:
        graphics.use(before)
