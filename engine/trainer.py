"""The StyleGAN-NADA training step: a steppable Trainer (the worker thread is engine/training_worker.py).

One step: z -> frozen mapping -> W+ (shared by both generators, with the same style-mixing crossover,
and the same noise unless the `noise` setting says independent) -> frozen and trainable renders -> CLIP
loss -> Adam on the StyledConvs that adaptive freezing chose. The mapping network and the to_rgb layers
never train. The learned constant input trains only when selection is off and every StyledConv trains
(`--k 0`, `--layers all`), as the reference trains it whenever its adaptive selection is off.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from engine import device as devices
from engine import target_images as targets
from engine.clip_loss import ClipEncoder, ClipLoss
from engine.compiled import StepParts, check_compile
from engine.config import ADAM_BETAS, LR_SCALE, SETTINGS, ConfigError, TrainConfig, default_k
from engine.events import (
    PreviewReady,
    StepMetrics,
)
from engine.freezing import LayerChoice, LayerSchedule, MicroBatching, rankable_indices, score_layers
from engine.sampling import grid, render_seeds, to_pil
from engine.seeds import stream_seed
from engine.stylegan2 import Generator, forced_modconv_path, modconv_path


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to change."""


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite; the weights of the last good step are kept."""


class OutOfMemory(TrainingError):
    """The device ran out of memory; the message says what to lower."""


class Trainer:
    """Adapts a copy of `generator` towards `config.target`; call `step()` until `done`.

    `clip_models` maps the names in `config.clip_models` to loaded encoders (models with weight 0
    may be absent: they are never evaluated).
    """

    def __init__(
        self,
        config: TrainConfig,
        generator: Generator,
        clip_models: Mapping[str, ClipEncoder],
        device: str | torch.device | None = None,
        target_images: Sequence[Image.Image] | None = None,
        source_images: Sequence[Image.Image] | None = None,
    ) -> None:
        """`target_images`: the checked copies of `config.target_images` (engine.target_images); read from
        those paths when not given (a session passes the copies it keeps); `source_images` likewise. The
        prompts and image settings are checked before, once, by engine.inputs.check_inputs."""
        self.device = devices.resolve_device(device)
        devices.check_precision(self.device, config.precision)
        check_compile(config.compile, self.device)
        devices.configure(self.device, config.precision)
        self.config = config
        self.frozen = copy.deepcopy(generator).to(self.device).eval().requires_grad_(False)
        self.generator = copy.deepcopy(self.frozen).requires_grad_(False)
        missing = [n for n, w in config.clip_models if w > 0 and n not in clip_models]
        if missing:
            raise TrainingError(f"CLIP model(s) {', '.join(missing)} are not loaded")
        encoders = [(clip_models[n].to(self.device), w) for n, w in config.clip_models if w > 0]
        self.image_weight = targets.resolve_image_weight(config)
        self.loss = ClipLoss(encoders, config.global_weight, config.templates, self.image_weight)
        # compile = graphs | compile: the frozen render and the CLIP image encoders captured (CUDA only).
        self.parts = StepParts(config.compile, self.frozen)
        for enc, _ in self.loss.models if self.parts.on else ():
            self.loss.image_encoders[enc.name] = self.parts.encoder(enc.name, enc.encode_images)
        if self.image_weight > 0:  # once, before step 1: the images' direction and target per CLIP model
            images = target_images
            if images is None:
                images = [t.image for t in targets.load_target_images(config.target_images)]
            sources = source_images
            if sources is None:
                sources = [t.image for t in targets.load_target_images(config.source_images, targets.SOURCE_FIELD)]
            targets.set_image_targets(self.loss, self.frozen, config, images, sources)
        # Text directions and global targets are computed (and checked) now, outside any autocast.
        for enc, _ in self.loss.models:
            self.loss.direction(enc, config.source, config.target)
            self.loss.global_target(enc, config.target)

        n = self.generator.n_latent
        self.resolutions = self.generator.layer_resolutions()  # named layer sets, per generator family
        self.layer_labels = tuple(self.generator.layer_labels())  # what each index drives, for the layer map
        self.layer_choice = LayerChoice.from_settings(config.layers, config.pin_on, config.pin_off, n, self.resolutions)
        k0 = default_k(n) if config.auto_layer_k is None else min(config.auto_layer_k, n - 1)
        # A fixed layer set (layers != auto) needs no selection: k0 = 0 switches it off.
        self.schedule = LayerSchedule(
            k0 if self.layer_choice.adaptive else 0,
            config.auto_layer_interval,
            config.auto_layer_falloff,
            config.auto_layer_min_k,
        )
        # Things to say once when the run starts (TrainingWorker sends them as LogMessage warnings).
        self.warnings: list[str] = []
        k = config.auto_layer_k
        if k is not None and k > n - 1 and self.schedule.k0 > 0:
            self.warnings.append(
                f"k={k} is more than this generator has: {n - 1} of its {n} W+ layers feed a StyledConv, so "
                f"k={n - 1} is used (k=0 also trains them all)."
            )
        self.convs = self.generator.styled_convs()
        self.constants = self.generator.constant_inputs()  # StyleGAN2's learned constant; none in StyleGAN3
        # fused: one kernel per step for every parameter (the per-tensor loop was ~10 ops per tensor). The
        # constant comes last, so the optimizer state of sessions saved before it could train still loads.
        self.optimizer = torch.optim.Adam(
            [*(p for c in self.convs for p in c.parameters()), *self.constants],
            lr=config.lr * LR_SCALE, betas=ADAM_BETAS, fused=True,
        )
        # Latents and noise are drawn on the training device (no host-to-device copies each step);
        # on CPU that also makes runs bit-for-bit repeatable.
        self.rng = torch.Generator(self.device).manual_seed(config.seed)
        self.step_count = 0
        self.scores: torch.Tensor | None = None
        self.selection_batching = MicroBatching()  # the selection pass's micro-batch size (engine.freezing)
        self.trained: tuple[int, ...] = ()
        self.selected_this_step = False
        self._frozen_row: tuple[tuple[tuple[int, ...], float], Any] | None = None  # see preview()
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._step_time_ema: float | None = None
        self._started = time.perf_counter()

    # ----- live changes -----------------------------------------------------------------------
    def update(self, **changes: Any) -> None:
        """Change settings marked live in the settings table (global_weight, ...); applied at the next step."""
        allowed = {s.name for s in SETTINGS.values() if s.live}
        bad = set(changes) - allowed
        if bad:
            raise ConfigError(sorted(bad)[0], f"cannot change during a run; only {sorted(allowed)} can")
        with self._lock:
            candidate = self.config.replace(**{**self._pending, **changes})  # validates
        if "iterations" in changes and candidate.iterations <= self.step_count:
            raise ConfigError("iterations", f"the run is already at step {self.step_count}: give more steps than that")
        if "pin_on" in changes or "pin_off" in changes:  # range and "something still trains", for this model
            LayerChoice.from_settings(candidate.layers, candidate.pin_on, candidate.pin_off, self.generator.n_latent,
                                      self.resolutions)
        with self._lock:
            self._pending.update(changes)

    @property
    def next_config(self) -> TrainConfig:
        """The settings of the next step: `config` with the live changes accepted since the last step."""
        with self._lock:
            return self.config.replace(**self._pending) if self._pending else self.config

    def _apply_pending(self) -> None:
        with self._lock:
            if not self._pending:
                return
            self.config = self.config.replace(**self._pending)
            self._pending.clear()
        self.loss.global_weight = self.config.global_weight
        cfg = self.config
        self.layer_choice = LayerChoice.from_settings(cfg.layers, cfg.pin_on, cfg.pin_off, self.generator.n_latent,
                                                      self.resolutions)

    # ----- one step ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.step_count >= self.config.iterations

    def _latents(self, batch: int) -> torch.Tensor:
        """W+ codes from the frozen mapping, with style mixing drawn once for both generators."""
        d, n = self.frozen.z_dim, self.frozen.n_latent
        z = torch.randn(batch, d, generator=self.rng, device=self.device)
        with torch.no_grad():
            w_plus = self.frozen.w_plus(self._map(z))
            # The mixing coin and crossover come from a CPU generator keyed on (seed, step): no GPU
            # sync to read them, and nothing extra to save for resume.
            coin = torch.Generator().manual_seed(stream_seed(self.config.seed, self.step_count, "mixing"))
            if self.config.mixing > 0 and torch.rand((), generator=coin).item() < self.config.mixing:
                z2 = torch.randn(batch, d, generator=self.rng, device=self.device)
                cut = int(torch.randint(1, n, (), generator=coin))
                w_plus[:, cut:] = self._map(z2).unsqueeze(1)
        return w_plus

    def _map(self, z: torch.Tensor) -> torch.Tensor:
        """z -> w through the frozen mapping, truncated as the family trains (StyleGAN3: 0.7, StyleGAN2: not)."""
        return self.frozen.truncate(self.frozen.mapping(z), self.frozen.train_truncation)

    def select_layers(self) -> torch.Tensor:
        """Layer scores (engine.freezing.score_layers). The codes and noise come from a stream of their own,
        keyed on (seed, step): the selection batch, interval, layer set or k never change a training batch."""
        cfg = self.config
        rng = torch.Generator(self.device).manual_seed(stream_seed(cfg.seed, self.step_count, "selection"))
        z = torch.randn(cfg.auto_layer_batch, self.frozen.z_dim, generator=rng, device=self.device)
        noise = self.frozen.make_noise(cfg.auto_layer_batch, rng)
        with torch.no_grad():
            w = self._map(z)

        def global_losses(img: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return self.loss.global_losses(img, cfg.target).float()

        scores = score_layers(self.generator, w, global_losses, cfg.auto_layer_iters, noise=noise,
                              batching=self.selection_batching)
        return scores.float().cpu()

    def autocast(self) -> torch.autocast:
        """bf16: the CLIP models' forward (and so their backward) in bfloat16; the generator stays fp32
        (TF32 on CUDA), so the frozen and the trained render agree exactly before training, and the images'
        gradients reach the weights unrounded. Losses, Adam and the stored weights are fp32. A no-op for the
        other precisions (bf16 itself is refused where it cannot run: engine.device.check_precision)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16")

    def trained_indices(self, step: int) -> tuple[int, ...]:
        """The layer set, pins and (adaptive) the schedule's k with the last scores: see engine.freezing."""
        return self.layer_choice.trained(self.schedule.k_at(step), self.scores)

    def trains_constant(self, trained: tuple[int, ...]) -> bool:
        """The constant input trains when selection is off and every StyledConv trains (k=0, layers=all),
        as the reference trains it whenever its selection is off; adaptive selection never picks it."""
        return self.schedule.k0 == 0 and len(trained) == rankable_indices(self.generator.n_latent)

    def step(self) -> StepMetrics:
        self._apply_pending()
        t0 = time.perf_counter()
        t = self.step_count
        cfg = self.config
        self.selected_this_step = self.schedule.selects_at(t)
        if self.selected_this_step:
            self.scores = self.select_layers()
        self.trained = self.trained_indices(t)
        chosen = set(self.trained)
        for i, conv in enumerate(self.convs):
            conv.requires_grad_(i in chosen)
        for constant in self.constants:
            constant.requires_grad_(self.trains_constant(self.trained))

        w_plus = self._latents(cfg.batch)
        noise = self.frozen.make_noise(cfg.batch, self.rng)
        # independent: the frozen render draws its own maps, as the reference does (see docs/settings.md).
        frozen_noise = noise if cfg.noise == "shared" else self.frozen.make_noise(cfg.batch, self.rng)
        # Both renders take the split path in every layer, unless a path is forced (the bench): they agree
        # exactly before any training in every precision, and depthwise filters take fewer ops than
        # zero insertion.
        self.parts.begin_step()
        with modconv_path(forced_modconv_path() or "split"):
            if self.parts.on:
                frozen_img = self.parts.frozen_render(w_plus, frozen_noise)
            else:
                with torch.no_grad():
                    frozen_img = self.frozen.synthesis(w_plus, frozen_noise)
            trained_img = self.generator.synthesis(w_plus, noise)
        with self.autocast():  # bf16: CLIP only (see autocast())
            terms = self.loss(frozen_img, trained_img, cfg.source, cfg.target)
        terms = {k: v.float() for k, v in terms.items()}
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        # The one device sync of a step, after both passes are queued: the losses and the gradients' total
        # norm together. A non-finite gradient with a finite loss must not reach Adam (it would make the
        # weights NaN), so the step is skipped and the weights of the last good step stay.
        stepped = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        grads = [p.grad for p in stepped]
        grad_norm = torch.nn.utils.get_total_norm(grads) if grads else terms["total"].new_zeros(())
        *losses, grad_norm_value = torch.stack([*terms.values(), grad_norm.float()]).tolist()
        values = dict(zip(terms, losses, strict=True))
        if not all(math.isfinite(v) for v in values.values()):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(
                f"The loss became {values['total']} at step {t + 1}; the weights of step {t} are kept. "
                "Lower the learning rate (lr) or the batch's truncation, or check the CLIP model."
            )
        if not math.isfinite(grad_norm_value):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(
                f"The gradients became {grad_norm_value} at step {t + 1} (the loss was {values['total']:.4g}); "
                f"the step was skipped and the weights of step {t} are kept. Lower the learning rate (lr) or "
                "the batch's truncation, or check the CLIP model."
            )
        self.optimizer.step()
        # The fused Adam kernel updates the weights in place without bumping their autograd version, which
        # is how a layer that stops training knows its kept constants are stale (engine.modconv.derived).
        torch.autograd.graph.increment_version(stepped)
        self.step_count += 1

        next_select = self.schedule.next_selection(t)  # 0-based step index
        dt = time.perf_counter() - t0
        self._step_time_ema = dt if self._step_time_ema is None else 0.9 * self._step_time_ema + 0.1 * dt
        return StepMetrics(
            step=self.step_count,
            total_steps=cfg.iterations,
            losses=values,
            lr=cfg.lr * LR_SCALE,
            it_per_s=1.0 / max(self._step_time_ema, 1e-9),
            elapsed_s=time.perf_counter() - self._started,
            trained_indices=self.trained,
            k=self.layer_choice.k_effective(self.schedule.k_at(t)) if self.layer_choice.adaptive else len(chosen),
            scores=None if self.scores is None else tuple(self.scores.tolist()),
            next_selection=None if next_select is None else next_select + 1,  # 1-based, like `step`
            global_weight=cfg.global_weight,
            memory=devices.memory(self.device),
            layers=cfg.layers,
            pin_on=cfg.pin_on,
            pin_off=cfg.pin_off,
            n_latent=self.generator.n_latent,
            layer_labels=self.layer_labels,
        )

    # ----- pictures ---------------------------------------------------------------------------
    def preview(self, seeds: tuple[int, ...] | None = None) -> PreviewReady:
        """The same seeds, truncation and noise through the frozen and the adapted generator."""
        seeds = tuple(seeds or self.config.preview_seeds)
        t = self.config.sample_truncation
        # The frozen generator never changes: its row is rendered once per (seeds, truncation), and the
        # same image object comes back, so a UI can tell it needs no redrawing.
        if self._frozen_row is None or self._frozen_row[0] != (seeds, t):
            self._frozen_row = ((seeds, t), grid(to_pil(render_seeds(self.frozen, seeds, t))))
        adapted = grid(to_pil(render_seeds(self.generator, seeds, t)))
        return PreviewReady(self.step_count, seeds, self._frozen_row[1], adapted)

    # ----- resume -----------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The parameters adaptation may change (all StyledConvs and the constant input), under rosinality
        key names."""
        names = {id(p): n for n, p in self.generator.named_parameters()}
        return {names[id(p)]: p.detach() for g in self.optimizer.param_groups for p in g["params"]}

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, on the CPU. "weights" holds only the trainable tensors that differ
        from the generator the run started from; "optimizer" is Adam's per-parameter state, indexed in
        the order of "param_names"."""
        start = dict(self.frozen.named_parameters())
        trained = self.trainable_state()
        weights = {k: v.detach().to("cpu", copy=True) for k, v in trained.items() if not torch.equal(v, start[k])}
        opt_state = {  # CPU copies: the run's writer thread encodes them while training goes on
            int(i): {k: torch.as_tensor(v).detach().to("cpu", copy=True) for k, v in st.items()}
            for i, st in self.optimizer.state_dict()["state"].items()
        }
        config = self.next_config  # a live change not yet applied (pins set, then stop) is saved too
        return {
            "step": self.step_count,
            "config": config.to_dict(),
            "weights": weights,
            "param_names": self._param_names(),
            "optimizer": opt_state,
            "scores": None if self.scores is None else self.scores.detach().to("cpu", copy=True),
            "rng": self.rng.get_state(),
        }

    def _param_names(self) -> list[str]:
        names = {id(p): n for n, p in self.generator.named_parameters()}
        return [names[id(p)] for g in self.optimizer.param_groups for p in g["params"]]

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from `state_dict()` of a Trainer built from the same starting generator."""
        names = self._param_names()
        # names[:-1]: saved before the constant input could train (it is last; its Adam state starts fresh).
        if state["optimizer"] and list(state["param_names"]) not in (names, names[:-1]):
            raise TrainingError("The saved state was made for a different generator architecture.")
        start = dict(self.frozen.named_parameters())
        with torch.no_grad():
            for name, p in self.trainable_state().items():
                p.copy_(state["weights"].get(name, start[name]))
        opt = self.optimizer.state_dict()
        opt["state"] = {int(i): dict(st) for i, st in state["optimizer"].items()}
        self.optimizer.load_state_dict(opt)  # moves the moments to the parameters' device
        self.scores = None if state["scores"] is None else state["scores"].clone()
        self.step_count = int(state["step"])
        try:
            self.rng.set_state(state["rng"])
        except (RuntimeError, ValueError):
            # Saved on another device type (CPU and CUDA generators keep different states): the run
            # goes on with a fresh, still seeded stream; only bit-for-bit equality is lost.
            self.rng.manual_seed(stream_seed(self.config.seed, self.step_count, "resume"))
