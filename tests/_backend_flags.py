"""The process-wide torch backend flags a test may change (a CUDA Trainer sets TF32 and cuDNN autotuning
for its precision; precision tests switch TF32 off), saved and put back, so no test changes another's."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def backend_flags_kept() -> Iterator[None]:
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic,
             torch.get_float32_matmul_precision())
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic = saved[:4]
        torch.set_float32_matmul_precision(saved[4])
