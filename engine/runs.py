"""From a model id and a config to a running, saved session: what the CLI and the TUI share.

    run = start_session(config, "demo-tiny")          # or resume_session(id) / fork_session(id, {...})
    worker = run.make_worker(on_event=post)           # TUI: worker.start(); pause/resume/stop; run.close()
    result = train_session(run, on_event=show)        # headless: blocks; Ctrl-C/SIGTERM/SIGHUP save + stop

Model loading may download (minutes): call these from a worker thread in a UI. Nothing here prints.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine import sessions, target_images, zoo
from engine.clip_loss import ClipEncoder
from engine.config import TrainConfig
from engine.events import (
    Event,
    LogMessage,
    StepMetrics,
    TrainingFailed,
    TrainingFinished,
)
from engine.stylegan2 import Generator
from engine.target_images import TargetImage
from engine.trainer import Trainer, TrainingError, TrainingWorker

Progress = Callable[..., Any] | None
DEFAULT_CHECKPOINT_EVERY = 50
HANDLED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class ModelError(RuntimeError):
    """A base model or CLIP model that cannot be loaded (or no longer matches a session)."""


# ----- models (loading is zoo's; this adds what a session records about them) -----------------------
def load_base_generator(model_id: str, progress: Progress = None) -> tuple[Generator, dict[str, Any]]:
    """A base generator by registry name, the demo id, or file path, with the facts a session records.

    Raises zoo's CheckpointError / DownloadError."""
    g, info = zoo.load_generator_by_id(model_id, progress=progress)
    base = {
        "id": model_id,
        "sha256": info.get("sha256"),
        "format": info.get("format"),
        "size": g.size,
        "weights_sha256": sessions.weights_sha256(g),
    }
    return g, base


def load_clip_models(
    config: TrainConfig, device: str | torch.device = "cpu", progress: Progress = None
) -> dict[str, ClipEncoder]:
    """The encoders a config needs (weight-0 models are skipped: they are never evaluated)."""
    out: dict[str, ClipEncoder] = {}
    for name, weight in config.clip_models:
        if weight > 0 and name not in out:
            out[name] = zoo.load_clip_by_name(name, device=str(device), progress=progress)
    return out


def apply_weights(generator: Generator, weights: Mapping[str, torch.Tensor]) -> Generator:
    """Copy named tensors into `generator` in place; unknown names are an error (wrong architecture)."""
    params = dict(generator.named_parameters())
    unknown = sorted(set(weights) - set(params))
    if unknown:
        raise ModelError(f"Saved weights do not fit this generator (e.g. '{unknown[0]}').")
    with torch.no_grad():
        for name, t in weights.items():
            if params[name].shape != t.shape:
                raise ModelError(
                    f"Saved weight '{name}' has shape {tuple(t.shape)}, the generator {tuple(params[name].shape)}."
                )
            params[name].copy_(t)
    return generator


def check_base(info: sessions.SessionInfo, base: Mapping[str, Any]) -> None:
    want = info.base_model.get("weights_sha256")
    if want and want != base["weights_sha256"]:
        raise ModelError(
            f"The base model '{info.model_id}' no longer matches session {info.id} (its weights changed "
            "since the session was made). Restore the original file to use this session."
        )


def session_generators(
    info: sessions.SessionInfo, device: str | torch.device = "cpu", progress: Progress = None
) -> tuple[Generator, Generator]:
    """(start, adapted): the generator a session began from and its latest checkpoint."""
    base, base_info = load_base_generator(info.model_id, progress)
    check_base(info, base_info)
    start = apply_weights(base, sessions.start_weights(info))
    adapted = apply_weights(copy.deepcopy(start), sessions.checkpoint_weights(info))
    return start.to(device).eval(), adapted.to(device).eval()


def build_trainer(
    config: TrainConfig,
    model_id: str,
    device: str | torch.device | None = None,
    start: Mapping[str, torch.Tensor] | None = None,
    progress: Progress = None,
    images: Sequence[TargetImage] | None = None,
) -> tuple[Trainer, dict[str, Any]]:
    """Validate `config`, load the base generator (+ `start` weights) and CLIP models, build a Trainer.
    `images`: the run's target images (a session's copies); read from `config.target_images` if None.

    Raises ConfigError / PromptError (bad settings), ModelError or zoo errors (models)."""
    from engine import device as devices

    config.validate()
    if images is None:
        images = read_target_images(config)  # checks the prompts too; all before any download
    else:
        check_targets(config)
    dev = devices.resolve_device(device)
    g, base = load_base_generator(model_id, progress)
    if start:
        apply_weights(g, start)
    clips = load_clip_models(config, dev, progress)
    return Trainer(config, g, clips, dev, target_images=[t.image for t in images]), base


