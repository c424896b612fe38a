"""Downloads against a local HTTP server on 127.0.0.1 (no internet): progress, resume, checks, offline."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from _models_server import Behaviour, free_port, serve, silent_server

from engine import paths
from engine.download import DownloadError, DownloadProgress, download, mirrored_url

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_with_progress_and_checksum(tmp_path):
    b = Behaviour(files={"model.pkl": PAYLOAD})
    events: list[DownloadProgress] = []
    with serve(b) as base:
        out = download(
            f"{base}/model.pkl",
            tmp_path / "m" / "model.pkl",
            sha256=SHA,
            expected_size=len(PAYLOAD),
            progress=events.append,
            name="tiny",
        )
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "m" / "model.pkl.part").exists()
    assert events and events[-1].done_bytes == len(PAYLOAD) and events[-1].total_bytes == len(PAYLOAD)
    assert all(e.name == "tiny" for e in events)
    assert [e.done_bytes for e in events] == sorted(e.done_bytes for e in events)
    assert events[-1].bytes_per_s > 0 and events[-1].fraction == 1.0


def test_dropped_connection_is_resumed_with_range(tmp_path):
    b = Behaviour(files={"model.pkl": PAYLOAD}, drop_after=1_000_000, drops_left=1)
    with serve(b) as base:
        out = download(f"{base}/model.pkl", tmp_path / "model.pkl", sha256=SHA, timeout=5)
    assert out.read_bytes() == PAYLOAD
    assert b.requests[0][1] is None
    assert b.requests[1][1] == "bytes=1000000-"


def test_partial_file_is_kept_and_resumed_next_time(tmp_path):
    b = Behaviour(files={"model.pkl": PAYLOAD}, drop_after=700_000, drops_left=1)
    dest = tmp_path / "model.pkl"
    with serve(b) as base:
        with pytest.raises(DownloadError, match="partial file .* is kept"):
            download(f"{base}/model.pkl", dest, retries=0, timeout=5)
        part = tmp_path / "model.pkl.part"
        assert part.stat().st_size == 700_000 and not dest.exists()
        download(f"{base}/model.pkl", dest, sha256=SHA, timeout=5)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert b.requests[-1][1] == "bytes=700000-"


def test_server_that_ignores_range_restarts_cleanly(tmp_path):
    (tmp_path / "model.pkl.part").write_bytes(b"garbage" * 10)
    b = Behaviour(files={"model.pkl": PAYLOAD}, honour_range=False)
    with serve(b) as base:
        out = download(f"{base}/model.pkl", tmp_path / "model.pkl", sha256=SHA)
    assert out.read_bytes() == PAYLOAD


def test_wrong_checksum_is_rejected_and_removed(tmp_path):
    b = Behaviour(files={"model.pkl": PAYLOAD})
    dest = tmp_path / "model.pkl"
    with serve(b) as base, pytest.raises(DownloadError, match="corrupt: sha256") as err:
        download(f"{base}/model.pkl", dest, sha256="0" * 64)
    assert "removed" in str(err.value)
    assert not dest.exists() and not (tmp_path / "model.pkl.part").exists()


def test_wrong_size_is_rejected_and_removed(tmp_path):
    b = Behaviour(files={"model.pkl": PAYLOAD})
    dest = tmp_path / "model.pkl"
    with serve(b) as base, pytest.raises(DownloadError, match="expected 5"):
        download(f"{base}/model.pkl", dest, expected_size=5)
    assert not dest.exists() and not (tmp_path / "model.pkl.part").exists()


def test_offline_gives_where_to_put_the_file(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/models/stylegan2-church-config-f.pkl"
    dest = tmp_path / "generators" / "stylegan2-church-config-f.pkl"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(url, dest, timeout=3)
    assert time.monotonic() - t0 < 3
    msg = str(err.value)
    assert url in msg and str(dest) in msg and "NADA_TUI_MIRROR" in msg
    assert "connection refused" in msg
    assert not dest.exists()


def test_stalled_server_times_out(tmp_path):
    with silent_server() as server:
        t0 = time.monotonic()
        with pytest.raises(DownloadError, match="timeout") as err:
            download(f"{server.url}/x.pkl", tmp_path / "x.pkl", timeout=0.5)
        assert time.monotonic() - t0 < 3
    assert str(tmp_path / "x.pkl") in str(err.value)


def test_http_error_is_reported(tmp_path):
    with serve(Behaviour()) as base, pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{base}/missing.pkl", tmp_path / "missing.pkl")


def test_second_request_uses_the_cache(tmp_path):
    b = Behaviour(files={"model.pkl": PAYLOAD})
    dest = tmp_path / "model.pkl"
    with serve(b) as base:
        download(f"{base}/model.pkl", dest, sha256=SHA)
    n = len(b.requests)
    # The server is gone: a second request must not touch the network.
    t0 = time.monotonic()
    assert download(f"{base}/model.pkl", dest, sha256=SHA, timeout=2) == dest
    assert time.monotonic() - t0 < 0.5 and len(b.requests) == n


def test_tests_never_reach_the_internet(tmp_path):
    with pytest.raises(DownloadError, match="refusing to contact nvlabs-fi-cdn.nvidia.com"):
        download("https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/x.pkl", tmp_path / "x.pkl")


def test_mirror_from_env_config_and_directory(tmp_path, monkeypatch):
    url = "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-church-config-f.pkl"
    assert mirrored_url(url) == url
    cfg = paths.config_file()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text('[models]\nmirror = "http://mirror.local/nada/"\n')
    assert mirrored_url(url) == "http://mirror.local/nada/stylegan2-church-config-f.pkl"
    monkeypatch.setenv("NADA_TUI_MIRROR", "http://127.0.0.1:8000/files")
    assert mirrored_url(url) == "http://127.0.0.1:8000/files/stylegan2-church-config-f.pkl"
    # A plain directory works as a mirror too (shared file system on an air-gapped cluster).
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "model.pkl").write_bytes(PAYLOAD)
    monkeypatch.setenv("NADA_TUI_MIRROR", str(mirror))
    out = download(mirrored_url("https://example.org/a/model.pkl"), tmp_path / "got" / "model.pkl", sha256=SHA)
    assert out.read_bytes() == PAYLOAD


def test_broken_config_file_does_not_stop_downloads():
    cfg = paths.config_file()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("[models\nmirror = ")
    assert mirrored_url("https://a.b/c/d.pkl") == "https://a.b/c/d.pkl"
