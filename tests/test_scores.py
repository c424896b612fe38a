"""Scores (issue 21, item 1): every run measures them when it ends, `nada-tui eval` measures them again with
more samples (and FID/KID against a folder), they are kept in the session and shown by `sessions show`,
the sessions table and `sweep status`; bad input is refused with a message and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _pilot import screen_text, to_sessions, wait_until
from _sessions import demo_session
from PIL import Image

from engine import sessions
from engine.scores import RUN_END_SAMPLES, evaluate_session
from engine.sessions.scores import SCORES_FILE, read_scores
from nada_tui.__main__ import main
from nada_tui.app import NadaApp

# The 64 px demo generator itself (no `small_demo`) where the scores of a trained run are checked: on the
# 32 px stand-in two steps already point as far along the direction as twelve.
pytestmark = pytest.mark.usefixtures("one_thread")
KEYS = ("clip_direction", "clip_target", "diversity", "diversity_frozen")


def write_images(folder: Path, count: int, colour: tuple[int, int, int] = (30, 40, 220)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (40, 40), (colour[0], colour[1] + 5 * i, colour[2])).save(folder / f"{i:03d}.png")
    return folder


def test_a_trained_demo_session_follows_its_direction_better_than_two_steps_of_it(capsys) -> None:
    trained, early = demo_session(iterations=12), demo_session(iterations=2)
    got = {sid: sessions.load(sid).scores for sid in (trained, early)}
    for record in got.values():  # measured when each run ended, with the stated sample count
        assert record is not None and record["samples"] == RUN_END_SAMPLES and record["by"] == "run end"
        assert record["clip_model"] == "demo-colour-oracle"
    assert got[trained]["clip_direction"] >= 0.5
    assert got[trained]["clip_direction"] > got[early]["clip_direction"]
    assert got[trained]["clip_target"] > got[early]["clip_target"]
    # red -> blue turns every sample blue: the colour oracle sees less variety than the frozen generator has
    assert got[trained]["diversity"] < got[trained]["diversity_frozen"]

    assert main(["eval", trained, "--samples", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (*KEYS, "fid", "kid", "samples", "clip_model", "step"):
        assert key in out
    assert out["samples"] == 8 and out["step"] == 12 and out["by"] == "eval" and out["fid"] is None
    assert read_scores(sessions.session_path(trained))["samples"] == 8  # kept in the session

    assert main(["sessions", "show", trained]) == 0
    shown = capsys.readouterr().out
    assert f"clip_direction {out['clip_direction']:.3f}" in shown and "8 samples, CLIP demo-colour-oracle" in shown
    assert main(["eval", early, "--samples", "4"]) == 0
    text = capsys.readouterr().out
    assert "clip_direction" in text and "mode collapse" in text


async def test_the_sessions_table_shows_the_direction_score_and_sorts_by_it() -> None:
    best, worst = demo_session(iterations=12), demo_session(iterations=2)
    dirs = {sid: f"{sessions.load(sid).scores['clip_direction']:.2f}" for sid in (best, worst)}
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await to_sessions(pilot, 2)
        text = "\n".join(screen_text(app))
        assert "Dir" in text
        while "sort: clip_direction" not in "\n".join(screen_text(app)):
            await pilot.press("s")
        rows = [line for line in screen_text(app) if "finished" in line]
        assert dirs[best] in rows[0] and dirs[worst] in rows[1]  # best first


@pytest.mark.usefixtures("small_demo")
@pytest.mark.usefixtures("small_demo")
async def test_the_table_shows_scores_that_eval_writes_from_elsewhere() -> None:
    sid = demo_session(iterations=2)
    (sessions.session_path(sid) / SCORES_FILE).unlink()  # as a session made before scores existed
    app = NadaApp(demo=True, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await to_sessions(pilot, 1)
        [row] = [line for line in screen_text(app) if "finished" in line]
        assert " – " in row
        record = evaluate_session(sid, samples=4)  # another terminal: `nada-tui eval`
        want = f"{record['clip_direction']:.2f}"
        await wait_until(lambda: want in next(x for x in screen_text(app) if "finished" in x), "the new score",
                         describe=lambda: "\n".join(screen_text(app)))


@pytest.mark.usefixtures("small_demo")
def test_eval_of_a_damaged_session_says_so_and_writes_nothing(capsys) -> None:
    sid = demo_session(iterations=2)
    path = sessions.session_path(sid)
    before = (path / SCORES_FILE).read_bytes()
    ckpt = path / sessions.CHECKPOINT_FILE
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert main(["eval", sid]) == 1
    err = capsys.readouterr().err
    assert "damaged" in err and "truncated" in err
    assert (path / SCORES_FILE).read_bytes() == before


@pytest.mark.usefixtures("small_demo")
@pytest.mark.parametrize("count", [0, 3])
def test_fid_needs_a_folder_with_enough_images(tmp_path: Path, capsys, count: int) -> None:
    sid = demo_session(iterations=2)
    path = sessions.session_path(sid)
    before = (path / SCORES_FILE).read_bytes()
    folder = write_images(tmp_path / "real", count)
    assert main(["eval", sid, "--fid", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"holds {count} images" in err and "at least 10" in err
    assert main(["eval", sid, "--fid", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", sid, "--samples", "1"]) == 2
    assert "--samples must be from 2" in capsys.readouterr().err
    assert (path / SCORES_FILE).read_bytes() == before  # nothing written, the old scores kept


def test_fid_and_kid_with_the_stand_in_features(tmp_path: Path) -> None:
    sid = demo_session(iterations=12)
    blue = write_images(tmp_path / "blue", 12)
    red = write_images(tmp_path / "red", 12, colour=(220, 40, 30))
    to_blue = evaluate_session(sid, samples=12, fid_folder=blue, fid_features="standin")
    to_red = evaluate_session(sid, samples=12, fid_folder=red, fid_features="standin")
    assert "stand-in" in to_blue["fid_features"] and "NOT a real FID" in to_blue["fid_features"]
    assert to_blue["fid_real_images"] == 12
    assert 0 <= to_blue["fid"] < to_red["fid"]  # the session made blue images, so blue real ones are nearer
    assert to_blue["kid"] < to_red["kid"]
    assert read_scores(sessions.session_path(sid))["fid"] == pytest.approx(to_red["fid"])


@pytest.mark.usefixtures("small_demo")
def test_sweep_status_shows_the_scores_and_sorts_by_any_of_them(capsys) -> None:
    from _sweeps import parse

    from engine import sweeps

    ids = [demo_session(iterations=n) for n in (2, 6, 3)]
    record = sweeps.new_record(parse("name = 'scored'\n[defaults]\ndemo = true\n[grid]\nseed = [1, 2, 3]\n"))
    record.save()
    for i, sid in enumerate(ids):
        sweeps.write_run_start(record.dir, i, sid, None)
    capsys.readouterr()
    for key, best_first in (("clip_direction", True), ("diversity", True), ("clip_target", True)):
        assert main(["sweep", "status", "scored", "--sort", key, "--json"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        got = [r["scores"][key] for r in rows]
        assert got == sorted(got, reverse=best_first) and len(set(got)) == 3, (key, got)
    assert main(["sweep", "status", "scored", "--sort", "clip_direction"]) == 0
    out = capsys.readouterr().out
    assert "DIR" in out and "DIV0" in out and "clip_direction" in out
    with pytest.raises(SystemExit) as exited:  # not a score: argparse says which are
        main(["sweep", "status", "scored", "--sort", "loss"])
    assert exited.value.code == 2 and "clip_direction" in capsys.readouterr().err
