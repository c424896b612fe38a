"""What a session directory holds: its file names, the schema version and the statuses.

Layout of `<root>/<YYYYmmdd-HHMMSS-slug>/` (root: `engine.paths.sessions_dir()` unless given):

- `session.json`: schema version, id, display name, base model (id, file sha256, weights sha256), CLIP
  models, the full training config, status, the step of the last checkpoint, timestamps, last losses,
  the parent (forks) and the sweep (runs of a sweep).
- `metrics.jsonl`: one JSON object per step, appended and flushed. A kill may leave a torn last line;
  readers skip it. On resume, lines past the checkpoint step are dropped so the curve continues cleanly.
- `checkpoint.safetensors`: `Trainer.state_dict()` (see `state.py`): the trainable tensors that differ
  from the generator the run started from, the Adam state, the layer scores and the RNG state; the step
  and settings sit in its metadata. This file alone decides where a resume starts; `session.json` may
  lag it by one checkpoint after a kill.
- `init.safetensors` (forks only): the starting weights, as tensors that differ from the base model.
- `samples/step_NNNNNN.png`: the preview seeds, frozen row over adapted row (tiles at most 256 px).
- `grid.png`: the same at full size, written when the run stops or finishes.
- `targets/NNN.png` (runs with target images only): the images as they trained (RGB, longer side at most
  512 px, at most 64), listed in session.json's `target_images` with their original paths (`targets.py`).
- `photos/<stem>.{aligned,inverted,adapted}.png, <stem>.latent.npz`: photos inverted through the session
  (`nada-tui photos`, engine.photos.outputs).
- `scores.json`: the scores of its latest evaluation (`nada-tui eval`, or the cheap ones every run computes
  when it ends): CLIP direction and target agreement, diversity beside the frozen generator's (`scores.py`).
- `lock`: `flock`ed by the one process allowed to write the session; holds its pid.

Every file is replaced atomically (`engine.atomic`), so a kill at any moment leaves the last good state.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
SESSION_FILE = "session.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_FILE = "checkpoint.safetensors"
INIT_FILE = "init.safetensors"
LOCK_FILE = "lock"
SAMPLES_DIR = "samples"
GRID_FILE = "grid.png"
TARGETS_DIR = "targets"
PHOTOS_DIR = "photos"
SOURCES_DIR = "sources"
SCORES_FILE = "scores.json"
SAMPLE_TILE_MAX = 256

STATUSES = ("running", "paused", "stopped", "finished", "failed")
