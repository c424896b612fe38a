"""The checks of a parsed sweep that need the model registry and CLIP's tokenizer (they import torch, so
they run only before a submission or a dry run, never for `sweep status`)."""

from __future__ import annotations

from engine.config import SETTINGS, ConfigError
from engine.sweeps.fileformat import RunSpec, Sweep, SweepError
from engine.sweeps.locator import key_lines


def check_sweep(sweep: Sweep) -> Sweep:
    """The checks that need the model registry and CLIP's tokenizer (imports torch): known model names,
    prompts and target images a run can use (engine.inputs.check_inputs, as `train` checks them). Fills
    in a registry model's own source prompt where the file gives none."""
    from engine import zoo
    from engine.errors import CheckpointError, PromptError
    from engine.inputs import check_inputs

    runs = []
    for run in sweep.runs:
        config = run.config
        if not run.demo:
            try:
                choice = zoo.resolve_model(run.model_id)
            except CheckpointError as exc:  # UnknownModel too
                raise _at(sweep, run, "model", str(exc)) from None
            if not config.source.strip():
                config = config.replace(source=choice.source_prompt)
        if not config.source.strip():
            raise _at(sweep, run, "source", f'run {run.index + 1} has no source prompt: set source = "..."')
        try:
            check_inputs(config)
        except (PromptError, ConfigError) as exc:  # TargetImageError too; each names its field
            raise _at(sweep, run, exc.field, f"run {run.index + 1}: {exc}") from None
        runs.append(
            run if config is run.config else RunSpec(run.index, run.name, run.model_id, config, run.demo, run.values)
        )
    return Sweep(sweep.name, sweep.path, tuple(runs), dict(sweep.slurm), sweep.keys, sweep.shown)


def _at(sweep: Sweep, run: RunSpec, key: str, message: str) -> SweepError:
    """An error about `key` of a run, at the line where the file sets it (grid, entry, or defaults)."""
    line = None
    if sweep.path is not None:
        try:
            lines = key_lines(sweep.path.read_text(encoding="utf-8"))
        except OSError:
            lines = {}
        names = [key] + (
            [SETTINGS[key].sweep_key, SETTINGS[key].sweep_key.replace("-", "_")] if key in SETTINGS else []
        )
        # The grid first (it is what differs between runs), then [[runs]] entries, then [defaults].
        entries = sorted({p[1] for p in lines if len(p) == 2 and p[0] == "runs" and isinstance(p[1], int)})
        for where in [("grid",), *[("runs", e) for e in entries], ("defaults",)]:
            line = next((lines[(*where, n)] for n in names if (*where, n) in lines), None)
            if line is not None:
                break
    return SweepError(message, sweep.shown or sweep.path, line, key)
