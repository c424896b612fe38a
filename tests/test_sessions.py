"""The session store in-process: layout, damage, names, locks, a full disk, resume and fork."""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch

from engine import atomic, paths, runs, sessions
from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, TrainConfig
from engine.events import CheckpointSaved, LogMessage, StepMetrics

pytestmark = pytest.mark.usefixtures("small_demo", "one_thread")


def demo_config(**kw) -> TrainConfig:
    # Small selection batches keep each step cheap; selection still runs (it draws from the RNG).
    base = dict(
        source="a red image",
        target="a blue image",
        clip_models=((DEMO_CLIP_ID, 1.0),),
        iterations=6,
        preview_every=3,
        preview_seeds=(0, 1),
        batch=1,
        auto_layer_batch=2,
        auto_layer_interval=4,
    )
    return TrainConfig(**{**base, **kw})


def train(iters: int = 6, checkpoint_every: int = 0, name: str | None = None, **kw) -> runs.RunResult:
    run = runs.start_session(
        demo_config(iterations=iters, **kw),
        DEMO_GENERATOR_ID,
        name=name,
        device="cpu",
        checkpoint_every=checkpoint_every,
    )
    with run:
        return runs.train_session(run, handle_signals=False)


def fresh_state(config: TrainConfig) -> dict:
    """What `Trainer.state_dict()` returns before the first step, without building a Trainer."""
    rng = torch.Generator().manual_seed(config.seed).get_state()
    return dict(step=0, config=config.to_dict(), weights={}, param_names=[], optimizer={}, scores=None, rng=rng)


def bare_session(name: str = "x", root=None, **create_kw) -> str:
    """A session made without training (step 0): enough for store-level tests."""
    with sessions.create(fresh_state(demo_config()), {"id": DEMO_GENERATOR_ID}, name=name, root=root, **create_kw) as w:
        return w.id


class Kill(BaseException):
    """Escapes TrainingWorker like a SIGKILL would: no stop checkpoint, nothing cleaned up."""


def losses_of(path) -> list[float]:
    return [r.losses["total"] for r in sessions.read_metrics(path)]


def test_layout_and_listing():
    res = train(iters=6, checkpoint_every=3)
    assert res.status == "finished" and res.step == 6
    root = paths.sessions_dir()
    assert res.path.parent == root
    names = set(os.listdir(res.path))
    assert {"session.json", "metrics.jsonl", "checkpoint.safetensors", "grid.png", "samples", "lock"} <= names
    assert sorted(os.listdir(res.path / "samples")) == ["step_000003.png", "step_000006.png"]
    data = json.loads((res.path / "session.json").read_text())
    assert data["schema_version"] == sessions.SCHEMA_VERSION and data["status"] == "finished"
    assert data["step"] == 6 and data["config"]["iterations"] == 6 and data["base_model"]["weights_sha256"]
    assert [r.step for r in sessions.read_metrics(res.path)] == list(range(1, 7))
    # Only trainable tensors that changed are stored, never the mapping network or to_rgb layers.
    weights = sessions.read_weights_file(res.path / "checkpoint.safetensors")
    assert weights and all(k.startswith(("conv1.", "convs.")) for k in weights)
    [info] = sessions.list_sessions()
    assert info.ok and info.id == res.session_id and info.status == "finished" and info.step == 6
    assert info.final_loss == pytest.approx(losses_of(res.path)[-1])
    assert not any(n.startswith(".") for n in os.listdir(root))  # no temp leftovers


