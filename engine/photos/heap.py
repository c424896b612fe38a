"""`reuse_freed_memory()`: keep the memory that tensors free inside the process while an inversion runs
on the CPU, so that the next step reuses it instead of faulting fresh pages in.

glibc's malloc gives every block above its mmap threshold (32 MiB at most) a fresh mapping and unmaps
it on free. An inversion step allocates and frees the same large activations and gradients every step,
so every page of them was faulted in and zeroed by the kernel again at every step. Tensors grow with
the batch and more of them cross the threshold: at 256 px a batch of 4 faulted 1.1 million pages per
photo and step (4.1 CPU s of system time per photo) against 0.33 million (1.1 s) for one photo alone,
which made a batch cost more per photo than one photo at a time.

Inside the block mmap is off (M_MMAP_MAX 0) and the heap is never trimmed (M_TRIM_THRESHOLD -1), so
freed blocks stay for the next step. (A threshold of 2**31 - 1 is not "never": at 1024 px a batch of 4
frees more than 2 GiB at the top of the heap, and it was trimmed and faulted in again, 197,000 pages per
photo and step.) On leaving the last such block, mmap is back on, with the thresholds that glibc's own
adaptive ones reach in a PyTorch process (32 MiB, trim above 64 MiB), and the memory kept goes back to
the system (malloc_trim). Only the main thread's heap obeys without limit: glibc serves a block over
64 MiB in another thread's arena by mmap all the same. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from typing import Any

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
DEFAULT_MMAP_MAX = 65536
MMAP_THRESHOLD_AFTER = 32 * 2**20  # glibc's largest adaptive threshold (64-bit)
TRIM_THRESHOLD_AFTER = 2 * MMAP_THRESHOLD_AFTER  # and the trim threshold it sets with it
NEVER_TRIM = -1  # mallopt(M_TRIM_THRESHOLD, -1): trimming off

_lock = threading.Lock()
_depth = 0


def _glibc() -> Any | None:
    """The C library when it is glibc (it has mallopt and malloc_trim), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") and hasattr(libc, "gnu_get_libc_version")):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


_LIBC = _glibc()


@contextlib.contextmanager
def reuse_freed_memory(enabled: bool = True) -> Iterator[None]:
    """Freed memory stays in the process for the block (see the module docstring); nests, any thread."""
    global _depth
    if not enabled or _LIBC is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _LIBC.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM)
            _LIBC.mallopt(M_MMAP_MAX, 0)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _LIBC.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_AFTER)
                _LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_AFTER)
                _LIBC.malloc_trim(0)
