"""Adaptive layer freezing: which StyledConvs train, and when that choice is remade.

Selection (as in StyleGAN-NADA): take W+ codes of a batch from the frozen mapping, optimise only the
codes for a few SGD steps on the global CLIP loss through the trainable generator, and score each W+
index by its mean |delta w|. The top k indices that feed a StyledConv are trained (index 0 -> conv1,
index i >= 1 -> convs[i - 1]; the reference maps i >= 2 to convs[i - 2], one layer early).

Schedule (our addition): selection runs at step 0 and every `interval` steps after; in between, the
trained set is the top k(t) of the last scores, with k(t) = max(min_k, k0 - t // falloff).

Steering (`LayerChoice`): the `layers` setting replaces selection by a fixed set (all, or the named sets
coarse / medium / fine, defined by the resolution a StyledConv works at so they mean the same at 256 and
1024 px, or explicit indices). A generator gives its per-index resolutions (`layer_resolutions()`);
StyleGAN3's are twice each layer's cutoff frequency, which the sets compare after rounding to the nearest
power of two (see engine.stylegan3). Pins: pinned-on indices always train and count toward k (k never drops
below their number: k_eff = max(k(t), |pin_on|)); pinned-off ones never train; selection fills the rest
of k_eff from the free indices by score. With a fixed set, the trained set is (set | pin_on) - pin_off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from engine import device as devices
from engine.config import ConfigError, format_indices, parse_indices
from engine.stylegan2 import Generator

# Named layer sets: (lowest, highest) resolution in px of the StyledConvs they train (None: no limit).
NAMED_SETS: dict[str, tuple[int, int | None]] = {"coarse": (4, 8), "medium": (16, 32), "fine": (64, None)}


@dataclass(frozen=True)
class LayerSchedule:
    k0: int  # 0 = no selection: every StyledConv trains
    interval: int = 10
    falloff: int = 0  # 0 = k stays k0
    min_k: int = 1

    def k_at(self, step: int) -> int:
        if self.k0 == 0 or self.falloff == 0:
            return self.k0
        return max(min(self.min_k, self.k0), self.k0 - step // self.falloff)

    def selects_at(self, step: int) -> bool:
        return self.k0 > 0 and step % self.interval == 0

    def next_selection(self, step: int) -> int | None:
        """First step after `step` that reruns selection (None without selection)."""
        if self.k0 == 0:
            return None
        return (step // self.interval + 1) * self.interval


def rankable_indices(n_latent: int) -> int:
    """W+ indices that feed a StyledConv: all but the last, which feeds only the final to_rgb."""
    return n_latent - 1


def top_k(scores: Tensor, k: int, among: Iterable[int] | None = None) -> tuple[int, ...]:
    """The k best-scoring indices among those that feed a StyledConv (and are in `among`, when given),
    in ascending index order."""
    n = rankable_indices(len(scores))
    candidates = range(n) if among is None else sorted(i for i in set(among) if 0 <= i < n)
    values = scores.tolist()
    # Stable tie-break by index so identical scores give identical sets on every platform.
    order = sorted(candidates, key=lambda i: (-float(values[i]), i))
    return tuple(sorted(order[: max(0, k)]))


def index_resolution(index: int) -> int:
    """The resolution (px) of the StyledConv that W+ `index` feeds: conv1 works at 4 px, then every
    resolution from 8 px has two (the upsampling conv, index 2r - 1, and the one after it, index 2r)."""
    return 4 * 2 ** ((index + 1) // 2)


def generator_size(n_latent: int) -> int:
    return 2 ** ((n_latent + 2) // 2)


def named_layers(name: str, n_latent: int, resolutions: Sequence[float] | None = None) -> tuple[int, ...]:
    """The trainable W+ indices of a named set ("all", "coarse", "medium", "fine") at this size.
    `resolutions`: per index, as a generator's `layer_resolutions()` (default: StyleGAN2's)."""
    trainable = range(rankable_indices(n_latent))
    if name == "all":
        return tuple(trainable)
    lo, hi = NAMED_SETS[name]
    res = [index_resolution(i) for i in trainable] if resolutions is None else list(resolutions)
    band = [2 ** round(math.log2(r)) for r in res]
    return tuple(i for i in trainable if lo <= band[i] and (hi is None or band[i] <= hi))


def layer_sets_markdown(sizes: Iterable[int] = (64, 256, 512, 1024)) -> str:
    """The table of the named layer sets in docs/settings.md (a test checks the page holds exactly this)."""
    sizes = tuple(sizes)
    spans = {"coarse": "4-8 px", "medium": "16-32 px", "fine": "64 px and up", "all": "every StyledConv"}
    head = " | ".join(f"{s} px" + (" (demo)" if s == 64 else "") for s in sizes)
    rows = [f"| `layers` | StyledConvs at | {head} |", "|---|---|" + "---|" * len(sizes)]
    for name, span in spans.items():
        cells = " | ".join(format_indices(named_layers(name, 2 * s.bit_length() - 4)) or "(none)" for s in sizes)
        rows.append(f"| `{name}` | {span} | {cells} |")
    last = " | ".join(str(2 * s.bit_length() - 5) for s in sizes)
    rows.append(f"| never trained | only the final to_rgb | {last} |")
    return "\n".join(rows)


def _describe(n_latent: int, resolutions: Sequence[float] | None = None) -> str:
    last = n_latent - 1
    size = generator_size(n_latent) if resolutions is None else round(resolutions[-1])
    return (f"this {size} px generator trains W+ indices 0-{last - 1} "
            f"(w{last} feeds only the final to_rgb)")


@dataclass(frozen=True)
class LayerChoice:
    """What the settings `layers`, `pin_on` and `pin_off` mean for a generator with `n_latent` W+ indices."""

    n_latent: int
    fixed: tuple[int, ...] | None  # None: adaptive selection ("auto")
    pin_on: tuple[int, ...] = ()
    pin_off: tuple[int, ...] = ()

    @classmethod
    def from_settings(
        cls, layers: str, pin_on: Iterable[int], pin_off: Iterable[int], n_latent: int,
        resolutions: Sequence[float] | None = None,
    ) -> LayerChoice:
        """Check the settings against the generator; ConfigError names the setting that does not fit.
        `resolutions`: the generator's `layer_resolutions()` (default: StyleGAN2's for `n_latent`)."""
        n = rankable_indices(n_latent)
        describe = _describe(n_latent, resolutions)
        if layers == "auto":
            fixed = None
        elif layers in ("all", *NAMED_SETS):
            fixed = named_layers(layers, n_latent, resolutions)
            if not fixed:
                lo, hi = NAMED_SETS[layers]
                span = f"{lo}-{hi} px" if hi else f"{lo} px and up"
                raise ConfigError("layers", f"'{layers}' ({span}) is empty: {describe}, none of them at "
                                            f"{span}; use auto, all, another set or indices")
        else:
            fixed = parse_indices(layers)
            out = [i for i in fixed if i >= n]
            if out:
                raise ConfigError("layers", f"w{out[0]} is out of range: {describe}")
        for name, pins in (("pin_on", pin_on), ("pin_off", pin_off)):
            out = [i for i in pins if i >= n]
            if out:
                raise ConfigError(name, f"w{out[0]} is out of range: {describe}")
        choice = cls(n_latent, fixed, tuple(sorted(set(pin_on))), tuple(sorted(set(pin_off))))
        if not choice.candidates():
            raise ConfigError("pin_off", f"pinning off {format_indices(choice.pin_off)} leaves no layer to train "
                                         f"with layers={layers}")
        return choice

    @property
    def adaptive(self) -> bool:
        return self.fixed is None

    def candidates(self) -> tuple[int, ...]:
        """Every index that may train: the fixed set (or all) with pinned-on added, pinned-off removed."""
        base = set(range(rankable_indices(self.n_latent)) if self.fixed is None else self.fixed)
        return tuple(sorted((base | set(self.pin_on)) - set(self.pin_off)))

    def k_effective(self, k: int) -> int:
        """Adaptive k with the pins: pinned-on layers count toward k, which never drops below their
        number (0 stays 0: every layer)."""
        return 0 if k == 0 else max(k, len(self.pin_on))

    def trained(self, k: int, scores: Tensor | None) -> tuple[int, ...]:
        """The indices that train at a step whose schedule says k (ignored for a fixed set)."""
        if self.fixed is not None or k == 0:
            return self.candidates()
        if scores is None:
            raise RuntimeError("adaptive layer choice before the first selection")
        on, off = set(self.pin_on), set(self.pin_off)
        free = [i for i in range(rankable_indices(self.n_latent)) if i not in on and i not in off]
        return tuple(sorted(on | set(top_k(scores, self.k_effective(k) - len(on), free))))


@dataclass
class MicroBatching:
    """How many codes one micro-batch of the selection pass holds.

    `size` forces it (tests, the bench). Otherwise each micro-batch is as large as fits in SAFETY x the
    memory available at BACKWARD_FACTOR x `bytes_per_code` per code on CUDA (the backward pass holds at
    most the forward's graph again in activation gradients; on a CPU see CPU_BACKWARD_FACTOR).
    `bytes_per_code` is kept for the run: the shapes never change. On CUDA a first micro-batch of one
    code measures it (the bytes its graph holds after the forward; available: free plus cached but
    unused). On a CPU `probe_bytes_per_code` measures it once, from the tensors one code's forward saves
    for backward, without using its result (available: the system's MemAvailable). While the whole batch
    fits, a CPU pass is one batch, as it always was, so its scores do not change; only a pass that would
    not fit is split.
    """

    size: int | None = None
    bytes_per_code: float | None = None

    SAFETY = 0.8
    BACKWARD_FACTOR = 2.0
    # A CPU probe counts every tensor saved for backward, shared weights included, which already exceeds
    # what a code adds to the pass's peak: SG3-t at 256 px probed 1.81 GiB a code, and the whole pass of 8
    # peaked at 15.0 GiB of resident memory, models included (python -m engine.bench --families sg3-t).
    CPU_BACKWARD_FACTOR = 1.0

    def next_size(self, device: torch.device, remaining: int) -> int:
        if self.size is not None:
            return max(1, min(self.size, remaining))
        if self.bytes_per_code is None:
            return 1 if device.type == "cuda" else remaining
        available = devices.available_bytes(device)
        if available is None:
            return remaining
        factor = self.BACKWARD_FACTOR if device.type == "cuda" else self.CPU_BACKWARD_FACTOR
        fits = int(self.SAFETY * available / (factor * max(self.bytes_per_code, 1.0)))
        return max(1, min(fits, remaining))

    def needs_probe(self, device: torch.device) -> bool:
        """A CPU pass whose size is not forced and whose bytes per code are not known yet."""
        return device.type == "cpu" and self.size is None and self.bytes_per_code is None


def probe_bytes_per_code(generator: Generator, w_plus: Tensor, global_losses: Callable[[Tensor], Tensor],
                         noise: list[Tensor] | str) -> float:
    """Bytes that the forward pass of one code (`w_plus[:1]`) saves for its backward: the graph a selection
    pass holds per code. The generator's own tensors are not counted; the random state is left as it was."""
    own = {t.untyped_storage().data_ptr() for t in (*generator.parameters(), *generator.buffers())}
    saved: dict[int, int] = {}  # by storage: views of one tensor count once

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    code = w_plus[:1].detach().clone().requires_grad_(True)
    one_noise = noise if isinstance(noise, str) else [n[:1] for n in noise]
    with torch.random.fork_rng(devices=[]), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = global_losses(generator.synthesis(code, one_noise)).sum()
    del loss
    return float(sum(saved.values()))


def score_layers(
    generator: Generator,
    w: Tensor,
    global_losses: Callable[[Tensor], Tensor],
    iters: int = 1,
    lr: float = 0.01,
    noise: list[Tensor] | str = "const",
    batching: MicroBatching | None = None,
) -> Tensor:
    """Mean |delta w| per W+ index after `iters` SGD steps on the codes alone, on the mean over the batch
    of `global_losses` (one loss per image).

    The codes are optimised in micro-batches (`batching`) with the same scores as one pass: each image's
    loss depends on its own code only (per-sample modulation and noise, CLIP in eval mode, per-row
    normalisation), and every micro-batch divides its sum by the whole batch, so each code gets the same
    gradient. Noise "random" draws differ with the micro-batch size; the trainer passes a list.
    The generator's parameters are switched to requires_grad=False for the duration, so the backward
    pass computes gradients for the codes only: no weight gradients are built or kept.
    """
    batching = batching or MicroBatching()
    saved = [p.requires_grad for p in generator.parameters()]
    for p in generator.parameters():
        p.requires_grad_(False)
    try:
        w0 = generator.w_plus(w.detach())
        batch = w0.shape[0]
        if batching.needs_probe(w0.device):
            batching.bytes_per_code = probe_bytes_per_code(generator, w0, global_losses, noise)
        deltas, start = [], 0
        while start < batch:
            m = batching.next_size(w0.device, batch - start)
            part = slice(start, start + m)
            part_noise = noise if isinstance(noise, str) else [n[part] for n in noise]
            deltas.append(_sgd_codes(generator, w0[part], global_losses, iters, lr, part_noise, batch, batching))
            start += m
        return torch.cat(deltas).abs().mean(-1).mean(0)
    finally:
        for p, flag in zip(generator.parameters(), saved, strict=True):
            p.requires_grad_(flag)


def _sgd_codes(
    generator: Generator,
    w0: Tensor,
    global_losses: Callable[[Tensor], Tensor],
    iters: int,
    lr: float,
    noise: list[Tensor] | str,
    batch: int,
    batching: MicroBatching,
) -> Tensor:
    """delta w of one micro-batch after `iters` SGD steps; measures `bytes_per_code` when it is unknown."""
    measure = w0.device.type == "cuda" and batching.size is None and batching.bytes_per_code is None
    codes = w0.clone().requires_grad_(True)
    for _ in range(iters):
        before = torch.cuda.memory_allocated(w0.device) if measure else 0
        loss = global_losses(generator.synthesis(codes, noise)).sum() / batch
        if measure:
            batching.bytes_per_code = (torch.cuda.memory_allocated(w0.device) - before) / len(w0)
            measure = False
        (grad,) = torch.autograd.grad(loss, codes)
        with torch.no_grad():
            codes -= lr * grad
    return codes.detach() - w0
