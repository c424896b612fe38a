"""SVG snapshots of the photos screen's side-by-side view (photo | inverted | adapted) at 80x24 and 200x60.

The session's photos/ folder holds fixed pictures and latents, written through the engine's own writer
(what an inversion leaves), so the view is what the screen shows for photos inverted before: no
optimisation, no timing in the picture. Everything is reached with keys (F3, p). Update after an intended
change with `pytest tests/test_tui_snapshots_photos.py --snapshot-update` and review the SVGs."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.config import DEMO_GENERATOR_ID, demo_config
from nada_tui.app import NadaApp


def picture(face: tuple[int, int, int], back: tuple[int, int, int], blur: int = 0, side: int = 32) -> Image.Image:
    """A made-up portrait: a background, a head, two eyes and a mouth."""
    image = Image.new("RGB", (side, side), back)
    draw = ImageDraw.Draw(image)
    draw.ellipse((7, 4, 25, 28), fill=face)
    for x in (11, 18):
        draw.rectangle((x, 12, x + 2, 14), fill=(30, 30, 40))
    draw.rectangle((13, 21, 19 + blur, 22), fill=(120, 30, 40))
    return image


@pytest.fixture
def saved_photos(small_demo):
    """A session (never trained: the screen only reads its files) keeping two inverted photos."""
    from engine import runs
    from engine.photos.outputs import session_photos_dir, write_photo_files

    run = runs.start_session(demo_config(iterations=300), DEMO_GENERATOR_ID, device="cpu")
    run.close()
    w_plus = np.zeros((8, 32), dtype=np.float32)
    for stem, face, psnr in (("me", (220, 170, 140), 24.6), ("my sister", (200, 150, 120), 23.1)):
        images = {"aligned": picture(face, (90, 140, 90)), "inverted": picture(face, (100, 130, 100), blur=2),
                  "adapted": picture((70, 110, 220), (60, 70, 150), blur=2)}
        meta = {"photo": f"/home/me/{stem}.jpg", "steps": 500, "loss": 0.05, "psnr_db": psnr}
        write_photo_files(session_photos_dir(run.path), stem, images, w_plus, meta)


async def to_photos(pilot) -> None:
    """F3, the session under the cursor, p; wait for the saved photos and their pictures."""
    from textual.widgets import DataTable, OptionList

    from nada_tui.widgets.pixel_image import PixelImage

    app: NadaApp = pilot.app
    await pilot.press("f3")
    for _ in range(200):
        if app.screen.query(DataTable) and app.screen.query_one(DataTable).row_count >= 1:
            break
        await asyncio.sleep(0.05)
    await pilot.press("p")
    for _ in range(200):
        if app.screen.query(OptionList) and app.screen.query_one(OptionList).option_count == 2 \
                and all(p.prepared is not None for p in app.screen.query(PixelImage)):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
def test_photos_side_by_side(snap_compare, saved_photos, size) -> None:
    assert snap_compare(NadaApp(demo=True, device="cpu"), terminal_size=size, run_before=to_photos)
