"""Turn a nada-tui `<name>.nvidia.pt` into the `.pkl` that NVIDIA's stylegan2-ada-pytorch tools open.

nada-tui writes this script next to every NVIDIA export. Run it inside your own checkout of NVIDIA's
stylegan2-ada-pytorch repository (it imports their `training.networks`; nada-tui ships none of their code):

    cd stylegan2-ada-pytorch
    python /path/to/nvidia_export_script.py /path/to/NAME.nvidia.pt [--out NAME.pkl]

It builds their `Generator(**init_kwargs)`, loads the exported weights with `strict=True`, and pickles
{"G", "G_ema", "D", "augment_pipe", "training_set_kwargs"} as their training snapshots are laid out, so
generate.py, projector.py and the viewers open it. nada-tui trains no discriminator: "D" is an empty
placeholder module, so the file samples and projects but cannot resume NVIDIA's GAN training.
"""

from __future__ import annotations

import argparse
import copy
import os
import pickle
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", help="the NAME.nvidia.pt file nada-tui wrote")
    parser.add_argument("--out", help="the .pkl to write (default: NAME.pkl beside the export)")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.getcwd())
    try:
        import torch
        from training import networks
    except ImportError as exc:
        print(f"error: {exc}. Run this inside a checkout of NVIDIA's stylegan2-ada-pytorch, with its "
              "requirements installed (training/networks.py must import).", file=sys.stderr)
        return 2
    export = Path(args.export)
    data = torch.load(export, map_location="cpu", weights_only=True)
    generator = networks.Generator(**data["init_kwargs"])
    generator.load_state_dict(data["state_dict"], strict=True)
    generator = generator.eval().requires_grad_(False)
    name = export.name.removesuffix(".pt").removesuffix(".nvidia")
    out = Path(args.out) if args.out else export.with_name(name + ".pkl")
    snapshot = {
        "G": generator,
        "G_ema": copy.deepcopy(generator),
        "D": torch.nn.Module(),  # placeholder: their loader wants a module here; nada-tui has no discriminator
        "augment_pipe": None,
        "training_set_kwargs": None,
    }
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            pickle.dump(snapshot, f)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
