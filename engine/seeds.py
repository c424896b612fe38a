"""Per-step random seeds derived from the run's seed: one independent, stable stream per purpose.

`stream_seed(seed, step, "mixing")` is a 63-bit integer from a hash of (seed, step, stream name), so
every seed a run accepts (0 to 2**63 - 1) gives a valid generator seed, the value is the same on every
platform and Python version, and two purposes (the mixing coin, layer selection, ...) never share draws:
changing how one of them draws (a larger selection batch, another interval) leaves the others alone.
"""

from __future__ import annotations

import hashlib

SEED_BITS = 63  # torch.Generator.manual_seed takes any of these


def stream_seed(seed: int, step: int, stream: str) -> int:
    """A seed in [0, 2**63) for `stream` at `step` of a run seeded `seed`."""
    digest = hashlib.blake2b(f"{int(seed)}/{int(step)}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> (64 - SEED_BITS)
