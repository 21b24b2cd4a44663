"""``sag-bench train SYSTEM --data DIR --out DIR [--preset tiny|paper] [--steps N] [--resume] [--seed S] ...``

Dispatches on the system family: ``fastsag*`` -> :func:`sag_bench.systems.fastsag.train.train`,
``singsong*`` -> :func:`sag_bench.systems.singsong.train.train` (one stage, or all three in order).
Several GPUs: ``accelerate launch -m sag_bench.cli train ...`` (the shared loop runs under DDP).
"""

from __future__ import annotations

import argparse

FAMILIES = ("fastsag", "singsong")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a system (fastsag and its ablations, singsong) on a dataset")
    parser.add_argument("system", metavar="SYSTEM",
                        help="fastsag, fastsag-interpolate, fastsag-mel, fastsag-semantic-mel, fastsag-no-norm, "
                             "or singsong / singsong-sc / singsong-scf")
    parser.add_argument("--data", required=True, help="dataset folder with manifest.json (its 'train' split is used)")
    parser.add_argument("--out", required=True, help="run folder: checkpoints, losses.csv/png, final weights")
    parser.add_argument("--preset", default="tiny", help="size preset: tiny (offline, CPU minutes) | paper")
    parser.add_argument("--steps", type=int, help="number of optimisation steps (default: the preset's)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, data order and noise (default 0)")
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        help="default: a GPU when present (pick GPUs with CUDA_VISIBLE_DEVICES / accelerate launch)")
    parser.add_argument("--bf16", action="store_true", help="fastsag: bf16 mixed precision")
    parser.add_argument("--stage", help="singsong: semantic | coarse | fine (default: all three in order)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sag_bench.errors import UserError

    family = args.system.split("-")[0]
    if family not in FAMILIES:
        raise UserError(f"no trainer for system {args.system!r}; trainable families: {', '.join(FAMILIES)}")
    if family == "fastsag":
        from sag_bench.systems.fastsag.train import train

        if args.stage:
            raise UserError("--stage applies to singsong only (fastsag trains all blocks jointly)")
        result = train(args.system, args.data, args.out, preset=args.preset, steps=args.steps, resume=args.resume,
                       seed=args.seed, device=args.device, mixed_precision="bf16" if args.bf16 else None)
        if result.main_process:
            losses = ", ".join(f"{k} {v:.4f}" for k, v in result.last_losses.items())
            print(f"trained {args.system} to step {result.step}: {losses or 'nothing left to do'}")
            print(f"weights: {result.checkpoint.parent / (args.system + '.pt')}  losses: {result.loss_csv}, "
                  f"{result.loss_png}")
        return 0
    from sag_bench.systems.singsong.config import STAGES
    from sag_bench.systems.singsong.train import train as train_singsong

    if args.bf16:
        raise UserError("--bf16 applies to fastsag only")
    device = {"device": args.device} if args.device else {}
    for stage in [args.stage] if args.stage else list(STAGES):
        out = train_singsong(args.data, args.out, args.preset, stage, steps=args.steps, resume=args.resume,
                             seed=args.seed, **device)
        print(f"trained singsong stage {stage}: {out}")
    return 0
