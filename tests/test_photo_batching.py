"""Photo inversion in batches: a photo's code does not depend on what it is batched with (LPIPS as the
distance), LPIPS against the photos' features computed once is LPIPS, and on the CPU an inversion's
freed memory is reused instead of being faulted in afresh at every step (what made a batch cost more
per photo than one photo alone)."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest
import torch

from engine.photos.heap import _LIBC
from engine.photos.inversion import invert_batch
from engine.photos.perceptual import LpipsVgg
from engine.stylegan2 import Generator, GeneratorConfig


@pytest.fixture(scope="module")
def lpips_random():
    with torch.random.fork_rng():
        torch.manual_seed(1)
        return LpipsVgg(None)  # random VGG16: what is checked does not depend on the weights


@pytest.mark.parametrize("size", [64, 320])  # 320: downsampled to 256 first
def test_lpips_against_features_computed_once_is_lpips(lpips_random, size, one_thread):
    gen = torch.Generator().manual_seed(size)
    x = torch.rand(2, 3, size, size, generator=gen) * 2 - 1
    y = torch.rand(2, 3, size, size, generator=gen) * 2 - 1
    expected = lpips_random.lpips(*(torch.nn.functional.interpolate(t, size=(256, 256), mode="area")
                                    if size > 256 else t for t in (x, y))).reshape(-1)
    feats = lpips_random.features(y)
    assert torch.allclose(lpips_random.compare(x, feats), expected, rtol=1e-5, atol=1e-7)
    assert torch.allclose(lpips_random(x, y), expected, rtol=1e-5, atol=1e-7)


def test_a_photo_inverts_to_the_same_code_alone_and_in_a_batch(lpips_random, one_thread):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        g = Generator(GeneratorConfig(size=32, style_dim=64, n_mlp=2, channel_multiplier=1,
                                      channels={4: 64, 8: 64, 16: 32, 32: 16}))
        g.set_latent_avg(None, samples=64)
        photos = g.render(torch.randn(2, 64)).detach().clamp(-1, 1)
    g.eval()
    together = invert_batch(g, photos, lpips_random, 6)
    for i in range(2):
        alone = invert_batch(g, photos[i : i + 1], lpips_random, 6)
        # Batched convolutions round differently, and Adam divides by the gradient's size, so codes agree
        # to about 1e-4 after 6 steps, not to float precision; a photo that leaked into another's loss
        # would move its code by about the learning rate (0.1 per step).
        assert torch.allclose(together.w_plus[i], alone.w_plus[0], atol=2e-3), \
            (together.w_plus[i] - alone.w_plus[0]).abs().max()
        assert together.losses[i] == pytest.approx(alone.losses[0], rel=1e-3)
    assert (together.w_plus[0] - together.w_plus[1]).abs().max() > 0.05  # each photo got its own code


# Run in a fresh process: how glibc serves a large block depends on what the process did before (free
# chunks left in the heap by earlier tests serve it without a fault).
HEAP_CHECK = """
import resource, torch
from engine.photos.heap import reuse_freed_memory
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
def faulted(allocations):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(allocations):
        t = torch.ones(64 * 2**20 // 4)  # 64 MiB
        del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
default = faulted(4)
with reuse_freed_memory():
    faulted(4)  # faulted in once
    inside = faulted(4)
    kept = resident()
print(default, inside, kept - resident())
"""


@pytest.mark.skipif(_LIBC is None or not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_inside_an_inversion_freed_memory_is_reused_not_faulted_in_again():
    out = subprocess.run([sys.executable, "-c", HEAP_CHECK], capture_output=True, text=True, check=True).stdout
    default, inside, given_back = map(int, out.split())
    pages = 64 * 2**20 // resource.getpagesize()
    assert default >= 3 * pages  # by default glibc maps a block this large afresh each time
    assert inside < pages // 4  # inside the block the freed memory serves the next allocation
    assert given_back >= 48 * 2**20  # afterwards the memory kept goes back to the system


def test_on_a_cpu_up_to_4_photos_go_together_as_memory_allows(monkeypatch):
    from engine import device as devices
    from engine.photos import invert

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "available_bytes", lambda device: 64 * 2**30)
    assert invert.default_batch(256, cpu) == 4 and invert.default_batch(1024, cpu) == 4
    monkeypatch.setattr(devices, "available_bytes", lambda device: 4 * 2**30)  # 1024 px: about 1.75 GiB a photo
    assert invert.default_batch(1024, cpu) == 1
    monkeypatch.setattr(devices, "available_bytes", lambda device: None)  # unreadable: one at a time
    assert invert.default_batch(256, cpu) == 1
