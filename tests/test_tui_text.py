"""Text that used to be cut: the top bar at 80 and 120 columns, log lines, dialog sentences."""

from __future__ import annotations

import asyncio

from rich.text import Text

from engine.events import DeviceMemory, LogMessage, StepMetrics
from nada_tui.app import NadaApp
from nada_tui.run_buffer import RunBuffer
from nada_tui.screens.dialogs import ConfirmDialog
from nada_tui.widgets.status_bar import first_difference, fit

LONG = "a line of about fifty cells that ends with: zebra"


def test_fit_drops_the_least_important_segments_whole() -> None:
    segments = [(1, Text("nada-tui")), (5, Text("running")), (2, Text("| ViT-B/32 |")), (4, Text("| cpu 1.0 GiB"))]
    assert fit(segments, 100).plain == "nada-tui running | ViT-B/32 | | cpu 1.0 GiB"
    assert fit(segments, 25).plain == "running | cpu 1.0 GiB"
    assert fit(segments, 8).plain == "running"


def test_the_top_bar_repaints_from_the_first_cell_that_changed() -> None:
    before = Text.assemble(("running", "bold green"), " 120/300 | 29.1 it/s")
    assert first_difference(before, before.copy()) is None
    assert first_difference(before, Text.assemble(("running", "bold green"), " 130/300 | 29.1 it/s")) == 9
    assert first_difference(before, Text.assemble(("paused", "bold yellow"), " 120/300 | 29.1 it/s")) == 0
    assert first_difference(before, Text.assemble(("running", "bold red"), " 120/300 | 29.1 it/s")) == 0
    shorter = Text.assemble(("running", "bold green"), " 120/300")
    assert first_difference(before, shorter) == 16  # the cell after "300" was a space and stays one
    assert first_difference(Text("ETA 0:05"), Text("ETA 0:05 | cpu")) == 9  # longer, from the "|"
    assert first_difference(Text("步 1"), Text("步 2")) == 3  # counted in cells: a wide character is two


def buffer() -> RunBuffer:
    from engine.config import demo_config

    buf = RunBuffer("run-text", demo_config(), "demo-tiny", "s1", state="running")
    buf.apply(StepMetrics(100, 300, {"total": 0.5}, 0.0016, 6.2, 16.0, (1,), 1, None, 110, 0.2,
                          DeviceMemory("cpu", 987_200_000, None)))
    buf.apply(LogMessage("info", LONG))
    return buf


async def show(app: NadaApp, pilot) -> str:
    app.view.buffer = buffer()
    bar = app.train_screen.query_one("#status")
    for _ in range(40):  # redraws come on a timer, stretched up to 1 s while "training" on the CPU
        await asyncio.sleep(0.1)
        if "100/300" in bar.text.plain:
            break
    await pilot.pause()
    return bar.text.plain


async def test_the_top_bar_keeps_units_and_the_essentials_at_80_and_120_columns() -> None:
    for width in (80, 120):
        app = NadaApp(demo=True, device="cpu")
        async with app.run_test(size=(width, 30)) as pilot:
            text = await show(app, pilot)
            assert len(text) <= width
            for part in ("running", "100/300", "it/s", "ETA", "g=0.20", "MiB"):
                assert part in text, (width, text)


async def test_log_lines_wrap_in_a_narrow_panel() -> None:
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await show(app, pilot)
        await pilot.pause()
        assert "zebra" in app.export_screenshot()  # the end of the line is on screen, not cut off


async def test_dialog_sentences_wrap_instead_of_being_cut() -> None:
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ConfirmDialog("Delete session 'a red image -> a blue image' (812.0 KiB)? This cannot be "
                                      "undone.", yes="Delete", no="Keep", danger=True))
        await pilot.pause()
        assert "undone." in app.export_screenshot()


async def test_the_loss_axis_stays_at_or_above_zero_for_losses() -> None:
    # The losses are never negative; the axis used to be padded below the lowest value (and a flat
    # curve half a unit down), so its bottom label read "-0.01" or "-0.50".
    from _pilot import screen_text
    from textual.app import App

    from nada_tui.widgets.loss_chart import LossChart

    class ChartApp(App):
        def compose(self):
            yield LossChart()

    for values in ([0.3, 0.2, 0.1, 0.02, 0.001], [0.0] * 5):
        app = ChartApp()
        async with app.run_test(size=(60, 14)) as pilot:
            chart = app.query_one(LossChart)
            for step, v in enumerate(values):
                chart.add("total", step, v, label="total")
            chart.refresh_chart()
            await pilot.pause()
            labels = [line.split("│")[0].strip() for line in screen_text(app)[1:] if "│" in line]
            assert labels and all(not label.startswith("-") for label in labels), labels
