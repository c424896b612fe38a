"""The one check of what a user gives a run: the prompts and the target (and source) images, once per Start.

The form (before it asks the app to start), the CLI commands `train` and `sessions fork`, and sweeps call
`check_inputs` before any model loads; the run builders in engine.runs take its result and read the
images it found, so nothing is checked twice and nobody waits for a download to hear that a prompt is bad.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import TrainConfig
from engine.target_images import SOURCE_FIELD, check_image_settings, find_image_files


def check_inputs(config: TrainConfig, find_images: bool = True) -> tuple[Path, ...]:
    """Refuse prompts CLIP cannot use and image settings that do not fit together; with `find_images`,
    find `config.target_images` (cheap: names and folders, no image is decoded) and return the files;
    `config.source_images` are found too (their errors name source_images), and found again by the run.
    `find_images=False` when the run uses a session's own copies of its images (the originals may be gone).

    Raises PromptError (engine.clip_loss), ConfigError or TargetImageError, each naming what to fix."""
    from engine.clip_loss import validate_prompts  # the tokenizer: loaded on the first check

    validate_prompts(config.source, config.target, config.templates, images=bool(config.target_images))
    check_image_settings(config)
    if not find_images or not config.target_images:
        return ()
    if config.source_images:
        find_image_files(config.source_images, SOURCE_FIELD)
    return tuple(find_image_files(config.target_images))
