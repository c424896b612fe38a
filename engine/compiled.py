"""The `compile` setting: a training step's fixed-shape parts captured on CUDA (torch.compile, CUDA graphs).

In eager mode every aten op is a kernel launch (engine.opcount counts them). Two parts of a step have
the same shapes every step and are worth capturing:
- the frozen render: batch-sized codes and noise in, an image out, no gradients, weights that never change;
- each CLIP image encoder: the frozen and trained images together (2 x batch), gradients to the input.
The trained render stays eager: selection changes which of its layers need gradients, and so what
autograd records (a recompile each time). Layer selection stays eager too (its micro-batch size varies).

    off      eager (the default)
    compile  torch.compile (inductor): fused kernels, far fewer launches; the first step compiles
    graphs   torch.compile with mode="reduce-overhead": the compiled kernels also run as CUDA graphs,
             one replay per part per step

CUDA only: on any other device a non-off value is refused (ConfigError) before anything runs; CPU steps
are what they always were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from engine.config import COMPILE_MODES, ConfigError
from engine.stylegan2 import Generator

ImageEncoder = Callable[[Tensor], Tensor]


def check_compile(mode: str, device: torch.device) -> None:
    """Refuse a `compile` value this device cannot run, with what to use instead."""
    if mode not in COMPILE_MODES:
        raise ConfigError("compile", f"got {mode!r}; allowed: {', '.join(COMPILE_MODES)}")
    if mode != "off" and device.type != "cuda":
        raise ConfigError(
            "compile", f"compile = {mode} runs on CUDA only; on {device.type} use compile = off (the default)"
        )


class StepParts:
    """The frozen render and the CLIP image encoders of a Trainer, compiled per `mode` ("off": eager).

    `backend`: torch.compile's; the tests trace with "eager" on the CPU (`fullgraph`: no graph breaks).
    The trainer checks the device first (check_compile).
    """

    def __init__(self, mode: str, frozen: Generator, backend: str = "inductor", fullgraph: bool = False) -> None:
        if mode not in COMPILE_MODES:
            raise ConfigError("compile", f"got {mode!r}; allowed: {', '.join(COMPILE_MODES)}")
        self.mode = mode
        self._frozen = frozen
        self._options = {"backend": backend, "fullgraph": fullgraph, "dynamic": False}
        if mode == "graphs":
            self._options["mode"] = "reduce-overhead"
        self._render = self._compile(self._eager_render)
        self._encoders: dict[str, ImageEncoder] = {}

    def _compile(self, fn: Callable) -> Callable:
        return torch.compile(fn, **self._options) if self.on else fn

    @property
    def on(self) -> bool:
        return self.mode != "off"

    def begin_step(self) -> None:
        """Call at the start of each step: CUDA graph replays may then reuse the last step's outputs."""
        if self.mode == "graphs":
            torch.compiler.cudagraph_mark_step_begin()

    def _eager_render(self, w_plus: Tensor, noise: Sequence[Tensor]) -> Tensor:
        with torch.no_grad():
            return self._frozen.split_synthesis(w_plus, noise)

    def frozen_render(self, w_plus: Tensor, noise: Sequence[Tensor]) -> Tensor:
        """The frozen generator's split render of `w_plus` with `noise` (a list of maps), no gradients."""
        return self._render(w_plus, list(noise))

    def encoder(self, name: str, encode: ImageEncoder) -> ImageEncoder:
        """`encode` (a ClipEncoder's encode_images), compiled once per CLIP model name when on."""
        if not self.on:
            return encode
        if name not in self._encoders:
            self._encoders[name] = self._compile(encode)
        return self._encoders[name]