def test_resume_continues_the_same_curve():
    full = train(iters=12, checkpoint_every=0)
    reference = losses_of(full.path)
    assert len(reference) == 12

    run = runs.start_session(demo_config(iterations=12), DEMO_GENERATOR_ID, device="cpu", checkpoint_every=5)

    def die_at_8(event):
        if isinstance(event, StepMetrics) and event.step == 8:
            raise Kill  # after step 8's metrics line; the last checkpoint is step 5

    with pytest.raises(Kill):
        runs.train_session(run, on_event=die_at_8, handle_signals=False)
    run.close()  # what the kernel does when a process dies
    assert sessions.list_sessions()[0].status == "interrupted"
    assert len(losses_of(run.path)) == 8

    resumed = runs.resume_session(run.session_id, device="cpu")
    assert resumed.trainer.step_count == 5
    assert len(losses_of(run.path)) == 5  # the steps after the checkpoint are dropped, to be redone
    with resumed:
        res = runs.train_session(resumed, handle_signals=False)
    assert res.status == "finished" and res.step == 12
    assert losses_of(run.path) == reference


def test_resume_extends_a_finished_session_and_refuses_without_more_iterations():
    res = train(iters=4)
    with pytest.raises(sessions.AlreadyFinished, match="--iters"):
        runs.resume_session(res.session_id, device="cpu")
    run = runs.resume_session(res.session_id, device="cpu", iterations=6)
    with run:
        out = runs.train_session(run, handle_signals=False)
    assert out.step == 6 and [r.step for r in sessions.read_metrics(res.path)] == list(range(1, 7))
    assert sessions.load(res.session_id).iterations == 6


def test_fork_from_weights_and_from_base():
    parent = train(iters=4, name="parent")
    adapted = sessions.adapted_weights(sessions.load(parent.session_id))
    run = runs.fork_session(parent.session_id, {"target": "a green image", "iterations": 3})
    with run:
        # The fork starts from the parent's adapted weights, which are also its frozen reference.
        frozen = dict(run.trainer.frozen.named_parameters())
        for k, v in adapted.items():
            assert frozen[k].detach().equal(v)
        runs.train_session(run, handle_signals=False)
    info = sessions.load(run.session_id)
    assert info.target == "a green image" and info.data["parent"]["id"] == parent.session_id
    assert (info.path / "init.safetensors").is_file()
    # A fork outlives its parent: it carries its starting weights.
    sessions.delete(parent.session_id)
    again = runs.resume_session(run.session_id, device="cpu", iterations=4)
    again.close()

    base_fork = runs.fork_session(run.session_id, {"iterations": 2}, from_weights=False, name="from base")
    base_fork.close()
    assert sessions.start_weights(sessions.load(base_fork.session_id)) == {}


@pytest.mark.parametrize("damage", ["broken-json", "missing-weights", "foreign-schema", "no-json", "not-object"])
def test_damaged_sessions_are_listed_with_a_reason_and_deletable(damage):
    good = bare_session("good")
    bad = bare_session("bad")
    path = sessions.session_path(bad)
    if damage == "broken-json":
        (path / "session.json").write_text('{"schema_version": 1, "na')
    elif damage == "missing-weights":
        (path / "checkpoint.safetensors").unlink()
    elif damage == "foreign-schema":
        data = json.loads((path / "session.json").read_text())
        (path / "session.json").write_text(json.dumps({**data, "schema_version": 99}))
    elif damage == "no-json":
        (path / "session.json").unlink()
    else:
        (path / "session.json").write_text("[1, 2]")
    listed = {i.id: i for i in sessions.list_sessions()}
    assert listed[good].ok
    assert listed[bad].status == "damaged" and listed[bad].damaged
    expect = {
        "broken-json": "not valid JSON",
        "missing-weights": "missing",
        "foreign-schema": "schema version 99",
        "no-json": "missing",
        "not-object": "JSON object",
    }[damage]
    assert expect in listed[bad].damaged
    with pytest.raises(sessions.DamagedSession, match="delete"):
        sessions.load(bad)
    with pytest.raises(sessions.DamagedSession):
        runs.resume_session(bad)
    sessions.delete(bad)
    assert [i.id for i in sessions.list_sessions()] == [good]


