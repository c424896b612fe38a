"""The StyleGAN-NADA training loop: config, a steppable Trainer, and a worker thread around it.

One step: z -> frozen mapping -> W+ (shared by both generators, with the same noise and the same
style-mixing crossover) -> frozen and trainable renders -> CLIP loss -> Adam on the StyledConvs that
adaptive freezing chose. The mapping network, constant input and to_rgb layers never train.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from engine import device as devices
from engine.clip_loss import ClipEncoder, ClipLoss, validate_prompts
from engine.events import (
    CheckpointSaved,
    Event,
    LogMessage,
    PreviewReady,
    SelectionDone,
    StateChanged,
    StepMetrics,
    TrainingFailed,
    TrainingFinished,
)
from engine.freezing import LayerSchedule, score_layers, top_k
from engine.sampling import grid, render_seeds, to_pil
from engine.stylegan2 import Generator

# The reference scales lr and beta2 by its g_reg ratio 4/5; we keep that so its recipes carry over.
LR_SCALE = 0.8
ADAM_BETAS = (0.0, 0.99**0.8)


class ConfigError(ValueError):
    """A training setting out of range; `field` names it, the message gives the allowed values."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to change."""


@dataclass(frozen=True)
class TrainConfig:
    source: str
    target: str
    iterations: int = 300
    batch: int = 2
    lr: float = 0.002  # Adam runs at lr * 0.8, betas (0, 0.99 ** 0.8), as the reference
    global_weight: float = 0.0  # g in (1 - g) * directional + g * global
    templates: bool = False  # average text directions over the 79 ImageNet templates
    clip_models: tuple[tuple[str, float], ...] = (("ViT-B/32", 1.0),)
    auto_layer_k: int | None = None  # None: int(2 * n_latent / 3); 0: every StyledConv trains
    auto_layer_iters: int = 1
    auto_layer_batch: int = 8
    auto_layer_interval: int = 10  # 1 = the reference (select every step)
    auto_layer_falloff: int = 50  # k drops by one every this many steps; 0 = never
    auto_layer_min_k: int = 1
    mixing: float = 0.0  # probability of style mixing in a training batch
    sample_truncation: float = 0.7
    preview_every: int = 25
    preview_seeds: tuple[int, ...] = (0, 1, 2, 3)
    seed: int = 0

    def __post_init__(self) -> None:
        # Tuples survive a JSON round trip as lists; normalise so equality and hashing keep working.
        object.__setattr__(self, "clip_models", tuple((str(n), float(w)) for n, w in self.clip_models))
        object.__setattr__(self, "preview_seeds", tuple(int(s) for s in self.preview_seeds))
        self.validate()

    def validate(self) -> None:
        def check(name: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise ConfigError(name, f"got {getattr(self, name)!r}; allowed: {allowed}")

        check("iterations", 1 <= self.iterations <= 1_000_000, "an integer from 1 to 1000000")
        check("batch", 1 <= self.batch <= 256, "an integer from 1 to 256")
        check("lr", 0 < self.lr <= 1 and math.isfinite(self.lr), "a number above 0 and at most 1")
        check("global_weight", 0 <= self.global_weight <= 1, "a number from 0 to 1")
        check("auto_layer_k", self.auto_layer_k is None or self.auto_layer_k >= 0, "0 (all layers) or more")
        check("auto_layer_iters", self.auto_layer_iters >= 1, "1 or more")
        check("auto_layer_batch", 1 <= self.auto_layer_batch <= 256, "an integer from 1 to 256")
        check("auto_layer_interval", self.auto_layer_interval >= 1, "1 (every step) or more")
        check("auto_layer_falloff", self.auto_layer_falloff >= 0, "0 (off) or more")
        check("auto_layer_min_k", self.auto_layer_min_k >= 1, "1 or more")
        check("mixing", 0 <= self.mixing <= 1, "a probability from 0 to 1")
        check("sample_truncation", 0 <= self.sample_truncation <= 1, "a number from 0 to 1")
        check("preview_every", self.preview_every >= 0, "0 (only at the end) or more")
        check("preview_seeds", 1 <= len(self.preview_seeds) <= 16, "1 to 16 seeds")
        check("seed", 0 <= self.seed < 2**63, "a non-negative integer")
        check("clip_models", len(self.clip_models) >= 1, "at least one (name, weight) pair")
        if not any(w > 0 for _, w in self.clip_models) or any(w < 0 for _, w in self.clip_models):
            raise ConfigError("clip_models", "weights must be 0 or more, and at least one above 0")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["clip_models"] = [list(m) for m in self.clip_models]
        d["preview_seeds"] = list(self.preview_seeds)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from saved settings; unknown keys (from a newer version) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)


