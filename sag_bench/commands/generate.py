"""``sag-bench generate SYSTEM --ckpt PATH --input vocals.wav --out acc.wav [--mix mix.wav] [--steps N] ...``

Works for any registered system. Inputs of any rate, length and channel count are loaded as 24 kHz mono; several
``--input`` files are generated in one batch (``--out`` is then a folder). Long inputs are windowed by the system.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="generate an accompaniment for a vocal recording")
    parser.add_argument("system", metavar="SYSTEM", help="registered system name (see `sag-bench systems`)")
    parser.add_argument("--ckpt", help="checkpoint the system loads (FastSAG: a .pt from `sag-bench train`)")
    parser.add_argument("--input", required=True, nargs="+", help="vocal recording(s): wav/flac/ogg/mp3, any rate")
    parser.add_argument("--out", required=True, help="output WAV (one input) or folder (several inputs)")
    parser.add_argument("--mix", help="also write vocals + 0.9 x accompaniment here (WAV, or folder for several)")
    parser.add_argument("--steps", type=int, help="sampler steps (diffusion systems)")
    parser.add_argument("--sampler", choices=["euler", "heun"], help="ODE sampler (FastSAG)")
    parser.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    parser.set_defaults(handler=run)


def _targets(out: str, inputs: list[Path]) -> list[Path]:
    if len(inputs) == 1:
        return [Path(out)]
    return [Path(out) / f"{path.stem}.wav" for path in inputs]


def run(args: argparse.Namespace) -> int:
    import torch

    from sag_bench import registry
    from sag_bench.audio import load_audio, mix, save_audio
    from sag_bench.errors import UserError

    inputs = [Path(p) for p in args.input]
    if len({p.stem for p in inputs}) != len(inputs):
        raise UserError("several --input files share a name; outputs would overwrite each other")
    options = {k: v for k, v in {"steps": args.steps, "sampler": args.sampler}.items() if v is not None}
    try:
        system = registry.build("systems", args.system, checkpoint=args.ckpt, **options)
    except TypeError as error:
        raise UserError(f"system {args.system!r} does not take these options ({error})") from None
    vocals = [load_audio(path, system.sample_rate) for path in inputs]
    if min(len(v) for v in vocals) == 0:
        raise UserError("an input has no samples after resampling")
    longest = max(len(v) for v in vocals)
    batch = torch.stack([torch.nn.functional.pad(torch.from_numpy(v), (0, longest - len(v))) for v in vocals])
    system.load(args.device)
    accompaniment = system.generate(batch, seed=args.seed, clip_ids=[p.stem for p in inputs]).cpu()
    for path, voice, acc, target in zip(inputs, vocals, accompaniment, _targets(args.out, inputs)):
        save_audio(target, acc[: len(voice)], system.sample_rate)
        print(f"{path} -> {target} ({len(voice) / system.sample_rate:.2f} s)")
    if args.mix:
        for voice, acc, target in zip(vocals, accompaniment, _targets(args.mix, inputs)):
            mixed, scale = mix(voice, acc[: len(voice)].numpy())  # the papers' gain (audio.MIX_GAIN)
            save_audio(target, mixed, system.sample_rate)
            print(f"mix -> {target}" + (f" (scaled by {scale:.3f} to avoid clipping)" if scale != 1.0 else ""))
    return 0