def check_targets(config: TrainConfig) -> None:
    """The prompts and the image settings (no file is read)."""
    from engine.clip_loss import validate_prompts

    validate_prompts(config.source, config.target, config.templates, images=bool(config.target_images))
    target_images.check_image_settings(config)


def read_target_images(config: TrainConfig) -> list[TargetImage]:
    """Check the prompts, then read and check the target images: bad input is refused before anything is
    written or downloaded (TargetImageError names the file and what to do)."""
    check_targets(config)
    return target_images.load_target_images(config.target_images)


# ----- a session being trained --------------------------------------------------------------------
@dataclass
class RunResult:
    session_id: str
    path: Path
    status: str  # "finished", "stopped", "failed"
    step: int
    total_steps: int
    losses: dict[str, float] = field(default_factory=dict)
    message: str | None = None  # the failure, for "failed"
    signal: str | None = None  # "SIGTERM" etc. when a signal stopped the run
    checkpoint_error: str | None = None  # set when the last save failed (the previous one is intact)
    saved_step: int | None = None  # the step the session holds: below `step` when the last save failed

    @property
    def saved(self) -> bool:
        """False when the last steps are not on disk (the final save failed)."""
        return self.saved_step is None or self.saved_step == self.step


class Run:
    """A Trainer bound to the session it writes. Owns the session lock until `close()`."""

    def __init__(
        self, writer: sessions.SessionWriter, trainer: Trainer, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    ) -> None:
        self.writer = writer
        self.trainer = trainer
        self.checkpoint_every = checkpoint_every
        self.worker: TrainingWorker | None = None
        self.signal_name: str | None = None
        self._write_error_reported = False

    @property
    def session_id(self) -> str:
        return self.writer.id

    @property
    def path(self) -> Path:
        return self.writer.path

    def checkpoint(self, trainer: Trainer, reason: str) -> Path:
        """TrainingWorker's checkpoint callback (raises OSError on a full disk, old checkpoint intact)."""
        if reason == "stop" and self.signal_name:
            reason = "signal"
        return self.writer.checkpoint(trainer, reason)

    def make_worker(self, on_event: Callable[[Event], None] | None = None) -> TrainingWorker:
        """A TrainingWorker that records every event into the session, then forwards it to `on_event`."""

        def handle(event: Event) -> None:
            try:
                self.writer.record(event)
            except OSError as exc:
                # Metrics and samples are best effort; say so once, keep training.
                if not self._write_error_reported and on_event is not None:
                    self._write_error_reported = True
                    on_event(
                        LogMessage(
                            "error",
                            f"Could not write to session {self.session_id}: {exc}. "
                            "Training goes on; checkpoints are retried.",
                        )
                    )
            else:
                if isinstance(event, StepMetrics):
                    self._write_error_reported = False
            if on_event is not None:
                try:
                    on_event(event)
                except OSError:
                    pass  # a closed terminal (SIGHUP) must not stop training or saving

        self.worker = TrainingWorker(
            self.trainer,
            handle,
            checkpoint=self.checkpoint,
            checkpoint_every=self.checkpoint_every,
            warnings=self.writer.warnings,  # found when the session was opened (a gap in its metrics)
        )
        return self.worker

    def request_stop(self, signal_name: str | None = None) -> None:
        """Stop after the current step (then save). Safe from signal handlers and other threads."""
        if signal_name and self.signal_name is None:
            self.writer.stop_reason = signal_name
            self.signal_name = signal_name
        if self.worker is not None:
            self.worker.stop()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_session(
    config: TrainConfig,
    model_id: str,
    name: str | None = None,
    device: str | torch.device | None = None,
    root: str | os.PathLike[str] | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: Progress = None,
    sweep: Mapping[str, Any] | None = None,
) -> Run:
    """Check settings and load models first (nothing is written if that fails), then create the session.

    `sweep`: {"name": ..., "values": {setting: value}} when the run is one point of a sweep."""
    images = read_target_images(config)
    trainer, base = build_trainer(config, model_id, device, progress=progress, images=images)
    trainer.warnings.extend(t.note for t in images if t.note)  # an animation trains on its first frame
    writer = sessions.create(trainer.state_dict(), base, name=name, root=root, sweep=sweep, target_images=images)
    return Run(writer, trainer, checkpoint_every)


