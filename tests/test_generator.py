"""The generator is rosinality-compatible: same keys and shapes, strict loading, W+ wiring."""

from __future__ import annotations

import pytest
import torch

from engine.demo import tiny_generator
from engine.fir import upfirdn2d
from engine.stylegan2 import Generator, GeneratorConfig, default_channels
from engine.styles import split_styles


def rosinality_keys(size: int, n_mlp: int) -> set[str]:
    """The key set of rosinality's Generator, written out from its module tree."""
    log = size.bit_length() - 1
    keys = {"input.input"}
    keys |= {f"style.{i}.{p}" for i in range(1, n_mlp + 1) for p in ("weight", "bias")}

    def styled(prefix: str, up: bool) -> set[str]:
        k = {
            f"{prefix}.conv.weight",
            f"{prefix}.conv.modulation.weight",
            f"{prefix}.conv.modulation.bias",
            f"{prefix}.noise.weight",
            f"{prefix}.activate.bias",
        }
        return k | ({f"{prefix}.conv.blur.kernel"} if up else set())

    def rgb(prefix: str, up: bool) -> set[str]:
        k = {
            f"{prefix}.bias",
            f"{prefix}.conv.weight",
            f"{prefix}.conv.modulation.weight",
            f"{prefix}.conv.modulation.bias",
        }
        return k | ({f"{prefix}.upsample.kernel"} if up else set())

    keys |= styled("conv1", False) | rgb("to_rgb1", False)
    for j in range(log - 2):
        keys |= (
            styled(f"convs.{2 * j}", True) | styled(f"convs.{2 * j + 1}", False) | rgb(f"to_rgbs.{j}", True)
        )
    keys |= {f"noises.noise_{i}" for i in range(2 * (log - 2) + 1)}
    return keys


@pytest.mark.parametrize("size,cm", [(256, 2), (1024, 2), (512, 1)])
def test_real_architecture_key_set_and_counts(size, cm):
    g = Generator(GeneratorConfig(size=size, channel_multiplier=cm))
    sd = g.state_dict()
    assert set(sd) == rosinality_keys(size, 8)
    # Entry counts of rosinality's config-f state dicts (256: 135, 1024: 171 entries).
    if cm == 2 and size in (256, 1024):
        assert len(sd) == {256: 135, 1024: 171}[size]
    assert sd["convs.6.conv.weight"].shape == (1, default_channels(size, cm)[64], 512, 3, 3)
    assert g.n_latent == 2 * (size.bit_length() - 1) - 2


def test_config_inferred_from_state_dict_not_hard_coded():
    """cm 1 and n_mlp 2 (the reference's issue #25 case) are read from the weights."""
    cfg = GeneratorConfig(
        size=128,
        style_dim=64,
        n_mlp=2,
        channel_multiplier=1,
        channels={4: 64, 8: 64, 16: 64, 32: 64, 64: 256, 128: 128},
    )
    sd = Generator(cfg).state_dict()
    inferred = GeneratorConfig.from_state_dict(sd)
    assert (inferred.size, inferred.n_mlp, inferred.style_dim, inferred.channel_multiplier) == (128, 2, 64, 1)
    assert dict(inferred.channels) == dict(cfg.channels)


def test_saved_rosinality_checkpoint_loads_strict_and_renders(tmp_path, generator):
    path = tmp_path / "ckpt.pt"
    torch.save({"g_ema": generator.state_dict(), "latent_avg": generator.latent_avg.clone()}, path)
    ckpt = torch.load(path, weights_only=True)
    g2 = Generator.from_state_dict(ckpt["g_ema"], latent_avg=ckpt["latent_avg"])
    assert g2.has_latent_avg
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(5))
    a = generator.render(z, truncation=0.7)
    b = g2.render(z, truncation=0.7)
    assert a.shape == (3, 3, 32, 32)
    assert torch.equal(a, b)


def test_strict_loading_rejects_foreign_keys(generator):
    sd = dict(generator.state_dict())
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="extra.weight"):
        Generator.from_state_dict(sd)


