"""Quality of FastSAG's fast samplers vs the authors' 51-call Euler schedule: FAD per embedder with bootstrap CIs
(the run's tables) and, per clip, the log-mel distance of each fast path's output to the reference schedule's.

    .venv/bin/python bench/fastsag_quality.py --out results/fastsag-quality [--data-dir results/data/chorales-tiny]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from sag_bench.audio import load_audio, mel_spectrogram
from sag_bench.runner.run import run_experiment
from sag_bench.runner.spec import load_spec

SPEC = Path(__file__).with_name("fastsag_quality.toml")
REFERENCE = "fastsag-euler51"


def mel_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of natural-log mel spectrograms (clamped at 1e-5)."""
    mels = [torch.log(mel_spectrogram(torch.from_numpy(x)[None]).clamp_min(1e-5)) for x in (a, b)]
    return float((mels[0] - mels[1]).abs().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--data-dir", help="an already built tiny chorale dataset (default: the spec's)")
    args = parser.parse_args(argv)
    spec = load_spec(str(SPEC))
    if args.data_dir:
        spec = dataclasses.replace(spec, data=dataclasses.replace(spec.data, dir=args.data_dir))
    result = run_experiment(spec, args.out, resume=True)
    generated = Path(result.root) / "generated"
    reference = {p.stem: load_audio(p) for p in sorted((generated / REFERENCE).glob("*.wav"))}
    for path in sorted(generated.iterdir()):
        if path.name == REFERENCE:
            continue
        distances = [mel_distance(load_audio(path / f"{clip}.wav"), audio) for clip, audio in reference.items()]
        print(f"{path.name}: log-mel L1 to {REFERENCE} per clip: mean {np.mean(distances):.4f}, "
              f"max {np.max(distances):.4f} over {len(distances)} clips")
    print((Path(result.root) / "tables" / "table1.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
