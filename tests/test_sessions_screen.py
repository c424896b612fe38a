"""The sessions screen and the session lists, issue 18: the loss they show is smoothed (defect 9); the
table's columns drop in one order at any width and rows stay apart, resuming asks first, and the
generate dialog keeps what was typed when N is wrong (defect 11). Driven by keys, read from the screen."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _pilot import RecordingApp, screen_text, to_sessions, wait_until
from test_compare import copy_session, train
from textual.widgets import Input, Label

from engine import sessions
from engine.sessions.loss import recent_loss
from nada_tui.__main__ import main
from nada_tui.app import NadaApp
from nada_tui.screens.dialogs import ConfirmDialog, FormDialog
from nada_tui.screens.sessions import SessionsScreen

pytestmark = pytest.mark.usefixtures("small_demo", "one_thread")


def with_losses(sid: str, new_id: str, totals: list[float], name: str) -> None:
    """A copy of session `sid` whose metrics.jsonl logs `totals` as steps 1..n (it stopped at n, the last
    total its `final_loss`, as the store writes it)."""
    path = copy_session(sid, new_id, name=name, step=len(totals), iterations=len(totals), status="stopped",
                        final_loss=totals[-1],
                        created=f"{new_id[:4]}-{new_id[4:6]}-{new_id[6:8]}T{new_id[9:11]}:{new_id[11:13]}:{new_id[13:15]}")
    lines = [json.dumps({"step": i + 1, "losses": {"total": t, "directional": t, "global": t}})
             for i, t in enumerate(totals)]
    (path / sessions.METRICS_FILE).write_text("\n".join(lines) + "\n")


def session_lines(app: NadaApp, status: str) -> list[str]:
    """The table's session rows (the lines that show `status`), top to bottom."""
    return [line for line in screen_text(app) if status in line]


# ----- defect 9: the loss in lists is a smoothed figure --------------------------------------------
async def test_the_loss_column_is_a_mean_and_sorting_by_loss_uses_it(capsys) -> None:
    sid = train("a blue image", steps=2)
    # "jumpy": its last step alone is the lowest loss of all, its recent steps the highest
    with_losses(sid, "20250101-120000-jumpy", [0.5] * 19 + [0.01], "jumpy")
    with_losses(sid, "20250101-130000-steady", [0.1] * 20, "steady")
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await to_sessions(pilot, 3)
        assert "Loss~20" in "\n".join(screen_text(app))
        while "sort: loss" not in "\n".join(screen_text(app)):
            await pilot.press("s")
        steady, jumpy = session_lines(app, "stopped")
        assert "steady" in steady and "0.1000" in steady
        assert "jumpy" in jumpy and "0.4755" in jumpy  # (19 * 0.5 + 0.01) / 20
    capsys.readouterr()
    assert main(["sessions", "list"]) == 0
    out = capsys.readouterr().out
    assert "MEAN LOSS (20)" in out
    [row] = [line for line in out.splitlines() if "jumpy" in line]
    assert "0.4755" in row and "0.0100" not in row
    assert main(["sessions", "show", "20250101-120000-jumpy"]) == 0
    out = capsys.readouterr().out
    assert "loss 0.4755 (mean of the last 20 logged steps; the last step alone: 0.0100)" in out


def test_the_smoothed_loss_reads_only_the_end_of_a_long_run(tmp_path: Path) -> None:
    lines = [json.dumps({"step": s, "losses": {"total": 1.0 if s <= 5000 else 0.25}}) for s in range(1, 5021)]
    lines.insert(100, "{torn")
    (tmp_path / sessions.METRICS_FILE).write_text("\n".join(lines) + "\n")
    assert recent_loss(tmp_path) == pytest.approx(0.25)
    assert recent_loss(tmp_path, upto_step=5010) == pytest.approx((10 * 1.0 + 10 * 0.25) / 20)
    assert recent_loss(tmp_path / "missing") is None


# ----- defect 11: the table at 80 columns, and after a resize --------------------------------------
async def test_rows_read_apart_at_80_columns_and_columns_drop_the_same_after_a_resize() -> None:
    sid = train("a blue image", steps=2)
    for i in range(11):  # twelve sessions of one recipe (the same name, prompts, steps and loss): more
        # rows than the table's height, so its scrollbar takes room
        copy_session(sid, f"20250101-1200{i:02d}-again", created=f"2025-01-01T12:00:{i:02d}+00:00")
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await to_sessions(pilot, 12)

        def header() -> str:
            return next(line for line in screen_text(app) if " Name " in line)

        first = header()
        rows = session_lines(app, "finished")
        assert len(rows) >= 7 and len(set(rows)) == len(rows), rows  # no two rows read alike
        labels = re.split(r"\s{2,}", first.strip())
        assert labels == ["Name", "Status", "Steps", "Loss~20", "Dir", "Source -> target"], first
        await pilot.resize_terminal(160, 40)
        await wait_until(lambda: "Size" in header(), "every column at 160", describe=header)
        await pilot.resize_terminal(80, 24)
        await wait_until(lambda: "Size" not in header(), "the 80-column table")
        await pilot.pause()
        assert header() == first
        def cells(lines: list[str]) -> list[str]:  # the rows without the scrollbar's thumb
            return [line.rstrip(" ▁▂▃▄▅▆▇█") for line in lines]

        assert cells(session_lines(app, "finished")) == cells(rows)


# ----- defect 11: resume asks first; the generate dialog keeps what was typed ----------------------
async def test_resume_asks_first_and_no_leaves_the_session_alone() -> None:
    sid = train("a blue image", steps=2)
    app = RecordingApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await to_sessions(pilot, 1)
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmDialog)
        assert "Resume" in str(app.screen.query_one(".dialog-text", Label).content)
        await pilot.press("n")
        assert isinstance(app.screen, SessionsScreen)
        await pilot.pause(0.3)
        assert sessions.load(sid).status == "finished"
        assert not any("resum" in m.lower() for _, _, m in app.shown)


async def test_a_wrong_n_keeps_the_generate_dialog_open_with_what_was_typed(tmp_path: Path) -> None:
    train("a blue image", steps=2)
    out = tmp_path / "my images"
    app = RecordingApp()
    async with app.run_test(size=(120, 40)) as pilot:
        await to_sessions(pilot, 1)
        await pilot.press("g")
        assert isinstance(app.screen, FormDialog)
        await pilot.click("#f-folder")
        await pilot.press("end", "ctrl+u", *str(out))
        await pilot.click("#f-n")
        await pilot.press("end", "ctrl+u", *"twelve", "enter")
        dialog = app.screen
        assert isinstance(dialog, FormDialog)  # still open
        assert "whole number from 1 to 10000" in str(dialog.query_one("#dialog-error", Label).content)
        assert dialog.query_one("#f-folder", Input).value == str(out)
        assert dialog.query_one("#f-n", Input).value == "twelve"
        await pilot.press("end", "ctrl+u", "2", "enter")
        await wait_until(lambda: len(list(out.glob("*.png"))) == 2, "2 images", timeout=60)
