"""A StyleGAN3 generator goes through the trainer, freezing and generator files like a StyleGAN2 one.

W+ index 0 drives the input's affine, index i layer L(i-1), the last only ToRGB; adaptive selection picks
among the input and L0..; what trains is the input's weight and the layers' weights and biases (affines,
mapping and ToRGB stay as they were); training batches are truncated at 0.7; files round-trip.
"""

from __future__ import annotations

import torch

from engine.config import DEMO_CLIP_ID, TrainConfig
from engine.demo import colour_oracle
from engine.freezing import LayerChoice, named_layers
from engine.generator_files import load_generator, save_rosinality
from engine.stylegan2 import modconv_path
from engine.stylegan3 import tiny_stylegan3
from engine.stylegan3_design import design
from engine.trainer import Trainer


def test_each_w_plus_index_drives_its_layer():
    g = tiny_stylegan3("t", seed=1)
    seen: dict[str, torch.Tensor] = {}
    syn = g.synthesis_net
    modules = {"input": syn.input.affine, **{layer.spec.name: layer.affine for layer in syn.layers()}}
    hooks = [m.register_forward_hook(lambda m, inp, out, name=name: seen.__setitem__(name, inp[0]))
             for name, m in modules.items()]
    w_plus = torch.randn(1, g.n_latent, g.style_dim)
    with torch.no_grad():
        g.render(w_plus=w_plus)
    for h in hooks:
        h.remove()
    labels = g.layer_labels()
    assert labels[0] == "input" and labels[-1].startswith(f"L{g.n_latent - 2}_") and len(labels) == g.n_latent
    for i, name in enumerate(labels):
        assert torch.equal(seen[name], w_plus[:, i]), name
    units = g.styled_convs()
    assert len(units) == g.n_latent - 1  # the last index feeds only ToRGB, which never trains
    assert units[0].tensors == [syn.input.weight]
    assert units[1].tensors == [syn.layers()[0].weight, syn.layers()[0].bias]


def test_named_layer_sets_for_stylegan3_1024():
    config, _ = design(1024, "t")
    res = config.index_resolutions()
    n = len(res)
    assert n == 16
    sets = {name: named_layers(name, n, res) for name in ("coarse", "medium", "fine")}
    assert sets == {"coarse": (0, 1, 2, 3), "medium": (4, 5, 6), "fine": tuple(range(7, 15))}
    choice = LayerChoice.from_settings("fine", [2], [14], n, res)
    assert choice.trained(0, None) == (2, *range(7, 14))


def _trainer(g, **settings) -> Trainer:
    cfg = TrainConfig.parse({
        "source": "a red image", "target": "a blue image", "clip_models": ((DEMO_CLIP_ID, 1.0),), "iterations": 4,
        "batch": 2, "auto_layer_k": 3, "auto_layer_iters": 1, "auto_layer_batch": 2, "auto_layer_interval": 2,
        "lr": 0.02, "seed": 3, "preview_seeds": "0", **settings,
    })
    return Trainer(cfg, g, {DEMO_CLIP_ID: colour_oracle()}, device="cpu")


