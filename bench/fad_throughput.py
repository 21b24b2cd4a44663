"""FAD throughput: our pipeline (sag_bench.evaluation.fad) against fadtk's FrechetAudioDistance on the same files
with the same offline embedder, in one process. Prints wall times, the speed ratio (cold caches and warm caches),
the score difference, and what each does when a file is regenerated under the same name.

    .venv/bin/python bench/fad_throughput.py [--clips 24] [--seconds 10] [--embedder dsp-spectral] [--batch-size 8]

fadtk runs its documented single-process path (file conversion via soundfile: see ``fadtk_scorer_class``): ``cache_embedding_file`` per file (resample to a 16-bit WAV in
``convert/``, embed, store float16 ``.npy`` next to the audio), then ``score`` (online statistics of the stored
embeddings, cached in ``stats/``). Ours: content-hash cache, batched embedding, float64 statistics.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sag_bench.audio import SAMPLE_RATE, save_audio
from sag_bench.evaluation import fad
from sag_bench.evaluation.embedders import load_embedder
from sag_bench.evaluation.fadtk_compat import contained, import_fadtk


def synth_clip(rng: np.random.Generator, seconds: float, detune: float) -> np.ndarray:
    """A short chord progression of harmonic tones with noise: music-like, seeded."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    out = np.zeros_like(t)
    for start in np.arange(0.0, seconds, 0.5):
        root = rng.integers(45, 60)
        span = (t >= start) & (t < start + 0.5)
        for interval in (0, 4, 7):
            f0 = 440.0 * 2 ** ((root + interval - 69 + detune) / 12)
            out[span] += sum(np.sin(2 * np.pi * k * f0 * t[span]) / k**1.5 for k in (1, 2, 3, 4))
    out = 0.1 * out + 0.01 * rng.standard_normal(len(t))
    return (0.8 * out / np.abs(out).max()).astype(np.float32)


def write_sets(root: Path, clips: int, seconds: float, seed: int) -> tuple[list[Path], list[Path]]:
    rng = np.random.default_rng(seed)
    ref = [save_audio(root / "ref" / f"clip{i:03d}.wav", synth_clip(rng, seconds, 0.0)) for i in range(clips)]
    ev = [save_audio(root / "eval" / f"clip{i:03d}.wav", synth_clip(rng, seconds, 0.3)) for i in range(clips)]
    return ref, ev


def fadtk_scorer_class() -> type:
    """fadtk's FrechetAudioDistance with its file conversion routed through soundfile.

    fadtk 1.1.0 converts with ``torchaudio.load`` / ``torchaudio.save``, which in torchaudio 2.11 require the
    ``torchcodec`` package (not part of our stack). This subclass does the same conversion (mono, fadtk's
    Kaiser-windowed sinc resampler, 16-bit PCM WAV in ``convert/<sr>/``) with soundfile; everything else is fadtk's.
    """
    import soundfile as sf
    import torch
    import torchaudio

    base = import_fadtk("fadtk.fad").FrechetAudioDistance

    class SoundfileFrechetAudioDistance(base):  # type: ignore[misc, valid-type]
        def load_audio(self, f: str | Path) -> np.ndarray:
            f = Path(f)
            converted = (f.parent / "convert" / str(self.ml.sr) / f.name).with_suffix(".wav")
            if not converted.exists():
                converted.parent.mkdir(parents=True, exist_ok=True)
                data, rate = sf.read(str(f), dtype="float32", always_2d=True)
                mono = torch.from_numpy(data.mean(axis=1))[None]
                resampler = torchaudio.transforms.Resample(rate, self.ml.sr, lowpass_filter_width=64,
                                                           rolloff=0.9475937167399596,
                                                           resampling_method="sinc_interp_kaiser",
                                                           beta=14.769656459379492)
                sf.write(str(converted), resampler(mono)[0].numpy(), self.ml.sr, subtype="PCM_16")
            return self.ml.load_wav(converted)

    return SoundfileFrechetAudioDistance


def run_fadtk(ml: object, ref: list[Path], ev: list[Path]) -> tuple[float, float]:
    """(wall seconds, score) of fadtk's pipeline; its caches live next to the audio."""
    scorer_class = fadtk_scorer_class()
    with contained():
        start = time.perf_counter()
        scorer = scorer_class(ml, audio_load_worker=1, load_model=False)
        for path in [*ref, *ev]:
            scorer.cache_embedding_file(path)
        value = float(np.real(scorer.score(ref[0].parent, ev[0].parent)))
        return time.perf_counter() - start, value


def run_ours(embedder: object, ref: list[Path], ev: list[Path], cache: Path, batch_size: int) -> tuple[float, float]:
    start = time.perf_counter()
    result = fad.score(ref, ev, embedder, cache, batch_size=batch_size)
    return time.perf_counter() - start, result.score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24, help="clips per set (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--embedder", default="dsp-spectral", choices=["dsp-spectral", "crepe-tiny"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    embedder = load_embedder(args.embedder)
    with tempfile.TemporaryDirectory(prefix="fad-throughput-") as tmp:
        root = Path(tmp)
        ref, ev = write_sets(root / "ours", args.clips, args.seconds, args.seed)
        shutil.copytree(root / "ours", root / "fadtk")
        fref = [root / "fadtk" / "ref" / p.name for p in ref]
        fev = [root / "fadtk" / "eval" / p.name for p in ev]

        fadtk_cold, fadtk_score = run_fadtk(embedder, fref, fev)
        ours_cold, ours_score = run_ours(embedder, ref, ev, root / "cache", args.batch_size)
        fadtk_warm, _ = run_fadtk(embedder, fref, fev)
        ours_warm, _ = run_ours(embedder, ref, ev, root / "cache", args.batch_size)

        # Regenerate one evaluated file under the same name with different content.
        replacement = synth_clip(np.random.default_rng(args.seed + 99), args.seconds, 3.0)
        save_audio(fev[0], replacement)
        save_audio(ev[0], replacement)
        _, fadtk_after = run_fadtk(embedder, fref, fev)
        _, ours_after = run_ours(embedder, ref, ev, root / "cache", args.batch_size)

    audio_minutes = 2 * args.clips * args.seconds / 60
    print(f"{args.embedder}: {args.clips} + {args.clips} clips of {args.seconds:g} s ({audio_minutes:.1f} min audio)")
    print(f"cold caches: fadtk {fadtk_cold:7.2f} s   ours {ours_cold:7.2f} s   speed ratio (fadtk / ours) "
          f"{fadtk_cold / ours_cold:5.2f}x")
    print(f"warm caches: fadtk {fadtk_warm:7.2f} s   ours {ours_warm:7.2f} s   speed ratio (fadtk / ours) "
          f"{fadtk_warm / ours_warm:5.2f}x")
    print(f"score: fadtk {fadtk_score:.6f}   ours {ours_score:.6f}   difference {ours_score - fadtk_score:+.2e} "
          f"({abs(ours_score - fadtk_score) / abs(fadtk_score):.2e} relative; fadtk stores 16-bit audio and "
          f"float16 embeddings)")
    print(f"after regenerating {ev[0].name} under the same name: fadtk {fadtk_after:.6f} "
          f"({'unchanged: stale cache' if fadtk_after == fadtk_score else 'changed'}), "
          f"ours {ours_after:.6f} ({'changed: re-embedded' if ours_after != ours_score else 'unchanged'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
