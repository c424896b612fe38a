"""Shared fixtures: tiny models from fixed seeds, and a private home for every test."""

from __future__ import annotations

import os

import pytest
import torch
from _backend_flags import backend_flags_kept
from _home import use_home

from engine.config import DEMO_GENERATOR_ID
from engine.demo import colour_oracle, tiny_clip, tiny_generator

# One torch thread, here and in every process a test starts (CLI runs, sweep jobs): the tiny test models gain
# nothing from a second thread, and on a busy 2-core machine two OpenMP threads spin against the other jobs and
# run up to 30x slower (16 tiny-model steps: 6 s on one thread, 160 s on two, on the shared box).
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def backend_flags():
    """TF32 and cuDNN flags a test (or a CUDA Trainer it builds) changes are put back after it."""
    with backend_flags_kept():
        yield


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    """Every test gets empty XDG data/cache/config/state dirs: nothing touches the real home."""
    use_home(monkeypatch, tmp_path / "xdg")
    monkeypatch.setenv("NADA_TUI_OFFLINE_TESTS", "1")
    # The app's colour system comes from the terminal's variables (TERM, COLORTERM), which differ between a
    # developer's shell and CI: every test sees truecolor unless it sets another (the few-colours tests do).
    from textual import constants

    monkeypatch.setattr(constants, "COLOR_SYSTEM", "truecolor")
    return tmp_path / "xdg"


@pytest.fixture
def generator():
    """32 px, style 32, 32 channels, 2 mapping layers: a step takes ~30 ms on 2 CPU cores."""
    return tiny_generator(size=32, seed=0)


@pytest.fixture
def oracle():
    return colour_oracle()


@pytest.fixture
def clip_tiny():
    return tiny_clip(seed=0)


@pytest.fixture
def small_demo(monkeypatch):
    """The 32 px tiny generator stands in for the 64 px demo one: the same code paths, 4x cheaper."""
    from engine import demo

    # zoo builds demo generators from this table on every load
    monkeypatch.setitem(demo.DEMO_GENERATORS, DEMO_GENERATOR_ID, lambda: tiny_generator(size=32, seed=0))


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs on one torch thread (see the top of this file), whatever an earlier one set; tests
    that name this fixture get nothing more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
