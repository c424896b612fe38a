"""Fused and split modulated convs agree; sampling is bit-for-bit what the fused formulation gives.

The reference below is the fused formulation the generator has always used (per-sample modulated
weights in a grouped conv, FIR filters by zero insertion + pad + single-channel conv), written out
op by op, so that "sampling output unchanged" is checked with torch.equal, not a tolerance.
"""

from __future__ import annotations

import copy
import threading

import pytest
import torch
import torch.nn.functional as F
from _models_fakes import busy_generator
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from engine.demo import tiny_generator
from engine.fir import BLUR_KERNEL, blur_depthwise, make_kernel, upfirdn2d, upsample_transposed
from engine.stylegan2 import Generator, ModulatedConv2d, ToRGB, modconv_path


# ----- reference: the fused formulation, op by op --------------------------------------------------------
def ref_upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, w)
    if up > 1:  # zero insertion: each sample followed by up - 1 zeros in both directions
        x = F.pad(x.reshape(n * c, 1, h, 1, w, 1), (0, up - 1, 0, 0, 0, up - 1)).reshape(n * c, 1, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, (p0, p1, p0, p1))
    x = F.conv2d(x, torch.flip(kernel, [0, 1])[None, None])
    return x.reshape(n, c, x.shape[2], x.shape[3])


def ref_modconv(m: ModulatedConv2d, x: Tensor, style: Tensor) -> Tensor:
    n, c, h, w = x.shape
    k = m.kernel_size
    weight = m.scale * m.weight * m.modulation(style).view(n, 1, c, 1, 1)
    if m.demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(n, m.out_ch, 1, 1, 1)
    x = x.reshape(1, n * c, h, w)
    if m.upsample:
        weight = weight.transpose(1, 2).reshape(n * c, m.out_ch, k, k)
        out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=n)
        return ref_upfirdn2d(out.view(n, m.out_ch, out.shape[2], out.shape[3]), m.blur.kernel, pad=m.blur.pad)
    out = F.conv2d(x, weight.reshape(n * m.out_ch, c, k, k), padding=m.padding, groups=n)
    return out.view(n, m.out_ch, out.shape[2], out.shape[3])


def ref_synthesis(g: Generator, w: Tensor, noises: list[Tensor]) -> Tensor:
    def styled(layer, x, style, noise):
        x = ref_modconv(layer.conv, x, style) + layer.noise.weight * noise
        return F.leaky_relu(x + layer.activate.bias.view(1, -1, 1, 1), 0.2) * 2**0.5

    def rgb(layer, x, style, skip):
        out = ref_modconv(layer.conv, x, style) + layer.bias
        if skip is None:
            return out
        return out + ref_upfirdn2d(skip, layer.upsample.kernel, up=2, pad=layer.upsample.pad)

    x = styled(g.conv1, g.input.input.repeat(w.shape[0], 1, 1, 1), w[:, 0], noises[0])
    skip = rgb(g.to_rgb1, x, w[:, 1], None)
    for j, to_rgb in enumerate(g.to_rgbs):
        x = styled(g.convs[2 * j], x, w[:, 2 * j + 1], noises[2 * j + 1])
        x = styled(g.convs[2 * j + 1], x, w[:, 2 * j + 2], noises[2 * j + 2])
        skip = rgb(to_rgb, x, w[:, 2 * j + 3], skip)
    return skip


# ----- helpers -----------------------------------------------------------------------------------------



