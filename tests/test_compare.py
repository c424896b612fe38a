"""Following and comparing runs in the app, and the sessions table's columns (issues 11 and 12).

Sessions are made through the engine (`engine.runs` with the 32 px tiny demo generator) or copied from
one made so; the app is driven by keys and read from what it draws (`screen_text`: the text of an SVG
screenshot, line by line)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _pilot import screen_text, to_sessions, wait_until
from PIL import Image

from engine import compare, runs, sessions
from engine.config import DEMO_GENERATOR_ID, demo_config
from engine.sessions.watch import SessionWatcher
from nada_tui.app import NadaApp
from nada_tui.screens.compare import CompareScreen
from nada_tui.screens.dialogs import FormDialog
from nada_tui.screens.sessions import SessionsScreen

pytestmark = pytest.mark.usefixtures("small_demo", "one_thread")

TARGETS = ("a blue image", "a green image", "a yellow image")


# ----- helpers ------------------------------------------------------------------------------------
def shown(app: NadaApp) -> str:
    return "\n".join(screen_text(app))


def train(target: str = "a blue image", steps: int = 4, sweep: dict | None = None, name: str | None = None,
          **changes) -> str:
    """A finished demo session, made and trained here through the engine; returns its id."""
    cfg = demo_config(target=target, iterations=steps, preview_every=2, **changes)
    run = runs.start_session(cfg, DEMO_GENERATOR_ID, name=name, device="cpu", sweep=sweep)
    with run:
        result = runs.train_session(run, handle_signals=False)
    assert result.status == "finished"
    return run.session_id


def demo_sweep(name: str = "colours", targets: tuple[str, ...] = TARGETS, steps: int = 4) -> list[str]:
    """A sweep's runs as `nada-tui sweep` makes them: sessions tagged with the sweep and its grid value."""
    return [train(t, steps, sweep={"name": name, "values": {"target": t}}, name=f"{name} #{i + 1}: target={t}")
            for i, t in enumerate(targets)]


def copy_session(sid: str, new_id: str, **fields) -> Path:
    """A copy of a session directory under a new id with some session.json fields changed."""
    src = sessions.session_path(sid)
    dst = src.with_name(new_id)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("lock"))
    data = json.loads((dst / sessions.SESSION_FILE).read_text())
    config = data["config"]
    for key, value in fields.items():
        if key in config:
            config[key] = value
        else:
            data[key] = value
    data["id"] = new_id
    (dst / sessions.SESSION_FILE).write_text(json.dumps(data))
    return dst


# ----- the sessions table -------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_columns_fit_by_priority_and_the_damage_reason_has_its_own_place(size) -> None:
    sid = train("a blue image", steps=2)
    copy_session(sid, "20250101-120000-long", name="a long name for a session that says a great deal about it",
                 target="a watercolour painting of a lighthouse on a cliff at dusk, soft light")
    broken = sessions.session_path(sid).with_name("20250101-110000-broken")
    broken.mkdir()
    (broken / sessions.SESSION_FILE).write_text("{not json")
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=size) as pilot:
        await to_sessions(pilot, 3, at_least=True, timeout=30)
        lines = screen_text(app)
        [header] = [line for line in lines if " Name " in line and "Status" in line]
        # status, steps and loss before date and size: every label shown whole, on the screen
        for label in ("Name", "Status", "Steps", "Loss~20", "Dir", "Source -> target"):
            assert f" {label} " in f"{header} ", (label, header)
        if size[0] >= 120:
            for label in ("Model", "Date", "Size"):
                assert f" {label} " in f"{header} ", (label, header)
        else:
            assert "Date" not in header
        assert all(len(line.rstrip()) <= size[0] for line in lines)
        # the damaged session: named and marked in the table, its reason in the detail panel only
        [row] = [line for line in lines if "20250101-110000-broken" in line]
        assert "damaged" in row and "session.json" not in row
        await pilot.press("ctrl+end")
        await wait_until(lambda: "damaged: session.json" in shown(app), "the reason in the detail panel",
                         describe=lambda: shown(app))


