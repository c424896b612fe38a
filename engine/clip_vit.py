"""openai-clip's vision transformer run with a third of the ops: the same weights, the same results to rounding.

`clip.model.VisionTransformer` runs through `nn.MultiheadAttention` (sequence-first, so its generic path:
~20 reshapes, transposes and linears per attention) and QuickGELU as three ops. On a GPU every op is a
kernel launch, and CLIP runs forward and backward every step. Here the activations stay one 2-D
[batch * tokens, width] matrix, every linear is one `addmm` against a weight transposed once (CLIP is
frozen: engine.modconv.derived keeps them), attention is one `scaled_dot_product_attention`, and
QuickGELU x * sigmoid(1.702 x) = silu(1.702 x) / 1.702 is one `silu` with both factors folded into the
weights around it. About 16 ops per block instead of ~48.

Models that are not a plain vision transformer (ResNet CLIPs, the colour oracle, wrappers) keep their own
`encode_image`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.modconv import derived

GELU_SCALE = 1.702  # QuickGELU's x * sigmoid(1.702 x)


def lean_visual(model: nn.Module) -> nn.Module | None:
    """The model's vision transformer when `encode_image_lean` can run it, else None."""
    visual = getattr(model, "visual", None)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if type(visual).__name__ != "VisionTransformer" or blocks is None or len(blocks) == 0:
        return None
    for block in blocks:
        attn = getattr(block, "attn", None)
        if not isinstance(attn, nn.MultiheadAttention) or attn.in_proj_weight is None or attn.in_proj_bias is None:
            return None
        if getattr(block, "attn_mask", None) is not None or type(block.mlp.gelu).__name__ != "QuickGELU":
            return None
    return visual


def _linear_t(owner: nn.Module, name: str, weight: Tensor, bias: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """(weight^T * scale, bias * scale), contiguous, kept while the weights do not change."""
    wt = derived(owner, name + ".w", lambda: (weight.t() * scale).contiguous(), weight)
    b = derived(owner, name + ".b", lambda: bias * scale, bias)
    return wt, b


def _block(block: nn.Module, x: Tensor, batch: int, tokens: int) -> Tensor:
    width = x.shape[1]
    attn: nn.MultiheadAttention = block.attn
    heads = attn.num_heads
    w_in, b_in = _linear_t(block, "in", attn.in_proj_weight, attn.in_proj_bias)
    w_out, b_out = _linear_t(block, "out", attn.out_proj.weight, attn.out_proj.bias)
    w_fc, b_fc = _linear_t(block, "fc", block.mlp.c_fc.weight, block.mlp.c_fc.bias, GELU_SCALE)
    w_proj = derived(block, "proj.w", lambda: (block.mlp.c_proj.weight.t() / GELU_SCALE).contiguous(),
                     block.mlp.c_proj.weight)
    ln1, ln2 = block.ln_1, block.ln_2

    h = F.layer_norm(x, (width,), ln1.weight, ln1.bias, ln1.eps)
    qkv = torch.addmm(b_in, h, w_in).view(batch, tokens, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch * tokens, width)
    x = x + torch.addmm(b_out, a, w_out)
    h = F.layer_norm(x, (width,), ln2.weight, ln2.bias, ln2.eps)
    h = F.silu(torch.addmm(b_fc, h, w_fc))
    return x + torch.addmm(block.mlp.c_proj.bias, h, w_proj)


def encode_image_lean(visual: nn.Module, images: Tensor) -> Tensor:
    """`visual(images)` (CLIP's image features, before normalisation) for a `lean_visual` model."""
    batch = images.shape[0]
    x = F.conv2d(images, visual.conv1.weight, stride=visual.conv1.stride)  # [N, width, grid, grid]
    width = x.shape[1]
    x = x.flatten(2).transpose(1, 2)
    cls = derived(visual, "cls", lambda: visual.class_embedding.view(1, 1, width), visual.class_embedding)
    x = torch.cat([cls.to(x.dtype).expand(batch, 1, width), x], 1) + visual.positional_embedding.to(x.dtype)
    tokens = x.shape[1]
    ln = visual.ln_pre
    x = F.layer_norm(x, (width,), ln.weight, ln.bias, ln.eps).view(batch * tokens, width)
    for block in visual.transformer.resblocks:
        x = _block(block, x, batch, tokens)
    ln = visual.ln_post
    x = F.layer_norm(x.view(batch, tokens, width)[:, 0], (width,), ln.weight, ln.bias, ln.eps)
    return x if visual.proj is None else x @ visual.proj
