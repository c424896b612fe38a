"""Adaptive layer freezing: the schedule, the selection, and what a step may touch."""

from __future__ import annotations

import pytest
import torch

from engine import device as devices
from engine.clip_loss import ClipLoss
from engine.config import TrainConfig, default_k
from engine.freezing import LayerSchedule, MicroBatching, score_layers, top_k
from engine.trainer import Trainer

ORACLE = (("oracle", 1.0),)


def make_trainer(generator, oracle, **kw):
    cfg = TrainConfig(source="a red image", target="a blue image", clip_models=ORACLE, **kw)
    return Trainer(cfg, generator, {"oracle": oracle}, device="cpu")


def test_schedule_k_falls_every_falloff_steps_to_min_k():
    s = LayerSchedule(k0=6, interval=4, falloff=5, min_k=2)
    assert [s.k_at(t) for t in (0, 4, 5, 9, 10, 19, 20, 40)] == [6, 6, 5, 5, 4, 3, 2, 2]
    assert [t for t in range(13) if s.selects_at(t)] == [0, 4, 8, 12]
    assert s.next_selection(0) == 4 and s.next_selection(7) == 8
    assert LayerSchedule(k0=6, falloff=0).k_at(1000) == 6
    assert LayerSchedule(k0=0).next_selection(3) is None


def test_top_k_never_ranks_the_last_index():
    scores = torch.tensor([0.1, 0.2, 0.3, 9.0])  # index 3 feeds only the final to_rgb
    assert top_k(scores, 2) == (1, 2)
    assert top_k(scores, 10) == (0, 1, 2)