def mixed_w_plus(g: Generator, batch: int, seed: int = 0) -> Tensor:
    """A different w for every W+ index, so a wrongly routed index shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(batch * g.n_latent, g.style_dim, generator=gen)
        return g.mapping(z).view(batch, g.n_latent, g.style_dim)


def rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def images_and_grads(g: Generator, w: Tensor, noises: list[Tensor], path: str) -> dict[str, Tensor]:
    g.zero_grad(set_to_none=True)
    g.requires_grad_(True)
    codes = w.clone().requires_grad_(True)
    with modconv_path(path):
        img = g.synthesis(codes, noises)
    # A fixed random projection: every pixel's gradient differs, unlike img.sum().
    proj = torch.randn(img.shape, generator=torch.Generator().manual_seed(7))
    (img * proj).sum().backward()
    out = {"image": img.detach(), "codes": codes.grad}
    out |= {n: p.grad.clone() for n, p in g.named_parameters() if p.grad is not None}
    g.requires_grad_(False)
    return out


# ----- tests -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 64])
def test_sampling_is_bit_identical_to_the_fused_formulation(size):
    g = busy_generator(1, size, scale=0.3, noise_seed=101)
    w = mixed_w_plus(g, 3, seed=2)
    noises = g.make_noise(3, torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = ref_synthesis(g, w, noises)
        assert torch.equal(g.synthesis(w, noises), expected)
        # render(): mapping, truncation and the stored noise, still the fused path.
        z = torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(4))
        w2 = g.w_plus(g.truncate(g.mapping(z), 0.7))
        assert torch.equal(g.render(z, truncation=0.7), ref_synthesis(g, w2, g.noises.as_list()))


@pytest.mark.parametrize("size", [32, 64])
def test_split_path_gives_the_same_images_and_gradients(size):
    g = busy_generator(size, size, scale=0.3, noise_seed=size + 100)
    w = mixed_w_plus(g, 3, seed=5)
    noises = g.make_noise(3, torch.Generator().manual_seed(6))
    fused = images_and_grads(g, w, noises, "fused")
    split = images_and_grads(g, w, noises, "split")
    assert set(fused) == set(split)
    # every StyledConv and ToRGB parameter got a gradient (noise weights included)
    assert sum(1 for k in split if k.startswith(("conv1.", "convs.", "to_rgb"))) == len(
        [n for n, _ in g.named_parameters() if n.startswith(("conv1.", "convs.", "to_rgb"))]
    )
    worst = max((rel(split[k], fused[k]), k) for k in fused)
    assert worst[0] <= 1e-4, worst
    assert rel(split["image"], fused["image"]) <= 1e-5


@pytest.mark.parametrize(
    "upsample, demodulate, kernel_size",
    [(False, True, 3), (True, True, 3), (False, False, 1)],  # StyledConv, upsampling StyledConv, ToRGB
)
def test_one_layer_split_equals_fused(upsample, demodulate, kernel_size):
    torch.manual_seed(0)
    m = ModulatedConv2d(6, 5, kernel_size, 8, demodulate=demodulate, upsample=upsample)
    x = torch.randn(3, 6, 8, 8)
    style = torch.randn(3, 8)
    results = {}
    for path in ("fused", "split"):
        m.zero_grad(set_to_none=True)
        xi, si = x.clone().requires_grad_(), style.clone().requires_grad_()
        with modconv_path(path):
            out = m(xi, si)
        (out * torch.linspace(-1, 2, out.numel()).view_as(out)).sum().backward()
        results[path] = [out.detach(), xi.grad, si.grad, m.weight.grad, m.modulation.weight.grad]
    assert results["split"][0].shape == (3, 5, 16 if upsample else 8, 16 if upsample else 8)
    for a, b in zip(results["split"], results["fused"], strict=True):
        assert rel(a, b) <= 1e-5


@pytest.mark.parametrize("pad", [(2, 1), (1, 1), (3, 2), (0, 0)])
def test_transposed_upsample_equals_zero_insertion(pad):
    gen = torch.Generator().manual_seed(0)
    kernel = torch.rand(4, 4, generator=gen)  # not symmetric: catches a flipped kernel
    x = torch.randn(2, 3, 5, 7, generator=gen, requires_grad=True)
    ref = ref_upfirdn2d(x, kernel, up=2, pad=pad)
    out = upsample_transposed(x, kernel, 2, pad)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    g_ref = torch.autograd.grad((ref * ref.detach()).sum(), x)[0]
    g_out = torch.autograd.grad((out * ref.detach()).sum(), x)[0]
    torch.testing.assert_close(g_out, g_ref, rtol=1e-5, atol=1e-5)
    # the engine's upfirdn2d (the fused path's filter) is unchanged
    assert torch.equal(upfirdn2d(x, kernel, up=2, pad=pad), ref)


def test_depthwise_blur_equals_upfirdn2d():
    gen = torch.Generator().manual_seed(1)
    kernel = torch.rand(4, 4, generator=gen)
    x = torch.randn(2, 5, 9, 9, generator=gen)
    torch.testing.assert_close(blur_depthwise(x, kernel, (1, 2)), ref_upfirdn2d(x, kernel, pad=(1, 2)))


def test_transposed_upsample_does_a_quarter_of_the_multiply_adds():
    kernel = make_kernel(BLUR_KERNEL) * 4
    x = torch.randn(2, 3, 16, 16)
    flops = {}
    for name, fn in {
        "zero insertion": lambda: upfirdn2d(x, kernel, up=2, pad=(2, 1)),
        "transposed": lambda: upsample_transposed(x, kernel, 2, (2, 1)),
    }.items():
        with FlopCounterMode(display=False) as counter:
            fn()
        flops[name] = counter.get_total_flops()
    assert flops["transposed"] * 4 == flops["zero insertion"]


# ----- which path runs -----------------------------------------------------------------------------------
@pytest.fixture
def path_log(monkeypatch):
    """Records (layer, path) for every modulated conv call and (ToRGB, fast upsample?) for every skip."""
    log: list[tuple[str, str]] = []
    fused, split = ModulatedConv2d.forward_fused, ModulatedConv2d.split_parts

    def spy_fused(self, x, style):
        log.append((self._log_name, "fused"))
        return fused(self, x, style)

    def spy_split(self, x, style, *gain):
        log.append((self._log_name, "split"))
        return split(self, x, style, *gain)

    monkeypatch.setattr(ModulatedConv2d, "forward_fused", spy_fused)
    monkeypatch.setattr(ModulatedConv2d, "split_parts", spy_split)
    return log


def named(g: Generator) -> Generator:
    """Frozen (as the trainer holds it) and with every modulated conv labelled by its module name."""
    g.requires_grad_(False)
    for name, m in g.named_modules():
        if isinstance(m, ModulatedConv2d):
            m._log_name = name
    return g


def paths(log: list[tuple[str, str]]) -> dict[str, str]:
    return dict(log)


def test_auto_rule_fused_without_gradients_split_where_they_flow(path_log):
    g = named(tiny_generator(32))
    w = g.w_plus(g.mapping(torch.randn(2, g.style_dim)))
    with torch.no_grad():
        g.synthesis(w)
    assert set(paths(path_log).values()) == {"fused"}

    path_log.clear()  # selection: only the codes need gradients -> every layer splits
    g.synthesis(w.clone().requires_grad_(True))
    assert set(paths(path_log).values()) == {"split"}

    path_log.clear()  # training: one layer trains -> the whole render splits (one batched style matmul)
    g.convs[2].requires_grad_(True)
    g.synthesis(w)
    assert set(paths(path_log).values()) == {"split"} and len(path_log) == len(g.modulated_layers())

    path_log.clear()  # trainable weights but no autograd: fused
    with torch.no_grad():
        g.synthesis(w)
    assert set(paths(path_log).values()) == {"fused"}


def test_forcing_a_path(path_log):
    g = named(tiny_generator(32))
    w = g.w_plus(g.mapping(torch.randn(1, g.style_dim)))
    with torch.no_grad(), modconv_path("split"):
        g.synthesis(w)
    assert set(paths(path_log).values()) == {"split"}

    path_log.clear()
    with modconv_path("fused"):
        g.synthesis(w.clone().requires_grad_(True))
    assert set(paths(path_log).values()) == {"fused"}

    path_log.clear()  # a generator's own setting; the context manager still wins over it
    g.set_modconv_path("split")
    assert g.modconv_path == "split"
    with torch.no_grad():
        g.synthesis(w)
    assert set(paths(path_log).values()) == {"split"}
    path_log.clear()
    with torch.no_grad(), modconv_path("fused"):
        g.synthesis(w)
    assert set(paths(path_log).values()) == {"fused"}

    with pytest.raises(ValueError, match="fused"):
        g.set_modconv_path("fast")
    with pytest.raises(ValueError, match="fused"), modconv_path("fast"):
        pass


def test_forced_path_stays_in_its_thread(path_log):
    g = named(tiny_generator(32))
    w = g.w_plus(g.mapping(torch.randn(1, g.style_dim)))
    other: list[tuple[str, str]] = []

    def render_elsewhere():
        with torch.no_grad():
            g.synthesis(w)
        other.extend(path_log)

    with modconv_path("split"):
        t = threading.Thread(target=render_elsewhere)
        t.start()
        t.join()
    assert set(paths(other).values()) == {"fused"}


def test_torgb_upsamples_without_zero_insertion_when_gradients_flow(monkeypatch):
    calls: list[str] = []
    import engine.fir as fir

    real = fir.upsample_transposed
    monkeypatch.setattr(fir, "upsample_transposed", lambda *a, **k: calls.append("transposed") or real(*a, **k))
    rgb = ToRGB(4, 8)
    x, style, skip = torch.randn(2, 4, 8, 8), torch.randn(2, 8), torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        a = rgb(x, style, skip)
    assert calls == []
    b = rgb(x, style, skip.requires_grad_(True))
    assert calls == ["transposed"]
    torch.testing.assert_close(a, b.detach(), rtol=1e-5, atol=1e-6)


def test_kept_constants_follow_every_change_of_the_weights():
    """A frozen layer keeps what it derives from its weights between renders; an in-place change (Adam,
    load_state_dict) or a weight that trains again must be seen at the next render."""
    g = busy_generator(32, 32, scale=0.3, noise_seed=9).requires_grad_(False)
    w = mixed_w_plus(g, 2, seed=3)
    noises = g.make_noise(2, torch.Generator().manual_seed(4))

    def render(gen: Generator) -> Tensor:
        with torch.no_grad(), modconv_path("split"):
            return gen.synthesis(w, noises)

    render(g)  # fills the kept constants
    with torch.no_grad():
        g.convs[1].conv.weight.mul_(1.5)
        g.to_rgbs[0].conv.modulation.weight.add_(0.2)
        g.convs[2].activate.bias.add_(0.1)
        g.convs[0].noise.weight.add_(0.3)
    fresh = copy.deepcopy(g)
    fresh.__dict__.pop("_derived", None)
    for m in fresh.modules():
        m.__dict__.pop("_derived", None)
    assert torch.equal(render(g), render(fresh))
    g.load_state_dict(busy_generator(32, 32, scale=0.3, noise_seed=9).state_dict())
    assert not torch.equal(render(g), render(fresh))
