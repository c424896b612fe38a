"""The app, by keys, with files and folders that are not what they should be: a FIFO typed into the
Target images field is refused at once (before, the hint stayed on "reading the images..." and F5 on
"loading"), an animated target says only its first frame is used, and a data folder that is a file is
named in the error when a run starts (before: "Could not load the models")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _pilot import RecordingApp, ready, type_into, wait_for
from PIL import Image
from textual.widgets import Label

from engine import paths

pytestmark = pytest.mark.usefixtures("small_demo", "one_thread")


def hint(app) -> str:
    found = app.screen.query("#target-images-hint")
    return str(found.first(Label).content) if found else ""


async def test_a_fifo_in_the_target_images_field_is_refused(tmp_path: Path) -> None:
    pipe = tmp_path / "x.png"
    os.mkfifo(pipe)
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        await type_into(pilot, "#target_images", str(pipe))
        await wait_for(app, lambda: "is a FIFO (named pipe), not a regular file" in hint(app), "the refusal")
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: any("FIFO" in m for _, _, m in app.shown), "the refusal at start")


async def test_an_animated_target_image_is_said_in_the_field(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 20), (0, 0, 80 * i + 40)) for i in range(3)]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        await type_into(pilot, "#target_images", str(path))
        await wait_for(app, lambda: "is animated (3 frames): only its first frame is used" in hint(app), "the note")


async def test_a_data_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    data = paths.sessions_dir().parent
    data.parent.mkdir(parents=True, exist_ok=True)
    app = RecordingApp()
    async with app.run_test(size=(160, 60)) as pilot:
        await ready(pilot)
        data.write_text("not a folder")  # after start: the app's own start-up never needs the folder
        await type_into(pilot, "#iterations", "2")
        await pilot.press("escape", "f5")
        await wait_for(app, lambda: any(s == "error" for s, _, _ in app.shown), "the error")
        severity, title, message = next(e for e in app.shown if e[0] == "error")
        assert title == "Cannot save the session"
        assert f"{data} is a file, not a folder" in message