def test_truncated_checkpoint_is_damaged_in_the_list_and_on_resume():
    res = train(iters=3)
    ckpt = res.path / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert "truncated" in sessions.list_sessions()[0].damaged  # from the header alone: the list stays fast
    with pytest.raises(sessions.DamagedSession, match="truncated"):
        runs.resume_session(res.session_id)


@pytest.mark.parametrize("name", ["../../escape", "a/b\\c", "..", "/etc/passwd", "\x00evil\n", "日本 語"])
def test_names_never_leave_the_root(name):
    root = paths.sessions_dir()
    sid = bare_session(name)
    path = sessions.session_path(sid)
    assert path.parent == root and path.is_dir()
    assert "/" not in sid and "\\" not in sid and ".." not in sid.split("-")
    info = sessions.rename(sid, name if name.strip("\x00\n") else "x")
    assert info.path == path and sorted(os.listdir(root)) == [sid]


@pytest.mark.parametrize("ref", ["..", "../x", "a/b", "/tmp", ".hidden", ""])
def test_refs_with_separators_are_refused(ref):
    bare_session("x")
    with pytest.raises(sessions.SessionNotFound):
        sessions.resolve(ref)
    with pytest.raises(sessions.SessionNotFound):
        sessions.delete(ref)


def test_prefix_and_ambiguity():
    a = bare_session("alpha")
    b = bare_session("beta")
    assert sessions.resolve(a).name == a
    assert sessions.resolve(a[:-2]).name == a
    assert sessions.resolve("beta").name == b  # display names work when unique
    common = os.path.commonprefix([a, b])
    if common:
        with pytest.raises(sessions.AmbiguousSession) as exc:
            sessions.resolve(common)
        assert set(exc.value.candidates) == {a, b}
    with pytest.raises(sessions.SessionNotFound, match="sessions list"):
        sessions.resolve("nope")


def test_two_writers_on_one_session_the_second_is_refused():
    with sessions.create(fresh_state(demo_config()), {"id": DEMO_GENERATOR_ID}, name="busy") as writer:
        for op in (
            lambda: sessions.open_writer(writer.id),
            lambda: runs.resume_session(writer.id),
            lambda: sessions.delete(writer.id),
            lambda: sessions.rename(writer.id, "other"),
        ):
            with pytest.raises(sessions.SessionLocked, match=f"process {os.getpid()}"):
                op()
        assert sessions.list_sessions()[0].status == "running"
    sessions.rename(writer.id, "free now")
    w2, state = sessions.open_writer(writer.id)
    assert state["step"] == 0
    w2.close()


