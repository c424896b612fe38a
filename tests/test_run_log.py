"""The run's log panel: new lines show at the bottom as they come, and earlier ones stay a scroll away
(it grows without re-laying out the screen, see nada_tui/widgets/run_log.py)."""

from __future__ import annotations

from _pilot import screen_text
from textual.app import App, ComposeResult

from nada_tui.widgets.run_log import RunLog


class LogApp(App):
    def compose(self) -> ComposeResult:
        yield RunLog(id="log", max_lines=500, wrap=True, markup=False, min_width=20)


def visible(app: App) -> str:
    return "\n".join(screen_text(app))


async def test_new_lines_follow_and_old_ones_scroll_back() -> None:
    app = LogApp()
    async with app.run_test(size=(40, 10)) as pilot:
        log = app.query_one(RunLog)
        for i in range(3):
            log.write(f"line {i:02d}")
        await pilot.pause()
        assert "line 00" in visible(app) and "line 02" in visible(app)
        for i in range(3, 40):  # past the panel's height: a scrollbar comes, the end stays in view
            log.write(f"line {i:02d}")
            await pilot.pause()
        text = visible(app)
        assert "line 39" in text and "line 00" not in text
        assert any(c in text for c in "▁▂▃▄▅▆▇█▉▊▋▌▍▎▏"), "no scrollbar drawn"

        await pilot.click("#log")
        await pilot.press("home")
        await pilot.pause()
        text = visible(app)
        assert "line 00" in text and "line 39" not in text
        await pilot.press("end")
        await pilot.pause()
        assert "line 39" in visible(app)

        log.write("line 40")  # a new line brings the end back into view, in the same frame
        await pilot.pause()
        assert "line 40" in visible(app)


async def test_a_long_line_wraps_inside_the_panel() -> None:
    app = LogApp()
    async with app.run_test(size=(30, 8)) as pilot:
        app.query_one(RunLog).write("checkpoint (periodic) at step 1200 saved to the session folder")
        await pilot.pause()
        text = visible(app)
        assert "checkpoint" in text and "folder" in text