def test_each_w_index_reaches_the_layer_design_says():
    """Perturbing W+ index i changes the input of exactly the StyledConv (and to_rgb) that consume it."""
    g = tiny_generator(size=32)
    seen: dict[str, torch.Tensor] = {}
    modules = {"conv1": g.conv1, "to_rgb1": g.to_rgb1}
    modules |= {f"convs.{i}": c for i, c in enumerate(g.convs)}
    modules |= {f"to_rgbs.{i}": c for i, c in enumerate(g.to_rgbs)}
    hooks = [
        m.conv.modulation.register_forward_hook(lambda _m, inp, _o, n=n: seen.__setitem__(n, inp[0].clone()))
        for n, m in modules.items()
    ]
    w = g.w_plus(torch.randn(1, 32, generator=torch.Generator().manual_seed(0))).detach()
    with torch.no_grad():  # the fused path: each layer maps its own code
        g.synthesis(w)
    base = dict(seen)
    consumers = {}
    for i in range(g.n_latent):
        w2 = w.clone()
        w2[:, i] += 1.0
        with torch.no_grad():
            g.synthesis(w2)
        consumers[i] = sorted(n for n in modules if not torch.equal(seen[n], base[n]))
    for h in hooks:
        h.remove()
    assert consumers[0] == ["conv1"]
    assert consumers[1] == ["convs.0", "to_rgb1"]
    assert consumers[2] == ["convs.1"]
    assert consumers[3] == ["convs.2", "to_rgbs.0"]
    assert consumers[g.n_latent - 1] == [f"to_rgbs.{len(g.to_rgbs) - 1}"]
    styled = [g.conv1, *g.convs]
    assert g.styled_convs() == styled
    # The layer map's labels name what each index trains (the last: the final to_rgb) and its output size.
    sizes = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, n=n: sizes.__setitem__(n, out.shape[-1]))
             for n, m in modules.items()]
    with torch.no_grad():
        g.synthesis(w)
    for h in hooks:
        h.remove()
    labels = g.layer_labels()
    assert labels[:4] == ["conv1 4x4", "convs.0 8x8 up", "convs.1 8x8", "convs.2 16x16 up"]
    assert len(labels) == g.n_latent
    for i, label in enumerate(labels):
        name, res, *up = label.split()
        assert name == (consumers[i][0] if i < g.n_latent - 1 else f"to_rgbs.{len(g.to_rgbs) - 1}"), label
        assert res == f"{sizes[name]}x{sizes[name]}", label
        assert bool(up) == bool(getattr(g.get_submodule(name).conv, "upsample", False)), label


def test_upfirdn2d_upsample_matches_nearest_zero_insert_filter():
    x = torch.randn(1, 2, 4, 4)
    k = torch.ones(2, 2)  # box filter: 2x upsampling by pixel repetition
    y = upfirdn2d(x, k, up=2, pad=(1, 0))
    assert torch.allclose(y, x.repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_truncation_uses_latent_avg_and_seeded_mean():
    a = tiny_generator(size=32, seed=3)
    b = tiny_generator(size=32, seed=3)
    assert torch.equal(a.latent_avg, b.latent_avg)  # seeded mean of mapped z
    z = torch.randn(2, 32)
    assert torch.allclose(a.render(z, truncation=0.0)[0], a.render(z, truncation=0.0)[1])


def test_noise_modes():
    g = tiny_generator(size=32)
    with torch.no_grad():
        for conv in g.styled_convs():  # fresh generators start with noise strength 0
            conv.noise.weight.fill_(0.5)
    z = torch.randn(1, 32)
    assert torch.equal(g.render(z, noise="const"), g.render(z, noise="const"))
    assert not torch.equal(g.render(z, noise="random"), g.render(z, noise="random"))
    fixed = g.make_noise(1, torch.Generator().manual_seed(1))
    assert torch.equal(g.render(z, noise=fixed), g.render(z, noise=fixed))
    with pytest.raises(ValueError, match="noise"):
        g.render(z, noise="bogus")


def test_split_render_reads_each_layer_its_own_w_index():
    """The split path's batched styles (one matmul for all layers) equal each layer mapping its own code."""
    g = tiny_generator(size=32)
    w = torch.randn(2, g.n_latent, g.style_dim, generator=torch.Generator().manual_seed(1))
    layers = g.modulated_layers()
    assert [i for _, i in layers] == [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7]
    for (conv, i), style in zip(layers, split_styles(g, layers, w), strict=True):
        own = conv.split_style(w[:, i])
        torch.testing.assert_close(style.scale, own.scale, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(style.square, own.square, rtol=1e-5, atol=1e-6)
