"""Remake the README's picture of the app: the demo training at 160x48, saved as docs/app.svg.

Run from the repository root: `python docs/screenshot.py [STEP]` (default: shoot at step 60 of the demo's
100). It presses the keys a user would (F5 starts the demo run) and writes into a throwaway data folder,
so your own sessions are untouched. `rsvg-convert -w 1600 docs/app.svg -o docs/app.png` (Debian package
librsvg2-bin) makes the PNG the README shows.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent


async def shoot(step: int) -> None:
    from nada_tui.app import NadaApp

    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(160, 48)) as pilot:
        await asyncio.sleep(2)  # the model registry loads on a thread
        await pilot.press("f5")
        for _ in range(3000):  # up to 5 minutes on a busy machine
            buf = app.view.buffer
            if buf is not None and buf.last is not None and buf.last.step >= step and buf.preview is not None:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # let the next redraw show the newest events
        app.save_screenshot("app.svg", str(DOCS))
        await pilot.press("f8")  # stop (the run saves) and wait for it, so no thread outlives the app
        for _ in range(600):
            if not app.view.training:
                break
            await asyncio.sleep(0.1)


def main() -> None:
    step = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    with tempfile.TemporaryDirectory() as tmp:
        for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
            os.environ[var] = os.path.join(tmp, var)
        asyncio.run(shoot(step))
    print(DOCS / "app.svg")


if __name__ == "__main__":
    main()
