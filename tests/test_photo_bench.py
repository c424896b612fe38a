"""`python -m engine.bench --photos` prints one row per size and batch, from steps of one inversion
after its warm-up (what a 500-step inversion costs per step), with per-photo figures that are the step's
divided by the batch. Timings themselves are not checked: performance is measured, never asserted."""

from __future__ import annotations

import pytest

from engine.photos import bench


def test_the_photo_bench_prints_a_row_per_size_and_batch(capsys):
    assert bench.main(["--sizes", "32", "--batches", "1", "2", "--steps", "2", "--total", "100", "--threads", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "2 steps timed per case after 2, extrapolated to 100" in out[0]
    rows = [line.split() for line in out[2:]]
    assert [(r[0], r[1]) for r in rows] == [("32", "1"), ("32", "2")]
    for _size, batch, wall, cpu, per_photo, per_photo_total, cpu_total in rows:
        wall, cpu, per_photo = float(wall), float(cpu), float(per_photo)
        assert wall > 0 and cpu > 0
        assert per_photo == pytest.approx(wall / int(batch), abs=2e-3)
        assert float(per_photo_total) == pytest.approx(per_photo * 100, abs=0.2)
        assert float(cpu_total) == pytest.approx(cpu / int(batch) * 100, abs=0.2)