def default_k(n_latent: int) -> int:
    return int(2 * n_latent / 3)


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
    ) -> None:
        validate_prompts(config.source, config.target, config.templates)
        self.device = devices.resolve_device(device)
        devices.configure(self.device)
        self.config = config
        self.frozen = copy.deepcopy(generator).to(self.device).eval().requires_grad_(False)
        self.generator = copy.deepcopy(self.frozen).requires_grad_(False)
        missing = [n for n, w in config.clip_models if w > 0 and n not in clip_models]
        if missing:
            raise TrainingError(f"CLIP model(s) {', '.join(missing)} are not loaded")
        encoders = [(clip_models[n].to(self.device), w) for n, w in config.clip_models if w > 0]
        self.loss = ClipLoss(encoders, config.global_weight, config.templates)
        # Text directions are computed (and checked) now rather than at the first step.
        for enc, _ in self.loss.models:
            self.loss.direction(enc, config.source, config.target)

        n = self.generator.n_latent
        k0 = default_k(n) if config.auto_layer_k is None else min(config.auto_layer_k, n - 1)
        self.schedule = LayerSchedule(
            k0, config.auto_layer_interval, config.auto_layer_falloff, config.auto_layer_min_k
        )
        self.convs = self.generator.styled_convs()
        self.optimizer = torch.optim.Adam(
            [p for c in self.convs for p in c.parameters()], lr=config.lr * LR_SCALE, betas=ADAM_BETAS
        )
        # Latents and noise are drawn on the training device (no host-to-device copies each step);
        # on CPU that also makes runs bit-for-bit repeatable.
        self.rng = torch.Generator(self.device).manual_seed(config.seed)
        self.step_count = 0
        self.scores: torch.Tensor | None = None
        self.trained: tuple[int, ...] = ()
        self.selected_this_step = False
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._step_time_ema: float | None = None
        self._started = time.perf_counter()

    # ----- live changes -----------------------------------------------------------------------
    def update(self, **changes: Any) -> None:
        """Change settings that may change mid-run (global_weight); applied at the next step."""
        allowed = {"global_weight", "iterations", "preview_every"}
        bad = set(changes) - allowed
        if bad:
            raise ConfigError(sorted(bad)[0], f"cannot change during a run; only {sorted(allowed)} can")
        self.config.replace(**changes)  # validates
        with self._lock:
            self._pending.update(changes)

    def _apply_pending(self) -> None:
        with self._lock:
            if not self._pending:
                return
            self.config = self.config.replace(**self._pending)
            self._pending.clear()
        self.loss.global_weight = self.config.global_weight

    # ----- one step ---------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.step_count >= self.config.iterations

    def _latents(self, batch: int) -> torch.Tensor:
        """W+ codes from the frozen mapping, with style mixing drawn once for both generators."""
        d, n = self.frozen.style_dim, self.frozen.n_latent
        z = torch.randn(batch, d, generator=self.rng, device=self.device)
        with torch.no_grad():
            w_plus = self.frozen.w_plus(self.frozen.mapping(z))
            # The mixing coin and crossover come from a CPU generator keyed on (seed, step): no GPU
            # sync to read them, and nothing extra to save for resume.
            coin = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step_count)
            if self.config.mixing > 0 and torch.rand((), generator=coin).item() < self.config.mixing:
                z2 = torch.randn(batch, d, generator=self.rng, device=self.device)
                cut = int(torch.randint(1, n, (), generator=coin))
                w_plus[:, cut:] = self.frozen.mapping(z2).unsqueeze(1)
        return w_plus

    def select_layers(self) -> torch.Tensor:
        cfg = self.config
        z = torch.randn(cfg.auto_layer_batch, self.frozen.style_dim, generator=self.rng, device=self.device)
        noise = self.frozen.make_noise(cfg.auto_layer_batch, self.rng)
        with torch.no_grad():
            w = self.frozen.mapping(z)
        scores = score_layers(
            self.generator,
            w,
            lambda img: self.loss.global_loss(img, cfg.target),
            cfg.auto_layer_iters,
            noise=noise,
        )
        return scores.float().cpu()

    def trained_indices(self, step: int) -> tuple[int, ...]:
        k = self.schedule.k_at(step)
        if k == 0:
            return tuple(range(len(self.convs)))
        assert self.scores is not None
        return top_k(self.scores, k)

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

        w_plus = self._latents(cfg.batch)
        noise = self.frozen.make_noise(cfg.batch, self.rng)
        with torch.no_grad():
            frozen_img = self.frozen.synthesis(w_plus, noise)
        trained_img = self.generator.synthesis(w_plus, noise)
        terms = self.loss(frozen_img, trained_img, cfg.source, cfg.target)
        values = dict(zip(terms, torch.stack(list(terms.values())).tolist(), strict=True))  # one sync
        if not all(math.isfinite(v) for v in values.values()):
            raise TrainingError(
                f"The loss became {values['total']} at step {t + 1}; the weights of step {t} are kept. "
                "Lower the learning rate (lr) or the batch's truncation, or check the CLIP model."
            )
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimizer.step()
        self.step_count += 1

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
            k=self.schedule.k_at(t),
            scores=None if self.scores is None else tuple(self.scores.tolist()),
            next_selection=self.schedule.next_selection(t),
            global_weight=cfg.global_weight,
            memory=devices.memory(self.device),
        )

    # ----- pictures ---------------------------------------------------------------------------
    def preview(self, seeds: tuple[int, ...] | None = None) -> PreviewReady:
        """The same seeds, truncation and noise through the frozen and the adapted generator."""
        seeds = tuple(seeds or self.config.preview_seeds)
        t = self.config.sample_truncation
        frozen = grid(to_pil(render_seeds(self.frozen, seeds, t)))
        adapted = grid(to_pil(render_seeds(self.generator, seeds, t)))
        return PreviewReady(self.step_count, seeds, frozen, adapted)

    # ----- resume -----------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The parameters adaptation may change (all StyledConvs), under rosinality key names."""
        names = {id(p): n for n, p in self.generator.named_parameters()}
        return {names[id(p)]: p.detach() for c in self.convs for p in c.parameters()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "config": self.config.to_dict(),
            "weights": {k: v.cpu().clone() for k, v in self.trainable_state().items()},
            "optimizer": self.optimizer.state_dict(),
            "scores": None if self.scores is None else self.scores.clone(),
            "rng": self.rng.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        current = self.trainable_state()
        missing = set(current) - set(state["weights"])
        if missing:
            raise TrainingError(f"saved state lacks {len(missing)} trainable tensors, e.g. {sorted(missing)[0]}")
        with torch.no_grad():
            for name, p in current.items():
                p.copy_(state["weights"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scores = None if state["scores"] is None else state["scores"].clone()
        self.step_count = int(state["step"])
        try:
            self.rng.set_state(state["rng"])
        except (RuntimeError, ValueError):
            # Saved on another device type (CPU and CUDA generators keep different states): the run
            # goes on with a fresh, still seeded stream; only bit-for-bit equality is lost.
            self.rng.manual_seed(self.config.seed + self.step_count)


OOM_ADVICE = (
    "The GPU ran out of memory at step {step}. Lower the batch (now {batch}) or auto_layer_batch "
    "(now {auto_batch}), use fewer CLIP models, or pick a smaller generator; then retrain."
)

CheckpointFn = Callable[[Trainer, str], Path | None]


class TrainingWorker:
    """Runs a Trainer on a background thread; pause/resume/stop take effect between steps.

    Events go to `on_event` from the worker thread; it must only queue or post them (a Textual app
    uses `post_message`), never block on the UI. `checkpoint(trainer, reason)` is called every
    `checkpoint_every` steps and on pause, stop, finish and `save_now()`.
    """

    def __init__(
        self,
        trainer: Trainer,
        on_event: Callable[[Event], None],
        checkpoint: CheckpointFn | None = None,
        checkpoint_every: int = 0,
    ) -> None:
        self.trainer = trainer
        self.on_event = on_event
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._save_now = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "idle"

    # ----- control (any thread) ---------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a TrainingWorker runs once; make a new one to train again")
        self._thread = threading.Thread(target=self.run, name="nada-train", daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    def save_now(self) -> None:
        self._save_now.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ----- the loop (worker thread, or the caller's for headless runs) ------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        self.on_event(StateChanged(state, self.trainer.step_count))

    def _save(self, reason: str) -> None:
        if self.checkpoint is None:
            return
        try:
            path = self.checkpoint(self.trainer, reason)
        except OSError as exc:  # full disk, permissions: keep training, say so
            self.on_event(
                LogMessage(
                    "error",
                    f"Checkpoint at step {self.trainer.step_count} failed: {exc}. The previous checkpoint is intact.",
                )
            )
            return
        if path is not None:
            self.on_event(CheckpointSaved(self.trainer.step_count, path, reason))

    def run(self) -> None:
        tr = self.trainer
        last: dict[str, float] = {}
        self._set_state("running")
        try:
            while not tr.done and not self._stop.is_set():
                if not self._running.is_set():
                    self._set_state("paused")
                    self._save("pause")
                    while not self._running.wait(0.1):
                        pass
                    if self._stop.is_set():
                        break
                    self._set_state("running")
                metrics = tr.step()
                last = metrics.losses
                if tr.selected_this_step and tr.scores is not None:
                    self.on_event(SelectionDone(metrics.step - 1, tuple(tr.scores.tolist()), tr.trained))
                self.on_event(metrics)
                every = tr.config.preview_every
                if every and metrics.step % every == 0 and not tr.done:
                    self.on_event(tr.preview())
                if self._save_now.is_set():
                    self._save_now.clear()
                    self._save("manual")
                elif self.checkpoint_every and metrics.step % self.checkpoint_every == 0 and not tr.done:
                    self._save("interval")
        except torch.cuda.OutOfMemoryError:
            cfg = tr.config
            if tr.device.type == "cuda":
                torch.cuda.empty_cache()
            self._fail(
                "oom",
                OOM_ADVICE.format(step=tr.step_count + 1, batch=cfg.batch, auto_batch=cfg.auto_layer_batch),
            )
            return
        except TrainingError as exc:
            kind = "nan" if "loss became" in str(exc) else "error"
            self._fail(kind, str(exc))
            return
        except Exception as exc:  # anything else still reaches the user as an event, not a dead thread
            self._fail("error", f"Training stopped at step {tr.step_count}: {type(exc).__name__}: {exc}")
            return
        stopped = not tr.done
        self._set_state("stopping")
        self.on_event(tr.preview())
        self._save("stop" if stopped else "finish")
        self.on_event(TrainingFinished(tr.step_count, last, stopped=stopped))
        self.state = "finished"

    def _fail(self, kind: str, message: str) -> None:
        self.state = "failed"
        if kind == "nan":
            self._save("stop")  # the weights are still those of the last good step
        self.on_event(TrainingFailed(self.trainer.step_count, kind, message))