def test_trained_set_follows_interval_and_falloff_exactly(generator, oracle, monkeypatch):
    tr = make_trainer(
        generator,
        oracle,
        iterations=16,
        auto_layer_k=5,
        auto_layer_interval=4,
        auto_layer_falloff=3,
        auto_layer_min_k=2,
    )
    selections = []
    real = tr.select_layers

    def spy():
        selections.append(tr.step_count)
        return real()

    monkeypatch.setattr(tr, "select_layers", spy)
    log = []
    for t in range(16):
        m = tr.step()
        log.append((m.k, m.trained_indices, tr.scores.clone()))
        assert m.next_selection == (t // 4 + 1) * 4 + 1  # 1-based, like m.step
    assert selections == [0, 4, 8, 12]
    assert [k for k, _, _ in log] == [max(2, 5 - t // 3) for t in range(16)]
    for t, (k, trained, scores) in enumerate(log):
        assert len(trained) == k
        assert trained == top_k(scores, k)  # between selections: top k(t) of the last scores
        if t % 4:
            assert torch.equal(scores, log[t - 1][2])


def test_k_zero_trains_every_styled_conv(generator, oracle):
    tr = make_trainer(generator, oracle, iterations=2, auto_layer_k=0)
    m = tr.step()
    assert m.trained_indices == tuple(range(generator.n_latent - 1))
    assert m.scores is None and m.next_selection is None


def test_default_k_is_two_thirds_of_n_latent(generator, oracle):
    tr = make_trainer(generator, oracle, iterations=1)
    assert tr.schedule.k0 == default_k(generator.n_latent) == 5


def test_selection_builds_no_generator_gradients(generator, oracle):
    for p in generator.parameters():
        p.requires_grad_(True)
    w = generator.mapping(torch.randn(4, 32)).detach()
    scores = score_layers(generator, w, lambda img: 1 - oracle.encode_images(img)[:, 2], iters=2)
    assert scores.shape == (generator.n_latent,) and (scores > 0).any()
    assert all(p.grad is None for p in generator.parameters())
    assert all(p.requires_grad for p in generator.parameters())  # flags restored


def selection_inputs(generator, clip, batch=8):
    """Codes, per-sample noise and the global CLIP losses of a selection pass (iters=2) with `clip`."""
    rng = torch.Generator().manual_seed(5)
    w = generator.mapping(torch.randn(batch, generator.style_dim, generator=rng)).detach()
    noise = generator.make_noise(batch, rng)
    loss = ClipLoss([(clip, 1.0)], global_weight=1.0)
    return w, noise, lambda img: loss.global_losses(img, "a sketch of a dog")


@pytest.mark.parametrize("size", [1, 3, 8])
def test_micro_batched_selection_scores_equal_the_one_batch_scores(generator, clip_tiny, size):
    w, noise, losses = selection_inputs(generator, clip_tiny)
    one_batch = score_layers(generator, w, losses, iters=2, noise=noise)  # off CUDA: the whole batch at once
    micro = score_layers(generator, w, losses, iters=2, noise=noise, batching=MicroBatching(size=size))
    assert (one_batch > 0).all()
    # Each code's loss and gradient are the same function in both; only the CPU's conv and matmul kernels
    # block differently by batch size, so the images already differ in the last bits and the scores
    # match to float rounding (3.7e-6 relative here), not bit for bit (they are, with one micro-batch of 8).
    # A mean per micro-batch instead of the sum over the whole batch is off by 2x-7x.
    assert torch.allclose(micro, one_batch, rtol=1e-4, atol=0), ((micro - one_batch) / one_batch).abs().max()


def test_a_run_forced_to_micro_batches_of_one_selects_with_the_same_scores(generator, oracle):
    whole = make_trainer(generator, oracle, iterations=1, auto_layer_batch=6)
    micro = make_trainer(generator, oracle, iterations=1, auto_layer_batch=6)
    micro.selection_batching.size = 1
    a, b = whole.step(), micro.step()
    assert torch.allclose(torch.tensor(b.scores), torch.tensor(a.scores), rtol=1e-4, atol=0)
    assert b.trained_indices == a.trained_indices


def test_the_selection_pass_runs_the_whole_batch_at_once_off_cuda():
    assert MicroBatching().next_size(torch.device("cpu"), 8) == 8
    assert MicroBatching(size=3).next_size(torch.device("cpu"), 2) == 2


@pytest.mark.gpu
def test_on_cuda_the_micro_batch_is_measured_and_the_scores_stay_the_same(generator, clip_tiny):
    device = torch.device("cuda")
    w, noise, losses = selection_inputs(generator, clip_tiny)
    gen, _ = generator.to(device), clip_tiny.to(device)
    w, noise = w.to(device), [n.to(device) for n in noise]
    auto = MicroBatching()
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # TF32 rounds by 1e-3
    try:
        scores = score_layers(gen, w, losses, iters=2, noise=noise, batching=auto)
        whole = score_layers(gen, w, losses, iters=2, noise=noise, batching=MicroBatching(size=8))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert auto.bytes_per_code is not None and auto.bytes_per_code > 0  # measured on a first code alone
    assert auto.next_size(device, 8) == 8  # the tiny models: the rest fits at once
    assert torch.allclose(scores, whole, rtol=1e-4, atol=0)


def test_a_step_changes_only_the_trained_layers_and_never_the_frozen_generator(generator, oracle):
    tr = make_trainer(generator, oracle, iterations=3, auto_layer_k=2)
    frozen_before = {k: v.clone() for k, v in tr.frozen.state_dict().items()}
    for _ in range(3):
        before = {k: v.clone() for k, v in tr.generator.state_dict().items()}
        m = tr.step()
        trained_prefixes = [("conv1." if i == 0 else f"convs.{i - 1}.") for i in m.trained_indices]
        for k, v in tr.generator.state_dict().items():
            changed = not torch.equal(v, before[k])
            is_trained = any(k.startswith(p) for p in trained_prefixes) and "kernel" not in k
            if changed:
                assert is_trained, f"{k} changed but was not trained at step {m.step}"
        assert any(
            not torch.equal(tr.generator.state_dict()[f"{p}conv.weight"], before[f"{p}conv.weight"])
            for p in trained_prefixes
        )
    for k, v in tr.frozen.state_dict().items():
        assert torch.equal(v, frozen_before[k]), k


def test_a_cpu_selection_pass_too_large_for_memory_runs_in_parts_with_the_same_scores(generator, clip_tiny,
                                                                                      monkeypatch):
    w, noise, losses = selection_inputs(generator, clip_tiny)
    plenty = MicroBatching()
    whole = score_layers(generator, w, losses, iters=2, noise=noise, batching=plenty)
    assert plenty.bytes_per_code > 0  # measured once, before the pass
    assert plenty.next_size(torch.device("cpu"), 8) == 8  # this machine holds 8 codes: one batch, as always
    assert torch.equal(whole, score_layers(generator, w, losses, iters=2, noise=noise))

    # A machine with memory for 3 codes: the same pass runs as 3 + 3 + 2, with the same scores.
    tight = MicroBatching()
    per_code = MicroBatching.CPU_BACKWARD_FACTOR * plenty.bytes_per_code / MicroBatching.SAFETY
    monkeypatch.setattr(devices, "available_bytes", lambda device: int(3.5 * per_code))
    rendered = []
    synthesis = generator.synthesis
    monkeypatch.setattr(generator, "synthesis",
                        lambda w_plus, noise: rendered.append(len(w_plus)) or synthesis(w_plus, noise))
    parts = score_layers(generator, w, losses, iters=2, noise=noise, batching=tight)
    assert tight.bytes_per_code == plenty.bytes_per_code  # the same shapes: the same figure
    assert rendered == [1, 3, 3, 3, 3, 2, 2]  # the probe's one code, then each part's two SGD steps
    assert torch.allclose(parts, whole, rtol=1e-4, atol=0), ((parts - whole) / whole).abs().max()
