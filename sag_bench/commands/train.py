"""``sag-bench train SYSTEM --data DIR --out DIR [--preset tiny|paper] [--steps N] [--resume] [--seed S] ...``

The trainer comes from the system's registry entry (``Entry.trainer``), so a plugin system that names one trains
like a built-in. ``singsong-sc`` and ``singsong-scf`` share one trainer (three stages into one folder).
Several GPUs: ``accelerate launch -m sag_bench.cli train ...`` (the shared loop runs under DDP).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a registered system that names a trainer")
    parser.add_argument("system", metavar="SYSTEM",
                        help="a trainable registered system: fastsag, fastsag-interpolate, fastsag-mel, "
                             "fastsag-semantic-mel, fastsag-no-norm, singsong-sc / singsong-scf (all three stages), "
                             "or a plugin's")
    parser.add_argument("--data", required=True, help="dataset folder with manifest.json (its 'train' split is used)")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, losses.csv/png, final weights")
    parser.add_argument("--preset", default="tiny", help="size preset: tiny (offline, CPU minutes) | small (tiny networks, longer, the embedded checkpoints) | paper")
    parser.add_argument("--steps", type=int, help="number of optimisation steps (default: the preset's)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order and noise (default 0)")
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        help="default: a GPU when present (pick GPUs with CUDA_VISIBLE_DEVICES / accelerate launch)")
    parser.add_argument("--bf16", action="store_true", help="fastsag: bf16 mixed precision")
    parser.add_argument("--stage", help="singsong: semantic | coarse | fine (default: all three in order)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sag_bench import registry
    from sag_bench.errors import UserError
    from sag_bench.systems.trainers import TrainRequest

    entry = registry.entry("systems", args.system)
    trainer = entry.resolve_trainer()
    if trainer is None:
        trainable = [name for name in registry.names("systems") if registry.entry("systems", name).trainer]
        raise UserError(f"system {args.system!r} has no trainer; trainable systems: {', '.join(trainable)}")
    options = {**({"mixed_precision": "bf16"} if args.bf16 else {}), **({"stage": args.stage} if args.stage else {})}
    request = TrainRequest(args.system, Path(args.data), Path(args.out), preset=args.preset, steps=args.steps,
                           resume=args.resume, seed=args.seed, device=args.device, options=options)
    for line in trainer(request):
        print(line)
    return 0