def resume_session(
    ref: str,
    root: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    iterations: int | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: Progress = None,
) -> Run:
    """Continue a session from its last checkpoint (the same loss curve as an uninterrupted run).

    `iterations` extends (or shortens) the run. Raises SessionLocked if another process trains it."""
    writer, state = sessions.open_writer(ref, root)
    try:
        info = writer.info()
        config = TrainConfig.from_dict(state["config"])
        if iterations is not None:
            config = config.replace(iterations=iterations)
        step = state["step"]
        if step >= config.iterations:
            raise sessions.AlreadyFinished(
                f"Session {info.id} already ran {step} of {config.iterations} steps; "
                f"give more iterations to train further (e.g. --iters {step + config.iterations})."
            )
        trainer, base = build_trainer(
            config,
            info.model_id,
            device,
            start=sessions.start_weights(info),
            progress=progress,
            images=sessions.target_images(info),  # its own copies: the originals may be gone
        )
        check_base(info, base)
        try:
            trainer.load_state_dict(state)
        except TrainingError as exc:
            raise sessions.DamagedSession(f"Session {info.id} cannot be resumed: {exc}") from None
        writer.data["config"] = config.to_dict()
        writer.set_status("running")
        return Run(writer, trainer, checkpoint_every)
    except BaseException:
        writer.close()
        raise


FORK_SUFFIX = re.compile(r"(\s*\((fork|fork of .*)\))+$")


def fork_name(source: str, target: str, parent_name: str) -> str:
    """A fork's display name: its own prompts and the parent it came from, e.g. "a green image -> a blue
    image (fork of a red image -> a blue image)". A parent that is a fork itself is named without its
    own "(fork of ...)", so names never stack."""
    parent = FORK_SUFFIX.sub("", parent_name).strip() or parent_name
    return f"{source} -> {target} (fork of {parent})"


def fork_session(
    ref: str,
    changes: Mapping[str, Any] | None = None,
    from_weights: bool = True,
    name: str | None = None,
    root: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: Progress = None,
) -> Run:
    """A new session with `changes` to the config (prompts, loss mix, iterations, ...).

    from_weights=True: it starts from the session's latest weights, which also become its frozen
    reference (chaining domains, as the reference's --frozen_gen_ckpt/--train_gen_ckpt both set to the
    adapted model), so the new source prompt should describe the adapted domain. False: from the base
    model. The parent is only read, so it may still be training."""
    info = sessions.load(ref, root)
    config = info.config.replace(**dict(changes or {}))
    init = sessions.adapted_weights(info) if from_weights else {}
    if config.target_images == info.config.target_images:
        images = sessions.target_images(info)  # the parent's copies: the originals may be gone
    else:
        images = read_target_images(config)
    trainer, base = build_trainer(config, info.model_id, device, start=init, progress=progress, images=images)
    check_base(info, base)
    parent = {"id": info.id, "step": info.step, "from_weights": from_weights}
    display = name or fork_name(config.source, target_images.describe(config.target, len(images)), info.name)
    writer = sessions.create(
        trainer.state_dict(),
        base,
        name=display,
        root=root,
        init_weights=init or None,
        parent=parent,
        target_images=images,
    )
    return Run(writer, trainer, checkpoint_every)


# ----- headless training --------------------------------------------------------------------------
def train_session(
    run: Run,
    on_event: Callable[[Event], None] | None = None,
    handle_signals: bool = True,
) -> RunResult:
    """Train on this thread until done or stopped. With `handle_signals` (main thread only), the first
    Ctrl-C / SIGTERM / SIGHUP stops after the current step, saves and returns; a second Ctrl-C exits
    at once (the previous checkpoint is intact), other repeats are ignored. The session stays locked
    until `run.close()`."""
    final: list[Event] = []

    def collect(event: Event) -> None:
        if isinstance(event, TrainingFinished | TrainingFailed):
            final.append(event)
        if on_event is not None:
            on_event(event)

    worker = run.make_worker(collect)
    previous: dict[int, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():

        def handler(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if run.signal_name is not None:
                if signum == signal.SIGINT:  # a second Ctrl-C: quit now; the last checkpoint is intact
                    os._exit(128 + signum)
                return  # already stopping (a SIGHUP after a SIGTERM, say): let the save finish
            run.request_stop(name)

        for name in HANDLED_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                previous[sig] = signal.signal(sig, handler)
    try:
        worker.run()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    tr = run.trainer
    end = final[-1] if final else None
    if isinstance(end, TrainingFailed):
        status, losses, message = "failed", {}, end.message
    else:
        stopped = end.stopped if isinstance(end, TrainingFinished) else not tr.done
        status = "stopped" if stopped else "finished"
        losses = dict(end.losses) if isinstance(end, TrainingFinished) else {}
        message = None
    return RunResult(
        session_id=run.session_id,
        path=run.path,
        status=status,
        step=tr.step_count,
        total_steps=tr.config.iterations,
        losses=losses,
        message=message,
        signal=run.signal_name,
        checkpoint_error=run.writer.last_checkpoint_error,
        saved_step=worker.saved_step,
    )