def test_fork_names_describe_the_fork() -> None:
    parent = train("a blue image", steps=2)  # "a red image -> a blue image"
    with runs.fork_session(parent, {"target": "a green image"}, from_weights=False, device="cpu") as fork:
        first = fork.session_id
    with runs.fork_session(first, {"source": "a green image", "target": "a blue image"}, device="cpu") as fork2:
        second = fork2.session_id
    names = {i.id: i.name for i in sessions.list_sessions()}
    assert names[first] == "a red image -> a green image (fork of a red image -> a blue image)"
    assert names[second] == "a green image -> a blue image (fork of a red image -> a green image)"
    assert runs.fork_name("a", "b", "x -> y (fork of z) (fork)") == "a -> b (fork of x -> y)"


# ----- following runs of other processes ----------------------------------------------------------
WRITER = r"""
import sys, time, torch
torch.set_num_threads(1)
from engine import runs, zoo
from engine.demo import tiny_generator
from engine.events import StepMetrics
from engine.config import DEMO_GENERATOR_ID, demo_config
zoo.demo_generator = lambda: tiny_generator(size=32, seed=0)
cfg = demo_config(target="a green image", iterations=int(sys.argv[1]), preview_every=10)
run = runs.start_session(cfg, DEMO_GENERATOR_ID, name="from another process", device="cpu",
                         sweep={"name": "outside", "values": {"target": "a green image"}})
print(run.session_id, flush=True)
def slow(event):
    if isinstance(event, StepMetrics):
        time.sleep(0.15)  # slow enough for the test to see it running
with run:
    runs.train_session(run, on_event=slow, handle_signals=False)
"""


async def test_a_session_of_another_process_shows_up_and_updates_live() -> None:
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        assert "Sessions: 0/0" in shown(app)
        proc = subprocess.Popen([sys.executable, "-c", WRITER, "40"], stdout=subprocess.PIPE, text=True,
                                cwd=Path(__file__).parent.parent)
        try:
            def row() -> str:
                return next((line for line in screen_text(app) if "from another process" in line), "")

            def step() -> int:
                found = re.search(r" (\d+)/40 ", row())
                return int(found[1]) if found else -1

            # The writer prints its session's id once it made it: starting Python and importing torch can take
            # a minute on a busy machine, which is not what the app's 60 s below are for.
            made = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 600)
            assert made.strip(), "the writer ended before it made its session"
            await wait_until(lambda: "● running" in row() and step() >= 0, "the running row", timeout=60)
            first = step()
            await wait_until(lambda: step() > first, "the step to move on")
            assert "▾ outside" in shown(app)  # under its sweep's header
            assert await asyncio.to_thread(proc.wait, 600) == 0
            await wait_until(lambda: "finished" in row() and step() == 40, "finished", timeout=60)
            assert re.search(r"\d\.\d{4}", row())  # its final loss
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()


def test_watcher_reports_only_what_changed() -> None:
    watcher = SessionWatcher()
    assert not watcher.poll()
    sid = train("a blue image", steps=2)
    first = watcher.poll()
    assert [i.id for i, _ in first.changed] == [sid]
    assert not watcher.poll()  # nothing moved
    copy_session(sid, "20250101-120000-copy", name="copy")
    assert [i.id for i, _ in watcher.poll().changed] == ["20250101-120000-copy"]
    sessions.delete("20250101-120000-copy")
    assert watcher.poll().removed == ["20250101-120000-copy"]


