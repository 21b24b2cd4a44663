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
from sag_bench.systems.singsong.checkpoint import SingSongBundle, build_stage, hop_frames, load_bundle
from sag_bench.systems.singsong.config import STAGES, SingSongConfig, load_preset
from sag_bench.systems.singsong.decoding import KVCacheDecoder
from sag_bench.systems.singsong.stages import StageLM
from sag_bench.systems.singsong.system import PIPELINES, SingSongSystem
from sag_bench.systems.singsong.tokenizer import SingSongTokenizer
from sag_bench.systems.singsong.windows import window_starts
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


def decode_schedule(model: StageLM, frames: int, hop: int) -> list[tuple[int, int, int]]:
    """What :meth:`StageLM.generate_windows` decodes for ``frames``: per call (batch, prefix tokens, new tokens)."""
    window, qc, qt = model.max_frames, model.layout.condition.n_codebooks, model.layout.target.n_codebooks
    starts = window_starts(frames, window, hop)
    if hop >= window:
        width = min(window, frames)
        return [(len(starts), width * qc, width * qt)]
    calls, done = [], 0
    for start in starts:
        end = min(start + window, frames)
        prompt = max(0, done - start)
        calls.append((1, (end - start) * qc + prompt * qt, (end - start - prompt) * qt))
        done = end
    return calls


def _seconds(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


@torch.inference_mode()
def project_ratio(bundle: SingSongBundle, seconds: float) -> dict[str, tuple[float, float]]:
    """Projected (uncached, cached) seconds per stage for a ``seconds`` clip from measured step costs.

    Uncached step at ``L`` tokens: one forward of ``L`` tokens, fitted linearly in ``L`` through forwards at the
    schedule's shortest and longest lengths (batch ``B`` costs ``B`` times batch 1: compute-bound). Cached: one
    prefill forward per call plus the measured mean single-token step at the call's batch size.
    """
    frames = round(seconds * bundle.tokenizer.codec.frame_rate)
    out = {}
    for stage in STAGES:
        model = bundle.models[stage]
        calls = decode_schedule(model, frames, hop_frames(bundle.config, bundle.tokenizer, stage))
        vocab = model.layout.vocab_size
        lengths = [min(c[1] for c in calls), max(c[1] + c[2] - 1 for c in calls)]
        costs = [_seconds(lambda n=n: model.net(torch.randint(0, vocab, (1, n)))) for n in lengths]
        slope = (costs[1] - costs[0]) / max(1, lengths[1] - lengths[0])
        forward = lambda n: costs[0] + slope * (n - lengths[0])  # noqa: E731
        uncached = cached = 0.0
        for batch, prefix, new in calls:
            uncached += batch * sum(forward(prefix + k) for k in range(new))
            decoder = KVCacheDecoder(model.net, batch, prefix + new)
            decoder.feed(torch.randint(0, vocab, (batch, prefix)))
            step = _seconds(lambda: decoder.feed(torch.randint(0, vocab, (batch, 1))), repeat=min(8, new - 1))
            cached += batch * forward(prefix) + (new - 1) * step
        out[stage] = (uncached, cached)
        print(f"projected {seconds:g} s, {stage} stage ({len(calls)} call(s), batch {calls[0][0]}, tokens "
              f"{lengths[0]}..{lengths[1]}): uncached {uncached:.0f} s, cached {cached:.1f} s, "
              f"x{uncached / cached:.1f}", flush=True)
    return out


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
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES),
                        help="decoding modes to time (none: only --project)")
    parser.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=list(PIPELINES))
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--project", type=float, help="also project the cache's speed-up for a clip this long from "
                        "measured step costs (the uncached run itself would take hours at paper size)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_bundle(args.ckpt, STAGES) if args.ckpt else random_bundle(load_preset(args.preset), args.seed)
    clip = vocals(args.seconds, 1, args.seed)[0]
    rows = []
    for stages in args.pipelines if args.modes else []:
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
    if args.project:
        projected = project_ratio(bundle, args.project)
        for stages in args.pipelines:
            uncached, cached = (sum(projected[s][i] for s in PIPELINES[stages]) for i in (0, 1))
            print(f"projected {args.project:g} s s+{'+'.join(stages[1:])}: uncached {uncached:.0f} s, "
                  f"cached {cached:.1f} s, KV-cache speed-up x{uncached / cached:.1f} (decoding only)")
    source = str(args.ckpt) if args.ckpt else f"random weights, preset {args.preset}"
    print(f"[{source}; one {args.seconds:g} s clip; cpu, {torch.get_num_threads()} threads, {device_name('cpu')}]")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
