"""Real-time factor of SingSong s+c and s+c+f: our KV cache, x-transformers' own cache (the previous
implementation) and no cache, in one run, with the sampled tokens checked identical (same audio) and the ratios.

With ``--ckpt`` the trained checkpoint is measured; otherwise the preset's stage sizes are built with random weights
(``--preset paper`` gives the paper-size transformers: 1024 dim, 6 layers, 8 heads, 1024-entry vocabularies, and the
paper's per-stage windows 10 / 4 / 2 s) around offline backbones (dsp-semantic + a mel-rvq codec with random
codebooks of the preset's size), since no MERT or Encodec weights are available here. Random weights sample as fast
as trained ones: every step costs the same. Each mode generates each clip once after one warm-up on a short clip.

    .venv/bin/python bench/singsong_rtf.py --ckpt sag_bench/checkpoints/singsong --seconds 10
    .venv/bin/python bench/singsong_rtf.py --preset paper --seconds 0.5 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import time

import numpy as np
import torch

from sag_bench import registry
from sag_bench.evaluation.rtf import device_name
from sag_bench.systems.singsong import sampling
from sag_bench.systems.singsong.checkpoint import SingSongBundle, build_stage, load_bundle
from sag_bench.systems.singsong.config import STAGES, SingSongConfig, load_preset
from sag_bench.systems.singsong.decoding import KVCacheDecoder
from sag_bench.systems.singsong.system import PIPELINES, SingSongSystem
from sag_bench.systems.singsong.tokenizer import SingSongTokenizer
from sag_bench.timing import StageTimer

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


class XTransformersCache:
    """The previous decoding: x-transformers' own KV cache (``net(seq, cache=...)`` on the whole sequence each
    step), with the interface of :class:`~sag_bench.systems.singsong.decoding.KVCacheDecoder` (bench baseline)."""

    def __init__(self, net: torch.nn.Module, batch: int, max_len: int) -> None:
        self.net, self.cache, self.seq = net, None, None

    def feed(self, tokens: torch.Tensor) -> torch.Tensor:
        self.seq = tokens if self.seq is None else torch.cat([self.seq, tokens], dim=1)
        logits, self.cache = self.net(self.seq, return_intermediates=True, cache=self.cache)
        return logits[:, -1]

    def logits(self, hidden: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        return hidden[:, lo:hi].float()


MODES = {"kv-cache": True, "x-transformers-cache": True, "no-cache": False}


def timed_generate(system: SingSongSystem, clip: np.ndarray, seed: int, mode: str) -> tuple[torch.Tensor, StageTimer,
                                                                                              float]:
    """One generation of ``clip`` in ``mode``: output, per-stage timer, wall seconds."""
    decoder = XTransformersCache if mode == "x-transformers-cache" else KVCacheDecoder
    previous = sampling.KVCacheDecoder
    sampling.KVCacheDecoder = decoder
    system.timer = StageTimer()
    try:
        start = time.perf_counter()
        out = system.generate(torch.from_numpy(clip)[None], seed=seed)
        return out, system.timer, time.perf_counter() - start
    finally:
        sampling.KVCacheDecoder = previous


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, help="a trained SingSong checkpoint directory (default: random weights)")
    parser.add_argument("--preset", default="tiny", help="sizes for random weights: tiny | paper (default tiny)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the input clip (default 10)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=list(PIPELINES))
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_bundle(args.ckpt, STAGES) if args.ckpt else random_bundle(load_preset(args.preset), args.seed)
    clip = vocals(args.seconds, 1, args.seed)[0]
    rows = []
    for stages in args.pipelines:
        system = SingSongSystem.from_bundle(bundle, stages=stages)
        system.load("cpu")
        timed_generate(system, vocals(0.2, 1, args.seed + 1)[0], args.seed, "kv-cache")  # warm-up
        results = {}
        for mode in args.modes:
            system.cache_kv = MODES[mode]
            out, timer, wall = timed_generate(system, clip, args.seed, mode)
            results[mode] = (out, wall)
            stage_rtf = {name: value / args.seconds for name, value in timer.seconds.items()}
            rows.append({"stages": stages, "mode": mode, "rtf": wall / args.seconds, "stage_rtf": stage_rtf})
            print(f"s+{'+'.join(stages[1:])} {mode}: RTF {wall / args.seconds:.3f}  ("
                  + ", ".join(f"{k} {v:.3f}" for k, v in stage_rtf.items()) + ")", flush=True)
        base_out, base_wall = results[args.modes[0]]
        for mode in args.modes[1:]:
            out, wall = results[mode]
            print(f"s+{'+'.join(stages[1:])}: {mode} / {args.modes[0]} time ratio x{wall / base_wall:.2f}, "
                  f"identical output: {torch.equal(out, base_out)}", flush=True)
    source = str(args.ckpt) if args.ckpt else f"random weights, preset {args.preset}"
    print(f"[{source}; one {args.seconds:g} s clip; cpu, {torch.get_num_threads()} threads, {device_name('cpu')}]")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