def test_a_tiny_stylegan3_trains_with_adaptive_selection():
    g = tiny_stylegan3("t", seed=2)
    tr = _trainer(g)
    start = {k: v.clone() for k, v in tr.generator.state_dict().items()}
    trained_sets = []
    for _ in range(4):
        m = tr.step()
        trained_sets.append(m.trained_indices)
        assert len(m.trained_indices) == 3 and max(m.trained_indices) < g.n_latent - 1
        assert m.scores is not None and len(m.scores) == g.n_latent
        assert m.layer_labels == ("input", *(s.name for s in g.config.layers))  # the layer map's names
    after = tr.generator.state_dict()
    changed = {k for k in after if not torch.equal(after[k], start[k])}
    units = {i: u.name for i, u in enumerate(tr.generator.styled_convs())}
    expected_prefixes = {f"synthesis_net.{units[i]}." for s in trained_sets for i in s}
    assert changed, "nothing trained"
    for k in changed:
        assert any(k.startswith(p) for p in expected_prefixes) and k.endswith("weight") or k.endswith("bias"), k
        assert ".affine." not in k and "mapping" not in k, k
    # the colour oracle says red -> blue: the adapted images are bluer than the frozen ones
    z = torch.randn(8, g.style_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before, now = tr.frozen.render(z, truncation=0.7), tr.generator.render(z, truncation=0.7)
    blue = lambda img: (img[:, 2] - img[:, 0]).mean().item()  # noqa: E731
    assert blue(now) > blue(before)


def test_training_batches_are_truncated_at_0_7():
    g = tiny_stylegan3("r", seed=4)
    tr = _trainer(g, mixing=0.0)
    rng_state = tr.rng.get_state()
    w_plus = tr._latents(2)
    tr.rng.set_state(rng_state)
    z = torch.randn(2, g.style_dim, generator=tr.rng)
    with torch.no_grad():
        w = g.mapping(z)
    expected = g.latent_avg + 0.7 * (w - g.latent_avg)
    assert torch.allclose(w_plus[:, 0], expected, atol=1e-6)


def test_stylegan3_round_trips_through_our_file(tmp_path):
    g = tiny_stylegan3("r", seed=5)
    path = save_rosinality(g, tmp_path / "sg3.pt")
    h, info = load_generator(path)
    assert info["family"] == "stylegan3-r" and info["format"] == "stylegan3" and h.config == g.config
    z = torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(g.render(z, truncation=0.7), h.render(z, truncation=0.7))


def test_the_byte_saving_autograd_function_gives_autograd_s_gradients():
    """The filtered leaky ReLU's backward (one byte per upsampled value) equals plain autograd's, for the
    trained tensors and for W+ codes (what layer selection differentiates), on a file pushed past the clamp."""
    from engine.sg3_ops import plain_autograd

    for kind in "tr":
        g = tiny_stylegan3(kind, seed=6)
        with torch.no_grad():  # push L0 past the clamp (256) so the clamp's zero gradient is exercised
            layers = g.synthesis_net.layers()
            layers[0].magnitude_ema.fill_(1e-6)
            layers[1].magnitude_ema.fill_(1e6)
        g.requires_grad_(True)
        ws = torch.randn(2, g.n_latent, g.style_dim, generator=torch.Generator().manual_seed(2))
        grads = []
        for ctx in (plain_autograd, __import__("contextlib").nullcontext):
            g.zero_grad()
            codes = ws.clone().requires_grad_(True)
            with ctx(), modconv_path("split"):
                (g.render(w_plus=codes) * torch.linspace(-1, 1, 32)).square().mean().backward()
            found = {n: p.grad.clone() for n, p in g.named_parameters() if p.grad is not None}
            grads.append({"codes": codes.grad.clone(), **found})
        plain, ours = grads
        assert plain.keys() == ours.keys() and len(plain) > 10
        for name, a in plain.items():
            assert torch.allclose(ours[name], a, rtol=1e-4, atol=1e-6 * a.abs().max().item() + 1e-12), (kind, name)


def test_pivotal_tuning_of_an_sg3_tunes_its_synthesis_and_leaves_its_mapping():
    from engine.photos.perceptual import PixelGradientDistance
    from engine.photos.pti import pivotal_tune

    g = tiny_stylegan3("t", size=32, seed=7)
    w = g.w_plus(g.mapping(torch.randn(1, g.z_dim, generator=torch.Generator().manual_seed(1)))).detach()
    target = torch.zeros(1, 3, g.size, g.size)
    tuned = pivotal_tune(g, w, target, PixelGradientDistance(), steps=3)
    distance = PixelGradientDistance()
    with torch.no_grad():
        before, after = (distance(m.synthesis(w), target).item() for m in (g, tuned))
    assert after < before  # closer to the photo
    for (name, p), q in zip(g.named_parameters(), tuned.parameters(), strict=True):
        assert torch.equal(p, q) == name.startswith("mapping_net."), name  # synthesis tuned, mapping kept
