"""From a model id and a config to a live, saved session (an engine.live_run.Run): what the CLI and the
TUI share.

    files = check_inputs(config)                      # engine.inputs: prompts and target images, once
    run = start_session(config, "demo-tiny", image_files=files)   # or resume_session / fork_session
    run.start(on_event=post)                          # TUI: pause/resume/stop/update; run.close()
    result = train_session(run, on_event=show)        # headless: blocks; Ctrl-C/SIGTERM/SIGHUP save + stop

Model loading may download (minutes): call these from a worker thread in a UI. Nothing here prints.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from engine import sessions, target_images, zoo
from engine.clip_loss import ClipEncoder
from engine.config import TrainConfig
from engine.inputs import check_inputs
from engine.live_run import DEFAULT_CHECKPOINT_EVERY, Run, RunResult, train_session
from engine.stylegan2 import Generator
from engine.target_images import TargetImage
from engine.trainer import Trainer, TrainingError

__all__ = ["Run", "RunResult", "train_session", "start_session", "resume_session", "fork_session"]
Progress = Callable[..., Any] | None


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
    images: Sequence[TargetImage],
    device: str | torch.device | None = None,
    start: Mapping[str, torch.Tensor] | None = None,
    progress: Progress = None,
    sources: Sequence[TargetImage] = (),
) -> tuple[Trainer, dict[str, Any]]:
    """Load the base generator (+ `start` weights) and CLIP models, build a Trainer. The prompts and
    `images` (the run's target images, read; `sources` its source images) were checked by the caller
    (engine.inputs.check_inputs).

    Raises ConfigError (bad settings), ModelError or zoo errors (models)."""
    from engine import device as devices

    config.validate()
    dev = devices.resolve_device(device)
    g, base = load_base_generator(model_id, progress)
    if start:
        apply_weights(g, start)
    clips = load_clip_models(config, dev, progress)
    trainer = Trainer(config, g, clips, dev, target_images=[t.image for t in images],
                      source_images=[t.image for t in sources])
    return trainer, base


def read_images(config: TrainConfig, image_files: Sequence[Path] | None) -> list[TargetImage]:
    """The target images of a new run, read and checked (TargetImageError names the file). `image_files`:
    what check_inputs(config) returned; None when the caller did not check, so it is checked here; empty
    for images the caller left to find (a session's own, in the form): found here, the prompts not again."""
    if image_files is None:
        image_files = check_inputs(config)
    elif config.target_images and not image_files:
        image_files = target_images.find_image_files(config.target_images)
    return [target_images.read_target(f) for f in image_files]


def read_sources(config: TrainConfig) -> list[TargetImage]:
    """The source images of a new run, read and checked (their errors name source_images)."""
    field = target_images.SOURCE_FIELD
    return [target_images.read_target(f, field) for f in target_images.find_image_files(config.source_images, field)]


def start_session(
    config: TrainConfig,
    model_id: str,
    name: str | None = None,
    device: str | torch.device | None = None,
    root: str | os.PathLike[str] | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: Progress = None,
    sweep: Mapping[str, Any] | None = None,
    image_files: Sequence[Path] | None = None,
) -> Run:
    """Read the target images and load models first (nothing is written if that fails), then create the
    session. `image_files`: check_inputs(config)'s result (None: checked here).

    `sweep`: {"name": ..., "values": {setting: value}} when the run is one point of a sweep."""
    images, sources = read_images(config, image_files), read_sources(config)
    trainer, base = build_trainer(config, model_id, images, device, progress=progress, sources=sources)
    trainer.warnings.extend(t.note for t in (*images, *sources) if t.note)  # an animation trains on its first frame
    writer = sessions.create(trainer.state_dict(), base, name=name, root=root, sweep=sweep, target_images=images,
                             source_images=sources)
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
            sessions.target_images(info),  # its own copies: the originals may be gone
            device,
            start=sessions.start_weights(info),
            progress=progress,
            sources=sessions.source_images(info),
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
    image_files: Sequence[Path] | None = None,
) -> Run:
    """A new session with `changes` to the config (prompts, loss mix, iterations, ...).

    from_weights=True: it starts from the session's latest weights, which also become its frozen
    reference (chaining domains, as the reference's --frozen_gen_ckpt/--train_gen_ckpt both set to the
    adapted model), so the new source prompt should describe the adapted domain. False: from the base
    model. The parent is only read, so it may still be training. `image_files`: check_inputs's result for
    the new config (None: checked here); with the parent's target images the fork uses the parent's copies."""
    info = sessions.load(ref, root)
    config = info.config.replace(**dict(changes or {}))
    init = sessions.adapted_weights(info) if from_weights else {}
    if config.target_images == info.config.target_images:
        if image_files is None:
            check_inputs(config, find_images=False)
        images = sessions.target_images(info)  # the parent's copies: the originals may be gone
    else:
        images = read_images(config, image_files)
    same_sources = config.source_images == info.config.source_images
    sources = sessions.source_images(info) if same_sources else read_sources(config)
    trainer, base = build_trainer(config, info.model_id, images, device, start=init, progress=progress,
                                  sources=sources)
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
        source_images=sources,
    )
    return Run(writer, trainer, checkpoint_every)
