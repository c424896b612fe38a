#!/usr/bin/env bash
# Should StyleGAN3 layers L10 and L12 train? The reference's SG3 branch never trains them (no reason given);
# we let adaptive selection choose. This runs both on a random SG3-T with the official 14 layers and margin
# 10 (64 px, 16 channels), the colour oracle as CLIP, red -> blue, 100 steps, seeds 1-5: "all" (every layer
# eligible, our default) against "skip" (`--pin-off 11,13`: W+ 11 and 13 drive L10 and L12, as the
# reference). It prints, per run and per arm, the mean directional loss of the last 20 steps, the CLIP
# direction score of the end (nada-tui eval's clip_direction, 16 samples) and the share of steps that
# trained W+ 11 and 13. Runs with an empty private home; about 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PWD/.venv/bin:$PATH"
tmp=$(mktemp -d)
export XDG_DATA_HOME=$tmp/data XDG_CACHE_HOME=$tmp/cache XDG_CONFIG_HOME=$tmp/config XDG_STATE_HOME=$tmp/state
python - "$tmp/sg3t14.pt" <<'PY'
import sys
from engine.generator_files import save_rosinality
from engine.stylegan3 import fresh_generator
g = fresh_generator(64, "t", seed=3, z_dim=32, w_dim=32, num_layers=14, margin_size=10, channel_base=1024,
                    channel_max=16)
save_rosinality(g, sys.argv[1])
PY
for seed in 1 2 3 4 5; do
  for arm in all skip; do
    pins=(); [ "$arm" = skip ] && pins=(--pin-off 11,13)
    nada-tui train --model "$tmp/sg3t14.pt" --clip demo-colour-oracle --source "a red image" \
      --target "a blue image" --iters 100 --seed "$seed" --checkpoint-every 0 --quiet "${pins[@]}" \
      --name "l1012-$arm-s$seed" >/dev/null
  done
done
python - "$XDG_DATA_HOME/nada-tui/sessions" <<'PY'
import collections, json, pathlib, statistics as st, sys
arms = collections.defaultdict(list)
for d in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    arm = d.name.split("l1012-")[1].split("-")[0]
    steps = [json.loads(line) for line in open(d / "metrics.jsonl")]
    loss = st.mean(r["losses"]["directional"] for r in steps[-20:])
    score = json.load(open(d / "scores.json"))["clip_direction"]
    trained = collections.Counter(i for r in steps for i in r["trained"])
    row = (loss, score, trained[11] / len(steps), trained[13] / len(steps))
    arms[arm].append(row)
    print(d.name.split("l1012-")[1], "dir loss %.4f  clip_direction %.4f  w11 %.2f  w13 %.2f" % row)
for arm, rows in arms.items():
    col = list(zip(*rows))
    print(f"{arm}: dir loss {st.mean(col[0]):.4f} +- {st.stdev(col[0]):.4f}  clip_direction {st.mean(col[1]):.4f}"
          f" +- {st.stdev(col[1]):.4f}  w11 {st.mean(col[2]):.2f}  w13 {st.mean(col[3]):.2f}  (n={len(rows)})")
PY
rm -rf "$tmp"
