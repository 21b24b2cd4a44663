"""Real-time factor of FastSAG per stage for the tiny and paper presets, and 50-step Euler vs Heun at fewer steps.

Weights: with ``--ckpt`` a trained tiny checkpoint; otherwise random initialisation (every sampler step costs the
same with random or trained weights). Backbones: the tiny preset uses its offline ones (dsp-semantic, griffin-lim).
The paper preset runs the real MERT-v1-95M architecture at random init (``transformers.HubertModel`` with the
default 95M config: no weights are available here) and, for the vocoder, either the offline Griffin-Lim stand-in
(default) or with ``--bigvgan`` the BigVGAN 24 kHz 100-band architecture at random init. Every row says which.

    .venv/bin/python bench/fastsag_rtf.py                       # tiny + paper, 10 s input, batch 1
    .venv/bin/python bench/fastsag_rtf.py --presets tiny --ckpt sag_bench/checkpoints/fastsag.pt
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


def build(preset: str, ckpt: Path | None, bigvgan: bool, steps: int, sampler: str) -> tuple[FastSAGSystem, str]:
    """A system for ``preset`` and a label saying what its weights and backbones are."""
    if ckpt is not None:
        system = FastSAGSystem(checkpoint=ckpt, steps=steps, sampler=sampler)
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
    system = FastSAGSystem(config=config, steps=steps, sampler=sampler, semantic_options=semantic_options,
                           vocoder_options=vocoder_options)
    return system, label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"], help="presets to measure")
    parser.add_argument("--ckpt", type=Path, help="a trained checkpoint (replaces --presets)")
    parser.add_argument("--seconds", type=float, default=10.0, help="input length (default 10 s)")
    parser.add_argument("--clips", type=int, default=1, help="measured clips (batch 1 each, after one warm-up)")
    parser.add_argument("--euler-steps", type=int, default=50, help="Euler steps (paper: 50)")
    parser.add_argument("--heun-steps", type=int, default=13, help="Heun steps (2N-1 network calls)")
    parser.add_argument("--bigvgan", action="store_true", help="paper preset: BigVGAN architecture at random init")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write all results here")
    args = parser.parse_args(argv)
    clips = [vocals(args.seconds, seed) for seed in range(args.clips)]
    rows = []
    for preset in ["checkpoint"] if args.ckpt else args.presets:
        totals = {}
        for sampler, steps in (("euler", args.euler_steps), ("heun", args.heun_steps)):
            system, label = build(preset, args.ckpt, args.bigvgan, steps, sampler)
            system.load(args.device)
            result = measure_rtf(system, clips, warmup=1, device=args.device)
            calls = steps if sampler == "euler" else 2 * steps - 1
            totals[sampler] = result
            stages = "  ".join(f"{name} {value:.3f}" for name, value in sorted(result.stage_rtf.items()))
            print(f"[{label}] {sampler} {steps} steps ({calls} calls): RTF {result.rtf:.3f}  |  {stages}  "
                  f"({result.device_name}, {result.threads} threads)", flush=True)
            rows.append({"preset": preset, "label": label, "sampler": sampler, "steps": steps, "calls": calls,
                         **result.to_dict()})
        euler, heun = totals["euler"], totals["heun"]
        print(f"[{preset}] Euler {args.euler_steps} / Heun {args.heun_steps}: total time ratio "
              f"{euler.rtf / heun.rtf:.2f}x, sampler-only ratio "
              f"{euler.stage_rtf['sampler'] / heun.stage_rtf['sampler']:.2f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
