"""Real-time factor of FastSAG per stage: the authors' 51-call Euler schedule against fast samplers, in one run.

The reference is the authors' sampler: Euler on the Karras schedule with 51 noise levels before the final 0 (their
50-step setting makes 51 network calls, reference facts). Each fast path (``sampler:levels``, e.g. ``dpmpp-2m:10``)
is timed on the same input with the same weights and printed as a ratio to it; the first fast path is also run on a
batch of ``--batch`` clips to print clips per second against batch 1.

Weights: with ``--ckpt`` a trained tiny checkpoint; otherwise random initialisation (every sampler step costs the
same with random or trained weights). Backbones: the tiny preset uses its offline ones (dsp-semantic, griffin-lim).
The paper preset runs the real MERT-v1-95M architecture at random init (``transformers.HubertModel`` with the
default 95M config: no weights are available here) and, for the vocoder, either the offline Griffin-Lim stand-in
(default) or with ``--bigvgan`` the BigVGAN 24 kHz 100-band architecture at random init. Every row says which.

    .venv/bin/python bench/fastsag_rtf.py --presets tiny --threads 2
    .venv/bin/python bench/fastsag_rtf.py --presets paper --threads 2 --warmup 0 --batch 8
    .venv/bin/python bench/fastsag_rtf.py --ckpt sag_bench/checkpoints/fastsag.pt
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sag_bench.evaluation.rtf import measure_rtf
from sag_bench.modules import solvers
from sag_bench.systems.fastsag.config import VARIANTS, FastSAGConfig, load_preset
from sag_bench.systems.fastsag.system import FastSAGSystem

# BigVGAN-v2 24 kHz 100-band (bigvgan_v2_24khz_100band_256x config.json): the architecture for --bigvgan.
BIGVGAN_24K_100BAND = {
    "resblock": "1", "num_mels": 100, "upsample_rates": [4, 4, 2, 2, 2, 2], "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4],
    "upsample_initial_channel": 1536, "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "activation": "snakebeta", "snake_logscale": True,
    "use_tanh_at_final": False, "use_bias_at_final": False,
}


def vocals(seconds: float, seed: int) -> np.ndarray:
    """Seeded sung-like input: a vibrato tone with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 24_000)) / 24_000
    phase = 2 * math.pi * np.cumsum(rng.uniform(200, 500) * (1 + 0.01 * np.sin(2 * math.pi * 5.5 * t))) / 24_000
    return (0.3 * np.sin(phase) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def build(preset: str, ckpt: Path | None, bigvgan: bool, steps: int, sampler: str,
          batch_size: int | None = None) -> tuple[FastSAGSystem, str]:
    """A system for ``preset`` and a label saying what its weights and backbones are."""
    if ckpt is not None:
        system = FastSAGSystem(checkpoint=ckpt, steps=steps, sampler=sampler, batch_size=batch_size)
        return system, f"{system.config.preset} checkpoint {ckpt.name}, {system.config.semantic_encoder}, " \
                       f"{system.config.vocoder}"
    config: FastSAGConfig = load_preset(preset, VARIANTS["fastsag"])
    semantic_options, vocoder_options, label = {}, {}, f"{preset}, random weights"
    if config.semantic_encoder == "mert-v1-95m":
        from transformers import HubertConfig

        semantic_options = {"config": HubertConfig()}
        label += ", MERT-v1-95M architecture (random init)"
    else:
        label += f", {config.semantic_encoder}"
    if config.vocoder == "bigvgan-24k-100band" and bigvgan:
        vocoder_options = {"config": BIGVGAN_24K_100BAND}
        label += ", BigVGAN-24k-100band architecture (random init)"
    elif config.vocoder == "bigvgan-24k-100band":
        config = replace(config, vocoder="griffin-lim", vocoder_options={"n_iter": 32})
        label += ", griffin-lim stand-in for BigVGAN"
    else:
        label += f", {config.vocoder}"
    torch.manual_seed(0)
    system = FastSAGSystem(config=config, steps=steps, sampler=sampler, batch_size=batch_size,
                           semantic_options=semantic_options, vocoder_options=vocoder_options)
    return system, label


# The authors' schedule: Euler on 51 Karras levels (their 50 steps make 51 network calls).
REFERENCE = ("euler", 51)


def parse_path(text: str) -> tuple[str, int]:
    """``sampler:levels`` -> (sampler, levels)."""
    sampler, _, levels = text.partition(":")
    if sampler not in solvers.SAMPLERS or not levels.isdigit():
        raise argparse.ArgumentTypeError(f"fast path must be SAMPLER:LEVELS with SAMPLER in {solvers.SAMPLERS}")
    return sampler, int(levels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"], help="presets to measure")
    parser.add_argument("--ckpt", type=Path, help="a trained checkpoint (replaces --presets)")
    parser.add_argument("--seconds", type=float, default=10.0, help="input length (default 10 s)")
    parser.add_argument("--paths", nargs="+", type=parse_path, default=[("dpmpp-2m", 12), ("dpmpp-2m", 8),
                                                                        ("heun", 8)],
                        help="fast paths SAMPLER:LEVELS (default dpmpp-2m:12 dpmpp-2m:8 heun:8)")
    parser.add_argument("--batch", type=int, default=8, help="batch size for the throughput row (0: skip)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs before each measurement")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--bigvgan", action="store_true", help="paper preset: BigVGAN architecture at random init")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write all results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clip = [vocals(args.seconds, 0)]
    rows = []
    for preset in ["checkpoint"] if args.ckpt else args.presets:
        results = {}
        for sampler, levels in [REFERENCE, *args.paths]:
            system, label = build(preset, args.ckpt, args.bigvgan, levels, sampler)
            system.load(args.device)
            result = measure_rtf(system, clip, warmup=args.warmup, device=args.device)
            calls = solvers.network_calls(levels, sampler)
            results[(sampler, levels)] = result
            stages = "  ".join(f"{name} {value:.3f}" for name, value in sorted(result.stage_rtf.items()))
            name = "authors' schedule" if (sampler, levels) == REFERENCE else "fast path"
            print(f"[{label}] {name} {sampler} {levels} levels ({calls} calls): RTF {result.rtf:.3f}  |  {stages}  "
                  f"({result.device_name}, {result.threads} threads)", flush=True)
            rows.append({"preset": preset, "label": label, "sampler": sampler, "levels": levels, "calls": calls,
                         **result.to_dict()})
        reference = results[REFERENCE]
        for (sampler, levels), result in results.items():
            if (sampler, levels) != REFERENCE:
                print(f"[{preset}] {sampler}:{levels} vs authors' 51-call Euler: end to end x"
                      f"{reference.rtf / result.rtf:.2f} faster, sampler x"
                      f"{reference.stage_rtf['sampler'] / result.stage_rtf['sampler']:.2f}", flush=True)
        if args.batch > 1:
            sampler, levels = args.paths[0]
            system, _ = build(preset, args.ckpt, args.bigvgan, levels, sampler, batch_size=args.batch)
            system.load(args.device)
            batched = measure_rtf(system, clip * args.batch, warmup=0, batch_size=args.batch, device=args.device)
            single = results[(sampler, levels)]
            per_second = args.batch / batched.wall_seconds
            print(f"[{preset}] {sampler}:{levels} batch {args.batch}: {per_second:.3f} clips/s vs batch 1 "
                  f"{1 / single.wall_seconds:.3f} clips/s (x{per_second * single.wall_seconds:.2f})", flush=True)
            rows.append({"preset": preset, "sampler": sampler, "levels": levels, "batch": args.batch,
                         **batched.to_dict()})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
