"""Videos: `sessions export --only video` writes MP4s that ffmpeg decodes back (frames counted, sizes and
content checked), the time-lapse at the saved previews' resolution, WebP/GIF when asked, and clear
messages with nothing written for bad settings, a read-only folder and a full disk."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from _full_disk import half_then_full, read_only_under
from _pilot import RecordingApp, to_sessions, wait_until
from _sessions import demo_session
from PIL import Image
from textual.widgets import Label

from engine import atomic, export, sessions
from engine.sampling import render_seeds, to_pil
from engine.video import VideoSettings, label_frame
from nada_tui.__main__ import main
from nada_tui.screens.dialogs import FormDialog
from nada_tui.widgets.export_progress import ExportProgress


@pytest.fixture
def session_id(small_demo, one_thread) -> str:
    return demo_session(iterations=4)  # previews at steps 2 and 4, seeds 0 and 1, 32 px


def decode(path) -> tuple[tuple[int, int], list[np.ndarray]]:
    """(width, height), frames: the file read back by ffmpeg's own H.264 decoder (run here directly:
    imageio_ffmpeg.read_frames can leave its pipes open when ffmpeg exits first)."""
    import imageio_ffmpeg

    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-f", "rawvideo",
                           "-pix_fmt", "rgb24", "-"], capture_output=True, timeout=300, check=True)
    stream = re.search(r"Video: (\w+).*?, (\d+)x(\d+)", done.stderr.decode())
    assert stream is not None and stream.group(1) == "h264", done.stderr.decode()
    w, h = int(stream.group(2)), int(stream.group(3))
    data = np.frombuffer(done.stdout, np.uint8)
    assert data.size % (w * h * 3) == 0
    return (w, h), [f.astype(int) for f in data.reshape(-1, h, w, 3)]


def halved(frame: np.ndarray) -> np.ndarray:
    """A frame of 2x-enlarged images back at 1x (each 2x2 block's mean: H.264 keeps colour per 2x2 block)."""
    h, w, _ = frame.shape
    return frame.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))


