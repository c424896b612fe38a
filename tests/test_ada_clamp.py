"""stylegan2-ada-pytorch's activation clamp: read from the pickle, kept in our files, applied where NVIDIA does.

The reference renderer below works on the pickle's own tensors (ada-pytorch names) with the formulas
of stylegan2-ada-pytorch's training/networks.py: non-fused modulated conv, noise, then
`bias_act` = bias, leaky ReLU, gain sqrt(2), clamp to +-conv_clamp in every synthesis layer; ToRGB =
modulated 1x1 conv, bias, clamp to +-conv_clamp, added to the FIR-upsampled image of the block below.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _models_fakes import ada_tensors_from_tf, busy_generator, tf_variables, write_ada_pickle, write_tf_pickle
from torch import Tensor

from engine.generator_files import CheckpointError, load_generator, save_rosinality
from engine.nvidia_pickles import PersistentObjStub, ada_conv_clamp
from engine.stylegan2 import Generator, GeneratorConfig, modconv_path

CLAMP = 0.6  # far below the tiny generator's activations, so both kinds of clamp bite


# ----- the reference, NVIDIA's way ----------------------------------------------------------------------
def _fir(x: Tensor, up: int, pad: tuple[int, int], gain: float) -> Tensor:
    """[1, 3, 3, 1] low-pass filter after optional zero insertion, like ada-pytorch's upfirdn2d."""
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    f = torch.outer(f, f)
    f = f / f.sum() * gain
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, f.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)


def nvidia_render(t: dict[str, Tensor], ws: Tensor, conv_clamp: float | None, seen: dict[str, float]) -> Tensor:
    """Synthesis from ada-pytorch tensors; `seen` gets the largest |activation| before each kind of clamp."""

    def clamp(x: Tensor, kind: str) -> Tensor:
        seen[kind] = max(seen.get(kind, 0.0), float(x.abs().max()))
        return x if conv_clamp is None else x.clamp(-conv_clamp, conv_clamp)

    def affine(name: str, w: Tensor) -> Tensor:  # FullyConnectedLayer, lr multiplier 1
        weight = t[f"{name}.affine.weight"]
        return w @ (weight / math.sqrt(weight.shape[1])).t() + t[f"{name}.affine.bias"]

    def layer(x: Tensor, name: str, w: Tensor, up: bool) -> Tensor:
        weight, styles = t[f"{name}.weight"], affine(name, w)
        dcoefs = ((weight[None] * styles[:, None, :, None, None]).square().sum([2, 3, 4]) + 1e-8).rsqrt()
        x = x * styles[:, :, None, None]
        if up:  # transposed conv with stride 2, then the filter at the new resolution (gain 4)
            x = _fir(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2), 1, (1, 1), 4.0)
        else:
            x = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
        x = x * dcoefs[:, :, None, None] + t[f"{name}.noise_const"] * t[f"{name}.noise_strength"]
        x = F.leaky_relu(x + t[f"{name}.bias"][None, :, None, None], 0.2) * math.sqrt(2)
        return clamp(x, "layer")

    def torgb(x: Tensor, name: str, w: Tensor) -> Tensor:
        weight = t[f"{name}.weight"]
        styles = affine(name, w) / math.sqrt(weight[0].numel())
        y = F.conv2d(x * styles[:, :, None, None], weight)
        return clamp(y + t[f"{name}.bias"][None, :, None, None], "torgb")

    x = t["synthesis.b4.const"][None].repeat(ws.shape[0], 1, 1, 1)
    x = layer(x, "synthesis.b4.conv1", ws[:, 0], up=False)
    img = torgb(x, "synthesis.b4.torgb", ws[:, 1])
    i, res = 1, 8
    while f"synthesis.b{res}.conv0.weight" in t:
        x = layer(x, f"synthesis.b{res}.conv0", ws[:, i], up=True)
        x = layer(x, f"synthesis.b{res}.conv1", ws[:, i + 1], up=False)
        img = _fir(img, 2, (2, 1), 4.0) + torgb(x, f"synthesis.b{res}.torgb", ws[:, i + 2])
        i, res = i + 2, res * 2
    return img


# ----- fixtures ------------------------------------------------------------------------------------------



def ada_tensors(g: Generator) -> dict[str, Tensor]:
    mapping, syn, own = tf_variables(g)
    return ada_tensors_from_tf(mapping, syn, own, g.config.n_mlp)


