"""`nada-tui generate SESSION -n N --out DIR`: sample images from a session's adapted generator."""

from __future__ import annotations

import argparse

from nada_tui.cli._common import add_run_options, device_of, setup_or_exit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="render N images from a session",
        description="Render seeds S..S+N-1 from a session's generator into DIR/seed_NNNNNN.png. "
        "--strength blends the generator the session started from (0) and the adapted one (1).",
    )
    p.add_argument("session", help="session id or a unique prefix of it")
    p.add_argument("-n", type=int, default=8, metavar="N", help="how many images (default 8)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="first seed (default 0)")
    p.add_argument(
        "--truncation",
        type=float,
        default=None,
        metavar="T",
        help="0..1; 1 = none (default: the session's sample truncation, usually 0.7)",
    )
    p.add_argument(
        "--strength",
        type=float,
        default=1.0,
        metavar="A",
        help="0 = the original generator exactly, 1 = fully adapted (default 1)",
    )
    p.add_argument(
        "--seed-convention",
        choices=["ours", "nvidia"],
        default="ours",
        help="how a seed becomes a latent: ours (default: torch's generator seeded with it) or nvidia (numpy's "
        "RandomState(seed).randn, as NVIDIA's generate.py draws it: seed 42 of a converted NVIDIA model is "
        "their seed 42)",
    )
    p.add_argument(
        "--latents",
        nargs="+",
        metavar="FILE",
        help="render these .latent.npz files (from `nada-tui photos`) instead of seeds: "
        "DIR/<name>.<session>.png; -n, --seed and --truncation do not apply",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the PNGs (created if missing)")
    p.add_argument("--overwrite", action="store_true", help="replace images already in DIR")
    add_run_options(p, "device")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine import device as devices
    from engine import export

    device = setup_or_exit(devices.resolve_device, device_of(args))
    if args.latents:
        from engine.photos.rendering import render_latent_files

        written = setup_or_exit(render_latent_files, args.session, args.latents, args.out, args.strength, device,
                                args.overwrite)
        print(f"wrote {len(written)} images (strength {args.strength:g}) to {args.out}")
        return 0
    paths = setup_or_exit(
        export.generate,
        args.session,
        args.n,
        args.out,
        seed=args.seed,
        truncation=args.truncation,
        strength=args.strength,
        device=device,
        overwrite=args.overwrite,
        seed_convention=args.seed_convention,
    )
    last = args.seed + len(paths) - 1
    print(f"wrote {len(paths)} images (seeds {args.seed}-{last}, {args.seed_convention} seed convention, "
          f"strength {args.strength:g}) to {args.out}")
    return 0
