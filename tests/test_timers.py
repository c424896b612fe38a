"""Regression: a timer with a negative delay froze the whole app (Textual 8.2.8 spins in Timer._run).

Each case runs in a child process with a deadline, because a frozen event loop would freeze pytest too.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CASES = {
    # what a toast does when its notification expired between ToastRack's check and Toast.__init__
    "toast": """
        from time import time
        from textual.notifications import Notification
        from textual.widgets._toast import Toast
        note = Notification("expired while the screen switched", timeout=1.0)
        note.raised_at = time() - 1.28  # time_left = -0.28, as in the frozen app
        await app.screen.mount(Toast(note))
    """,
    "negative": "app.set_timer(-0.28, lambda: None)",
    "zero": "app.set_timer(0, lambda: None)",
}

SCRIPT = """
import asyncio, os, sys
from nada_tui.app import NadaApp
from nada_tui.screens.help import HelpScreen

async def main():
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
{case}
        await pilot.pause()
        await pilot.press("f1")  # the app still answers keys
        assert isinstance(app.screen, HelpScreen)
    print("alive")

asyncio.run(main())
"""


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_timer_set_in_the_past_does_not_freeze_the_app(case: str) -> None:
    code = SCRIPT.format(case=textwrap.indent(textwrap.dedent(CASES[case]).strip(), " " * 8))
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the app froze after a {case} timer (no answer in 60 s)")
    assert out.returncode == 0 and out.stdout.strip().endswith("alive"), out.stderr[-2000:]