def mixed_ws(g: Generator, batch: int = 3) -> Tensor:
    z = torch.randn(batch * g.n_latent, g.style_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return g.mapping(z).view(batch, g.n_latent, g.style_dim)


# ----- tests ---------------------------------------------------------------------------------------------
def test_clamped_ada_file_renders_as_nvidia_code_does(tmp_path):
    g = busy_generator(11)
    t = ada_tensors(g)
    path = write_ada_pickle(
        tmp_path / "afhq-clamped.pkl",
        t,
        layer_attrs={"conv_clamp": CLAMP},
        synthesis_kwargs={"conv_clamp": CLAMP, "num_fp16_res": 4},
    )
    h, info = load_generator(path)
    assert info["format"] == "nvidia-ada-pkl"
    assert h.config.conv_clamp == CLAMP
    ws = mixed_ws(h)
    seen: dict[str, float] = {}
    expected = nvidia_render(t, ws, CLAMP, seen)
    # The file's activations really exceed the clamp, in the layers and in ToRGB ...
    assert seen["layer"] > 2 * CLAMP and seen["torgb"] > 2 * CLAMP
    # ... so clamping changes the picture, and our render matches NVIDIA's with it.
    unclamped = nvidia_render(t, ws, None, {})
    assert (unclamped - expected).abs().max() > 0.1
    with torch.no_grad():
        ours = h.synthesis(ws, noise="const")
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    # the split (training) path clamps at the same places
    with modconv_path("split"), torch.no_grad():
        torch.testing.assert_close(h.synthesis(ws, noise="const"), expected, rtol=1e-4, atol=1e-5)
    # without the clamp the same weights give NVIDIA's unclamped render (and our old behaviour)
    g_plain = Generator.from_state_dict(h.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(g_plain.synthesis(ws, noise="const"), unclamped, rtol=1e-4, atol=1e-5)


def test_clamp_survives_our_pt_and_rosinality_still_loads_it(tmp_path):
    g = busy_generator(11)
    h, _ = load_generator(write_ada_pickle(tmp_path / "a.pkl", ada_tensors(g), layer_attrs={"conv_clamp": CLAMP}))
    save_rosinality(h, tmp_path / "converted.pt")
    raw = torch.load(tmp_path / "converted.pt", weights_only=True)
    assert set(raw) == {"g_ema", "latent_avg", "conv_clamp"} and raw["conv_clamp"] == CLAMP
    # rosinality's tooling: g_ema.load_state_dict(ckpt["g_ema"]) with its own module tree
    assert Generator.from_state_dict(raw["g_ema"], latent_avg=raw["latent_avg"]).config.conv_clamp is None
    again, _ = load_generator(tmp_path / "converted.pt")
    assert again.config.conv_clamp == CLAMP
    ws = mixed_ws(h)
    with torch.no_grad():
        assert torch.equal(again.synthesis(ws), h.synthesis(ws))


def test_files_without_a_clamp_stay_unclamped(tmp_path):
    g = busy_generator(11)
    save_rosinality(g, tmp_path / "plain.pt")
    assert "conv_clamp" not in torch.load(tmp_path / "plain.pt", weights_only=True)
    for path in (
        tmp_path / "plain.pt",
        write_tf_pickle(tmp_path / "tf.pkl", g),
        write_ada_pickle(tmp_path / "ada.pkl", ada_tensors(g)),  # TF-converted ada files: conv_clamp None
        write_ada_pickle(tmp_path / "none.pkl", ada_tensors(g), layer_attrs={"conv_clamp": None}),
    ):
        h, _ = load_generator(path)
        assert h.config.conv_clamp is None, path


def test_clamp_read_from_init_kwargs_when_layers_lack_it(tmp_path):
    path = write_ada_pickle(tmp_path / "k.pkl", ada_tensors(busy_generator(11)), synthesis_kwargs={"conv_clamp": 256})
    h, _ = load_generator(path)
    assert h.config.conv_clamp == 256.0


def test_layers_with_different_clamps_are_refused():
    def layer(kind: str, clamp: float) -> PersistentObjStub:
        return PersistentObjStub(kind, {"conv_clamp": clamp, "_modules": {}}, 6)

    block = PersistentObjStub(
        "SynthesisBlock", {"_modules": {"conv1": layer("SynthesisLayer", 256), "torgb": layer("ToRGBLayer", 128)}}, 6
    )
    g = PersistentObjStub(
        "Generator",
        {"_modules": {"synthesis": PersistentObjStub("SynthesisNetwork", {"_modules": {"b4": block}}, 6)}},
        6,
    )
    with pytest.raises(ValueError, match="different conv_clamp"):
        ada_conv_clamp(g)


@pytest.mark.parametrize("bad", ["256", -1.0, float("nan"), True])
def test_bad_clamp_values_get_a_clear_error(tmp_path, bad):
    g = busy_generator(11)
    path = write_ada_pickle(tmp_path / "bad.pkl", ada_tensors(g), layer_attrs={"conv_clamp": bad})
    with pytest.raises(CheckpointError, match="conv_clamp"):
        load_generator(path)
    data = {"g_ema": g.state_dict(), "latent_avg": g.latent_avg, "conv_clamp": bad}
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="conv_clamp"):
        load_generator(tmp_path / "bad.pt")


def test_config_refuses_a_non_positive_clamp():
    with pytest.raises(ValueError, match="conv_clamp"):
        GeneratorConfig(size=32, conv_clamp=0.0)
