#!/usr/bin/env bash
# Remakes docs/photos.png: a demo session (red -> blue), an image its starting generator made (so an exact
# latent exists), inverted with --no-align, then photo | inverted | adapted side by side, 4x enlarged.
# Runs with an empty private home; needs nada-tui on PATH (or .venv/bin). About 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PWD/.venv/bin:$PATH"
tmp=$(mktemp -d)
export XDG_DATA_HOME=$tmp/data XDG_CACHE_HOME=$tmp/cache XDG_CONFIG_HOME=$tmp/config XDG_STATE_HOME=$tmp/state
nada-tui train --demo --quiet >/dev/null
id=$(nada-tui sessions list --json | head -1 | python -c "import json, sys; print(json.load(sys.stdin)['id'])")
nada-tui generate "$id" -n 1 --seed 50 --strength 0 --out "$tmp/photo" >/dev/null
nada-tui photos "$id" "$tmp/photo/seed_000050.png" --out "$tmp/out" --no-align --steps 300 >/dev/null
python - "$tmp/out/seed_000050" docs/photos.png <<'PY'
import sys
from PIL import Image, ImageDraw
stem, dest = sys.argv[1], sys.argv[2]
tiles = [Image.open(f"{stem}.{kind}.png").convert("RGB") for kind in ("aligned", "inverted", "adapted")]
side = tiles[0].width * 4
sheet = Image.new("RGB", (3 * side + 16, side + 24), "white")
for i, (tile, label) in enumerate(zip(tiles, ("photo", "inverted (frozen)", "adapted"))):
    sheet.paste(tile.resize((side, side), Image.Resampling.NEAREST), (i * (side + 8), 24))
    ImageDraw.Draw(sheet).text((i * (side + 8) + 4, 6), label, fill="black")
sheet.save(dest)
PY
rm -rf "$tmp"
echo "wrote docs/photos.png"
