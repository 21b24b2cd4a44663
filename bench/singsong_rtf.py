"""Real-time factor of SingSong s+c and s+c+f, with and without the KV cache, and the cache's speed-up.

With ``--ckpt`` the trained checkpoint is measured; otherwise the preset's stage sizes are built with random weights
(``--preset paper`` gives the paper-size transformers: 1024 dim, 6 layers, 8 heads, 1024-entry vocabularies) around
offline backbones (dsp-semantic + a mel-rvq codec with random codebooks of the preset's size), since no MERT or
Encodec weights are available here. Random weights sample as fast as trained ones: every step costs the same.

    .venv/bin/python bench/singsong_rtf.py --ckpt sag_bench/checkpoints/singsong --seconds 10
    .venv/bin/python bench/singsong_rtf.py --preset paper --seconds 0.5
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from sag_bench import registry
from sag_bench.evaluation.rtf import measure_rtf
from sag_bench.systems.singsong.checkpoint import SingSongBundle, build_stage
from sag_bench.systems.singsong.config import STAGES, SingSongConfig, load_preset
from sag_bench.systems.singsong.system import PIPELINES, SingSongSystem
from sag_bench.systems.singsong.tokenizer import SingSongTokenizer

# Encodec 24 kHz at 6 kbps: 8 codebooks of 1024 entries; the paper preset's vocabularies follow it.
ENCODEC_CODEBOOK_SIZE = 1024


def random_bundle(config: SingSongConfig, seed: int) -> SingSongBundle:
    """The preset's stages with random weights around offline backbones with random centroids and codebooks."""
    torch.manual_seed(seed)
    encoder = registry.build("backbones", "dsp-semantic")
    codebook_size = config.codec_options.get("codebook_size", ENCODEC_CODEBOOK_SIZE)
    codec = registry.build("backbones", "mel-rvq", codebook_size=codebook_size)
    codec.load_state_dict({"codebooks": 0.1 * torch.randn(codec.n_codebooks, codebook_size, 100)})
    tokenizer = SingSongTokenizer(encoder, codec, torch.randn(config.semantic_vocab, encoder.dim))
    return SingSongBundle(config, tokenizer, {stage: build_stage(config, tokenizer, stage).eval() for stage in STAGES})


def vocals(seconds: float, clips: int, seed: int) -> list[np.ndarray]:
    """Seeded sung-like test input: a vibrato tone with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 24_000)) / 24_000
    out = []
    for _ in range(clips):
        f0 = rng.uniform(200, 500)
        phase = 2 * math.pi * np.cumsum(f0 * (1 + 0.01 * np.sin(2 * math.pi * 5.5 * t))) / 24_000
        out.append((0.3 * np.sin(phase) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, help="a trained SingSong checkpoint directory (default: random weights)")
    parser.add_argument("--preset", default="tiny", help="sizes for random weights: tiny | paper (default tiny)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each input clip (default 10)")
    parser.add_argument("--clips", type=int, default=1, help="measured clips, one per batch (default 1)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    bundle = None if args.ckpt else random_bundle(load_preset(args.preset), args.seed)
    clips = vocals(args.seconds, args.clips, args.seed)
    rows = []
    for stages in PIPELINES:
        rtf = {}
        for cache_kv in (True, False):
            if bundle is None:
                system = SingSongSystem(checkpoint=args.ckpt, stages=stages, cache_kv=cache_kv)
            else:
                system = SingSongSystem.from_bundle(bundle, stages=stages, cache_kv=cache_kv)
            system.load(args.device)
            result = measure_rtf(system, clips, warmup=args.warmup, seed=args.seed, device=args.device)
            rtf[cache_kv] = result
            rows.append({"stages": stages, "cache_kv": cache_kv, **result.to_dict()})
        cached, uncached = rtf[True], rtf[False]
        breakdown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(cached.stage_rtf.items()))
        print(f"s+{'+'.join(stages[1:])}: RTF cached {cached.rtf:.3f}, uncached {uncached.rtf:.3f}, "
              f"KV-cache speed-up x{uncached.rtf / cached.rtf:.2f}  (cached per stage: {breakdown})")
    source = str(args.ckpt) if args.ckpt else f"random weights, preset {args.preset}"
    print(f"[{source}; {args.clips} x {args.seconds:g} s clips; device {args.device}, "
          f"{torch.get_num_threads()} threads, {rows[0]['device_name']}]")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
