"""``sag-bench generate SYSTEM --ckpt PATH --input vocals.wav --out acc.wav [--mix mix.wav] [--steps N] ...``

Works for any registered system. Inputs of any rate, length and channel count are loaded as 24 kHz mono; several
``--input`` files are generated in one batch (``--out`` is then a folder). Long inputs are windowed by the system.
Systems that draw on a dataset (groundtruth, randsong) take ``--data DIR`` and inputs that are clips of it.
Outputs never exceed full scale silently: an accompaniment or mix peaking over 1.0 is levelled to a 0.99 peak and
the gain is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

LEVEL_PEAK = 0.99


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="generate an accompaniment for a vocal recording")
    parser.add_argument("system", metavar="SYSTEM", help="registered system name (see `sag-bench systems`)")
    parser.add_argument("--ckpt", help="checkpoint the system loads: a path, or builtin:NAME for one shipped in "
                                       "sag_bench/checkpoints (FastSAG: a .pt from `sag-bench train`)")
    parser.add_argument("--data", help="dataset folder for systems that draw on it (groundtruth, randsong); "
                                       "inputs are its clips (their vocals file, or a file named <clip id>.wav)")
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


def level(audio: np.ndarray) -> tuple[np.ndarray, float]:
    """``audio`` scaled to a 0.99 peak when it exceeds full scale; returns it and the gain applied (1.0 if none)."""
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    gain = LEVEL_PEAK / peak if peak > 1.0 else 1.0
    return (audio * gain).astype(np.float32), gain


def _gain_note(gain: float) -> str:
    return "" if gain == 1.0 else f" (levelled by {20 * np.log10(gain):.1f} dB: it peaked over 0 dBFS)"


def _needs_data(system: object) -> bool:
    from sag_bench.systems.base import System

    return type(system).prepare is not System.prepare


def _clip_ids(inputs: list[Path], data_dir: Path) -> list[str]:
    """The dataset clip id of each input: the clip whose vocals file it is, or whose id is its file name."""
    from sag_bench.errors import UserError
    from sag_bench.datasets.manifest import ClipDataset

    records = ClipDataset(data_dir).records()
    by_vocals = {record.vocals.resolve(): record.id for record in records}
    ids = {record.id for record in records}
    found = []
    for path in inputs:
        clip = by_vocals.get(path.resolve()) or (path.stem if path.stem in ids else None)
        if clip is None:
            raise UserError(f"{path}: not a clip of {data_dir} (pass a clip's vocals file or name it <clip id>.wav)")
        found.append(clip)
    return found


def build(args: argparse.Namespace, options: dict[str, object]):
    """The registered system with its checkpoint (``builtin:`` resolved), errors phrased as CLI options."""
    from sag_bench import registry
    from sag_bench.errors import UserError
    from sag_bench.runner.spec import SystemSpec

    checkpoint = SystemSpec(args.system, checkpoint=args.ckpt).checkpoint_path()
    if checkpoint is not None and not checkpoint.exists():
        raise UserError(f"--ckpt {args.ckpt}: {checkpoint} does not exist")
    try:
        return registry.build("systems", args.system, checkpoint=checkpoint, **options)
    except TypeError:
        given = " ".join(f"--{name}" for name in options)
        raise UserError(f"system {args.system!r} does not take {given}") from None
    except UserError:
        if checkpoint is None:
            raise UserError(f"{args.system} needs --ckpt PATH (train one with `sag-bench train {args.system}`, "
                            f"or pass builtin:{args.system}.pt for the weights shipped in sag_bench/checkpoints)") \
                from None
        raise


def run(args: argparse.Namespace) -> int:
    import torch

    from sag_bench.audio import MIX_GAIN, load_audio, mix, save_audio
    from sag_bench.errors import UserError

    inputs = [Path(p) for p in args.input]
    if len({p.stem for p in inputs}) != len(inputs):
        raise UserError("several --input files share a name; outputs would overwrite each other")
    options = {k: v for k, v in {"steps": args.steps, "sampler": args.sampler}.items() if v is not None}
    system = build(args, options)
    clip_ids = [p.stem for p in inputs]
    if _needs_data(system):
        if not args.data:
            raise UserError(f"{args.system} draws on a dataset: pass --data DIR (a folder from `sag-bench data build`) "
                            f"and inputs that are its clips")
        clip_ids = _clip_ids(inputs, Path(args.data))
        system.prepare(Path(args.data))
    vocals = [load_audio(path, system.sample_rate) for path in inputs]
    if min(len(v) for v in vocals) == 0:
        raise UserError("an input has no samples after resampling")
    longest = max(len(v) for v in vocals)
    batch = torch.stack([torch.nn.functional.pad(torch.from_numpy(v), (0, longest - len(v))) for v in vocals])
    system.load(args.device)
    generated = system.generate(batch, seed=args.seed, clip_ids=clip_ids).cpu().numpy()
    levelled = [level(acc[: len(voice)]) for voice, acc in zip(vocals, generated)]
    for path, voice, (acc, gain), target in zip(inputs, vocals, levelled, _targets(args.out, inputs)):
        save_audio(target, acc, system.sample_rate)
        print(f"{path} -> {target} ({len(voice) / system.sample_rate:.2f} s)" + _gain_note(gain))
    if args.mix:
        for voice, (acc, _), target in zip(vocals, levelled, _targets(args.mix, inputs)):
            mixed, gain = mix(voice, acc, gain=MIX_GAIN)
            save_audio(target, mixed, system.sample_rate)
            print(f"mix -> {target}" + _gain_note(gain))
    return 0