# ----- the compare view ---------------------------------------------------------------------------
async def test_compare_a_sweep_then_marked_sessions_and_export(tmp_path: Path) -> None:
    demo_sweep()
    train("a purple image", steps=4, global_weight=0.5)
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await to_sessions(pilot, 5, at_least=True, timeout=30)
        text = shown(app)
        assert "▾ colours" in text and "3/3 done" in text
        # the sweep's runs sit under its header, named by what sets them apart
        lines = screen_text(app)
        head = next(n for n, line in enumerate(lines) if "▾ colours" in line)
        runs = lines[head + 1:head + 4]
        assert sorted(line.split()[0] for line in runs) == ["#1:", "#2:", "#3:"], text

        # filtered to the sweep, the cursor on its header: c compares its runs
        await pilot.press("slash", *"colours", "enter", "ctrl+home", "c")
        assert isinstance(app.screen, CompareScreen)
        await wait_until(lambda: "before (frozen)" in shown(app), "the comparison")
        text = shown(app)
        assert "Compare: sweep colours · 3 sessions · differs: target" in text
        [head] = [line for line in screen_text(app) if "before (frozen)" in line]
        assert head.count("target=a") == 3, text  # one column a run, labelled with its grid value
        assert all(t.split()[-2] in text for t in TARGETS) and text.count("step 4") == 3, text

        # export it as one PNG into a folder typed in the dialog
        out = tmp_path / "exported"
        await pilot.press("e")
        assert isinstance(app.screen, FormDialog)
        await pilot.press("end", "ctrl+u", *str(out), "enter")
        await wait_until(lambda: list(out.glob("compare-*.png")), "the PNG")
        [png] = out.glob("compare-*.png")
        with Image.open(png) as img:
            assert img.width > img.height > 4 * compare.MIN_EXPORT_TILE  # 4 columns; 4 seeds and labels

        # back; mark two sessions of different kinds and compare those
        await pilot.press("escape")
        assert isinstance(app.screen, SessionsScreen)
        assert not any("✓" in line for line in screen_text(app))
        await pilot.press("slash", "end", "ctrl+u", *"purple", "enter", "ctrl+home", "space")
        await pilot.press("slash", "end", "ctrl+u", *"a blue image", "enter", "ctrl+home", "down", "space")
        assert any("✓ #1: target=a blue" in line for line in screen_text(app))  # the purple one is filtered out
        assert "marked: 2" in shown(app)
        await pilot.press("c")
        assert isinstance(app.screen, CompareScreen)
        await wait_until(lambda: "step 4" in shown(app), "the comparison of the marked sessions")
        text = shown(app)
        assert "Compare: 2 marked sessions · 2 sessions · differs: target, global-weight" in text
        assert "global-weight=0.5" in text and "purple" in text and "global-weight=0" in text


def test_comparison_labels_what_differs_and_export_draws_every_column(tmp_path: Path) -> None:
    a = train("a blue image", steps=2)
    b = train("a green image", steps=2, global_weight=0.3)
    infos = [sessions.read_info(sessions.session_path(i)) for i in (a, b)]
    comp = compare.comparison(compare.load_items(infos), "two")
    assert comp.keys == ("target", "global_weight")
    assert comp.labels == ("target=a blue image, global-weight=0", "target=a green image, global-weight=0.3")
    assert comp.shared_before and comp.seeds == (0, 1, 2, 3)
    png = compare.export_png(comp, tmp_path)
    with Image.open(png) as img:
        assert img.height > len(comp.seeds) * compare.MIN_EXPORT_TILE


async def test_compare_says_before_after_and_names_empty_values() -> None:
    # Two sessions whose "before" images differ (the copy's frozen rows painted over) and whose pins
    # differ, one with none: each column says "before | after" over its two images, and the empty pin
    # value reads "none", not a bare "pin-on=".
    a = train("a blue image", steps=2)
    dst = copy_session(a, "20250101-120000-pinned", name="pinned", pin_on=[1])
    for png in [*dst.glob("samples/*.png"), *dst.glob("*.png")]:
        with Image.open(png) as img:
            grid = img.convert("RGB")
        grid.paste((255, 255, 255), (0, 0, grid.width, grid.height // 2))
        grid.save(png)
    infos = [sessions.read_info(sessions.session_path(i)) for i in (a, "20250101-120000-pinned")]
    comp = compare.comparison(compare.load_items(infos), "two")
    assert not comp.shared_before and comp.labels == ("pin-on=none", "pin-on=1")
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await to_sessions(pilot, 2, at_least=True, timeout=30)
        await pilot.press("space", "down", "space", "c")
        assert isinstance(app.screen, CompareScreen)
        await wait_until(lambda: "step 2" in shown(app), "the comparison")
        [head] = [line for line in screen_text(app) if "pin-on=" in line]
        assert "pin-on=none" in head and "pin-on=1" in head, head
        assert sum("before | after" in line for line in screen_text(app)) == 1  # one line, once per column
        assert max(line.count("before | after") for line in screen_text(app)) == 2