def test_walk_and_strength_mp4s_decode_with_the_right_frames(session_id, tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["sessions", "export", session_id, "--only", "walk", "--only", "strength", "--seconds", "1",
                 "--fps", "24", "--size", "64", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    walk, sweep = out / f"{session_id}-walk.mp4", out / f"{session_id}-strength.mp4"
    assert f"wrote {walk}" in printed and f"wrote {sweep}" in printed
    assert walk.read_bytes()[4:8] == b"ftyp"  # an MP4 container
    size, frames = decode(walk)
    assert len(frames) == 24 and size == (128, 76)  # frozen | adapted, 64 px each, under a 12 px label band
    frames = [halved(f[12:]) for f in frames]  # the 32 px renders, enlarged 2x
    start, adapted = export.session_generator(session_id, 0.0)[1], export.session_generator(session_id)[1]
    t = sessions.load(session_id).config.sample_truncation
    frozen0, adapted0 = (np.asarray(to_pil(render_seeds(g, [0], t))[0], dtype=int) for g in (start, adapted))
    # the walk starts on the first preview seed: frozen on the left, adapted on the right (H.264 is lossy)
    assert np.abs(frames[0][:, :32] - frozen0).mean() < 3 and np.abs(frames[0][:, 32:] - adapted0).mean() < 3
    assert np.abs(frames[0][:, :32] - frames[12][:, :32]).mean() > 6  # it moves
    assert np.abs(frames[0] - frames[-1]).mean() < np.abs(frames[0] - frames[12]).mean()  # and loops back
    size, frames = decode(sweep)
    assert len(frames) == 24 and size == (128, 76)  # seeds 0 and 1 in a row
    frames = [halved(f[12:]) for f in frames]
    both = [np.hstack([np.asarray(im, dtype=int) for im in to_pil(render_seeds(g, [0, 1], t))])
            for g in (start, adapted)]
    assert np.abs(frames[0] - both[0]).mean() < 3 and np.abs(frames[-1] - both[1]).mean() < 3
    assert np.abs(both[0] - both[1]).mean() > 12  # and the two ends really differ


def test_timelapse_mp4_is_at_the_previews_resolution(session_id, tmp_path):
    info = sessions.load(session_id)
    samples = sessions.samples(info.path)
    assert len(samples) == 2
    paths = export.export_videos(info, tmp_path, ["timelapse"], VideoSettings(seconds=1, fps=24))
    size, frames = decode(paths["timelapse"])
    with Image.open(samples[-1]) as last:
        preview = last.convert("RGB")
    k = 1024 // preview.width  # the stored 64 px grid, each pixel a k x k block: nothing shrunk
    expected = np.asarray(label_frame(preview.resize((preview.width * k, preview.height * k), Image.NEAREST),
                                      "step 4"), dtype=int)
    assert size == (expected.shape[1], expected.shape[0]) == (1024, 1072)
    assert len(frames) == 24  # two previews, each held for half of the second
    assert np.abs(frames[-1] - expected).mean() < 3
    assert np.abs(frames[0][:48] - frames[-1][:48]).mean() > 0.5  # "step 2" is not "step 4"


def test_webp_and_gif_when_asked(session_id, tmp_path):
    info = sessions.load(session_id)
    gif = export.export_videos(info, tmp_path, ["strength"], VideoSettings(seconds=1, fps=10, size=32, format="gif"))
    with Image.open(gif["strength"]) as anim:
        assert anim.format == "GIF" and anim.n_frames == 10 and anim.info["duration"] == 100
    webp = export.export_videos(info, tmp_path, ["timelapse"], VideoSettings(format="webp"))
    with Image.open(webp["timelapse"]) as anim:
        assert anim.format == "WEBP" and anim.n_frames == 2
        anim.seek(1)
        anim.load()
        assert anim.info["duration"] == 4000  # the 8 s default shared by the two previews


def test_bad_settings_read_only_and_full_folders(session_id, tmp_path, monkeypatch, capsys):
    for flags, message in ((["--fps", "0"], "--fps must be from 1 to 60"),
                           (["--seconds", "0"], "--seconds must be from 0.5"),
                           (["--size", "5"], "--size must be from 16")):
        assert main(["sessions", "export", session_id, "--only", "video", "--out", str(tmp_path / "x"), *flags]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    ro = tmp_path / "ro"
    ro.mkdir()
    with monkeypatch.context() as m:
        m.setattr(atomic, "write_bytes", read_only_under(atomic.write_bytes, ro))
        assert main(["sessions", "export", session_id, "--only", "timelapse", "--seconds", "1", "--out", str(ro)]) == 1
    err = capsys.readouterr().err
    assert f"could not write {ro / (session_id + '-timelapse.mp4')}: Read-only file system" in err
    assert list(ro.iterdir()) == []
    full = tmp_path / "full"
    with monkeypatch.context() as m:
        m.setattr(atomic, "_write_all", half_then_full(atomic._write_all))
        assert main(["sessions", "export", session_id, "--only", "walk", "--seconds", "1", "--size", "32",
                     "--out", str(full)]) == 1
    assert "No space left on device; no partial file was left" in capsys.readouterr().err
    assert list(full.iterdir()) == []  # no half video, no temp file


# ----- the app: v on the sessions screen ------------------------------------------------------------------
async def test_sessions_screen_exports_videos_with_a_progress_bar(session_id, tmp_path, monkeypatch):
    app = RecordingApp()
    out = tmp_path / "videos"
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await to_sessions(pilot, 1)
        await pilot.press("v")
        assert isinstance(app.screen, FormDialog)
        await pilot.press("end", "ctrl+u", *str(out), "tab", "end", "ctrl+u", "0", "enter")
        assert "Seconds must be from 0.5 to 600" in str(app.screen.query_one("#dialog-error", Label).content)
        await pilot.press("end", "ctrl+u", "1", "enter")
        assert app.screen is screen
        bar = screen.query_one(ExportProgress)
        seen: list[str] = []

        def progressed() -> bool:
            if bar.display:
                seen.append(str(bar.query_one("#export-progress-text", Label).content))
            return any(title.startswith("Exported the videos") for _, title, _ in app.shown)

        await wait_until(progressed, "the videos", timeout=240)
        assert any(re.fullmatch(r"Exporting the (walk|strength|timelapse) video: frame \d+/\d+", s) for s in seen), seen
        assert not bar.display
        names = sorted(p.name for p in out.iterdir())
        assert names == sorted(f"{session_id}-{k}.mp4" for k in ("walk", "strength", "timelapse"))
        assert len(decode(out / f"{session_id}-walk.mp4")[1]) == 24

        # a read-only folder: a toast that says so, nothing written
        ro = tmp_path / "ro"
        ro.mkdir()
        monkeypatch.setattr(atomic, "write_bytes", read_only_under(atomic.write_bytes, ro))
        await pilot.press("v")
        await pilot.press("end", "ctrl+u", *str(ro), "tab", "end", "ctrl+u", "1", "enter")
        await wait_until(lambda: any(t == "Video export failed" for _, t, _ in app.shown), "the failure", 240)
        [(severity, _, message)] = [s for s in app.shown if s[1] == "Video export failed"]
        assert severity == "error" and "Read-only file system" in message and "choose another folder" in message.lower()
        assert list(ro.iterdir()) == [] and not bar.display