def test_full_disk_keeps_the_previous_checkpoint(monkeypatch):
    run = runs.start_session(demo_config(iterations=6), DEMO_GENERATOR_ID, device="cpu", checkpoint_every=2)
    events = []
    real = atomic._write_all

    def full_disk(fd, data):
        real(fd, bytes(data)[: len(data) // 2])  # half written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    def fill_disk_after_step_2(event):
        events.append(event)
        if isinstance(event, CheckpointSaved) and event.step == 2:
            monkeypatch.setattr(atomic, "_write_all", full_disk)

    with run:
        res = runs.train_session(run, on_event=fill_disk_after_step_2, handle_signals=False)
        before_json = (run.path / "session.json").read_text()
    assert res.status == "finished" and res.step == 6
    assert res.checkpoint_error and "disk is full" in res.checkpoint_error and "intact" in res.checkpoint_error
    errors = [e.text for e in events if isinstance(e, LogMessage) and e.level == "error"]
    assert any("step 2" in t and "intact" in t for t in errors)
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [2]
    assert not [n for n in os.listdir(run.path) if atomic.TEMP_MARK in n]
    monkeypatch.setattr(atomic, "_write_all", real)
    state = sessions.read_state(run.path / "checkpoint.safetensors")
    assert state["step"] == 2 and json.loads(before_json)["step"] == 2
    resumed = runs.resume_session(run.session_id, device="cpu")
    assert resumed.trainer.step_count == 2
    resumed.close()


def test_atomic_write_failure_leaves_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    atomic.write_json(target, {"a": 1})

    def boom(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_all", boom)
    with pytest.raises(OSError):
        atomic.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [n for n in os.listdir(tmp_path) if atomic.TEMP_MARK in n] == []


def test_metrics_reader_skips_torn_lines(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "losses": {}}\n{"step": 2, "los')
    assert [r.step for r in sessions.read_metrics(tmp_path)] == [1]


def test_bad_names_and_empty_root():
    assert sessions.list_sessions() == []
    with pytest.raises(sessions.InvalidName):
        sessions.clean_name("  \n\t ")
    assert sessions.slugify("../..") == "session"
    assert sessions.slugify("A Photo -> Sketch!") == "a-photo-sketch"


def test_saved_state_is_the_trainers_state_dict_through_one_codec():
    run = runs.start_session(demo_config(iterations=3), DEMO_GENERATOR_ID, device="cpu")
    with run:
        for _ in range(2):
            run.trainer.step()
        state = run.trainer.state_dict()
        back = sessions.decode_state(sessions.encode_state(state))
    assert set(back) == set(state) and back["step"] == 2 and back["config"] == state["config"]
    assert back["param_names"] == state["param_names"] and back["weights"].keys() == state["weights"].keys()
    assert all(back["weights"][k].equal(v) for k, v in state["weights"].items())
    assert back["optimizer"].keys() == state["optimizer"].keys()
    for i, slots in state["optimizer"].items():
        assert all(back["optimizer"][i][k].equal(v) for k, v in slots.items())
    assert back["scores"].equal(state["scores"]) and back["rng"].equal(state["rng"])
    with pytest.raises(sessions.DamagedSession, match="cannot be read"):
        sessions.decode_state(b"not a checkpoint")


def test_old_step0_checkpoint_still_resumes_like_a_fresh_run():
    """Sessions of the first schema-1 version saved an empty step-0 file ("optimizer_params": "null",
    no tensors); resuming one must give the same curve as a fresh run."""
    import safetensors.torch as st

    reference = losses_of(train(iters=6).path)
    sid = bare_session("old")
    path = sessions.session_path(sid)
    meta = {"format": "nada-tui-checkpoint", "schema_version": "1", "step": "0", "optimizer_params": "null"}
    meta["config"] = json.dumps(demo_config().to_dict())
    (path / "checkpoint.safetensors").write_bytes(st.save({}, metadata=meta))
    assert sessions.load(sid).ok
    run = runs.resume_session(sid, device="cpu")
    with run:
        assert run.trainer.step_count == 0
        runs.train_session(run, handle_signals=False)
    assert losses_of(path) == reference


def test_typed_record_parent_sweep_and_size():
    sweep = {"name": "lr-sweep", "values": {"lr": 0.01}}
    sid = bare_session("point", sweep=sweep)
    info = sessions.load(sid)
    assert isinstance(info.config, TrainConfig) and info.config.iterations == 6
    assert info.sweep == sweep and info.parent_id is None
    assert json.loads((info.path / "session.json").read_text())["sweep"] == sweep
    assert info.disk_usage() == sessions.disk_usage(info.path) > 0
    assert sessions.load(bare_session("plain")).sweep is None
    with pytest.raises(ValueError, match="sweep"):
        bare_session("bad", sweep={"values": {}})
    run = runs.start_session(
        demo_config(iterations=2), DEMO_GENERATOR_ID, device="cpu", sweep={"name": "s", "values": {"batch": 1}}
    )
    run.close()
    assert sessions.load(run.session_id).sweep == {"name": "s", "values": {"batch": 1}}
    fork = runs.fork_session(run.session_id, {"iterations": 3})
    fork.close()
    forked = sessions.load(fork.session_id)
    assert forked.parent_id == run.session_id and forked.sweep is None
