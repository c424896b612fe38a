"""Every style of a split render from one matmul: the modulation linears of all layers, batched.

Each modulated conv maps its W+ code through its own small linear layer (its "modulation"). Done layer
by layer that is ~3 ops forward and ~5 backward for each of the 26 layers of a 1024 px generator, each a
kernel launch on a GPU. Here all the linears' weights are stacked into one matrix, every W+ code is
multiplied by all of it in one `addmm`, and each layer's block is gathered with one `index_select`. The
extra multiply-adds (every code times every layer's rows, n_latent times the exact count) are about
0.4 GFLOP at 1024 px: nothing on a GPU, tens of milliseconds on a CPU step of seconds.

The stacked matrix already carries each linear's equalised-lr scale and its conv's weight scale, so the
layers get `SplitStyle`s ready to multiply their inputs. A generator whose modulations all have
requires_grad False (the frozen one) stacks them once for the run (engine.modconv.derived).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from engine.modconv import ModulatedConv2d, SplitStyle, derived


def _constant(owner: nn.Module, name: str, device: torch.device, values: Sequence[float] | Sequence[int],
              dtype: torch.dtype) -> Tensor:
    """A tensor of fixed `values` on `device`, made once per device (in the graph under torch.compile)."""
    if torch.compiler.is_compiling():
        return torch.tensor(values, dtype=dtype, device=device)
    cache: dict = owner.__dict__.setdefault("_constants", {})
    key = (name, device)
    if (t := cache.get(key)) is None:
        with torch.inference_mode(False), torch.no_grad():
            t = cache[key] = torch.tensor(values, dtype=dtype, device=device)
    return t


def split_styles(owner: nn.Module, layers: Sequence[tuple[ModulatedConv2d, int]], w_plus: Tensor) -> list[SplitStyle]:
    """The SplitStyle of each (layer, W+ index) in `layers`, from codes `w_plus` [N, n_latent, D].

    In fp32 with autocast off: the styles are tiny, and bf16 rounding here would differ between layers
    that share a code. `owner` keeps the stacked weights of frozen layers (and the index tables).
    """
    n, n_latent, dim = w_plus.shape
    device = w_plus.device
    mods = [conv.modulation for conv, _ in layers]
    if any(m.lr_mul != 1 or m.activate for m in mods):
        raise ValueError("split_styles stacks plain modulation layers (lr_mul 1, no activation)")
    sizes = [conv.in_ch for conv, _ in layers]
    total = sum(sizes)
    row_scale = _constant(owner, "style_row_scale", device,
                          [m.scale * conv.scale for (conv, _), m in zip(layers, mods, strict=True)
                           for _ in range(conv.in_ch)], torch.float32).view(-1, 1)
    bias_scale = _constant(owner, "style_bias_scale", device,
                           [conv.scale for conv, _ in layers for _ in range(conv.in_ch)], torch.float32)
    # Row r of the stacked output belongs to layer l(r) and is read from code index(l(r)).
    gather = _constant(owner, "style_gather", device,
                       [i * total + r for r, i in enumerate(i for (conv, i) in layers for _ in range(conv.in_ch))],
                       torch.int64)
    weights = [m.weight for m in mods]
    biases = [m.bias for m in mods]
    with torch.autocast(device.type, enabled=False):
        weight_t = derived(owner, "style_weight_t", lambda: (torch.cat(weights) * row_scale).t(), *weights)
        bias = derived(owner, "style_bias", lambda: torch.cat(biases) * bias_scale, *biases)
        every = torch.addmm(bias, w_plus.float().reshape(n * n_latent, dim), weight_t)  # [N * n_latent, total]
        styles = every.view(n, n_latent * total).index_select(1, gather)  # [N, total]
        scales = styles.view(n, total, 1, 1).split(sizes, 1)
        squares = styles.square().split(sizes, 1)
    return [SplitStyle(s, q) for s, q in zip(scales, squares, strict=True)]
