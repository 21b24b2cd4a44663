"""Built-in systems, declared once here; one ``sag_bench.systems`` entry point (``builtin``) registers them all.

An ablation is a configuration of one system class, never a copied module: the FastSAG variants' keyword arguments
below are the single definition of each variant. Each entry names its trainer (``sag-bench train NAME``), its row
in the FastSAG paper's tables (numbers in ``paper.toml`` beside this file) and its reference path (``degradation``,
see :mod:`sag_bench.evaluation.degradation`; RandSong and the ground truth have none).
"""

from sag_bench.registry import Entry, Family

_FASTSAG = "sag_bench.systems.fastsag.system:FastSAGSystem"
_SINGSONG = "sag_bench.systems.singsong.system:SingSongSystem"
_TRAIN_FASTSAG = "sag_bench.systems.trainers:train_fastsag"
_TRAIN_SINGSONG = "sag_bench.systems.trainers:train_singsong"


def _fastsag(name: str, summary: str, paper_row: str, resampler: str = "perceiver", condition: str = "semantic",
             mel_norm: bool = True) -> Entry:
    return Entry(name, summary, _FASTSAG, {"resampler": resampler, "condition": condition, "mel_norm": mel_norm},
                 trainer=_TRAIN_FASTSAG, paper_row=paper_row, degradation="vocoder")


SYSTEMS = Family([
    _fastsag("fastsag", "FastSAG: MERT semantics -> Perceiver-IO resampler -> prior -> EDM mel diffusion -> vocoder",
             "FastSAG"),
    _fastsag("fastsag-interpolate", "FastSAG ablation: bilinear interpolation instead of the Perceiver",
             "FastSAG (interpolate)", resampler="interpolate"),
    _fastsag("fastsag-mel", "FastSAG ablation: the vocal mel alone as the condition", "FastSAG (mel)", condition="mel"),
    _fastsag("fastsag-semantic-mel", "FastSAG ablation: semantic features and the vocal mel as the condition",
             "FastSAG (semant+mel)", condition="semantic+mel"),
    _fastsag("fastsag-no-norm", "FastSAG ablation: without mel normalisation", "FastSAG (w/o norm)", mel_norm=False),
    # Both SingSong systems read one checkpoint folder; training either trains its three stages.
    Entry("singsong-sc", "SingSong re-implementation, semantic + coarse stages (Encodec from 3 codebooks)",
          _SINGSONG, {"stages": "sc"}, trainer=_TRAIN_SINGSONG, paper_row="SingSong s+c", degradation="codec:3"),
    Entry("singsong-scf", "SingSong re-implementation, semantic + coarse + fine stages (Encodec from 8 codebooks)",
          _SINGSONG, {"stages": "scf"}, trainer=_TRAIN_SINGSONG, paper_row="SingSong s+c+f",
          degradation="codec:8"),
    Entry("randsong", "RandSong: a random human-composed accompaniment from another song (seeded)",
          "sag_bench.systems.randsong:RandSong", paper_row="RandSong"),
    Entry("groundtruth", "Ground truth: the clip's own human-composed accompaniment",
          "sag_bench.systems.groundtruth:GroundTruth", paper_row="Human-composed"),
])

# Perturbations of the ground truth (metric validation): each breaks one thing a coherence measure claims to see.
_PERTURB = "sag_bench.systems.perturbations"
PERTURBATIONS: list[Entry] = [
    Entry("perturb-transposed-1", "Perturbation: ground truth transposed up a semitone (breaks harmony)",
          f"{_PERTURB}:Transposed", {"semitones": 1.0}),
    Entry("perturb-transposed-6", "Perturbation: ground truth transposed up a tritone (breaks harmony)",
          f"{_PERTURB}:Transposed", {"semitones": 6.0}),
    Entry("perturb-shifted-half-beat", "Perturbation: ground truth delayed half a beat (breaks alignment)",
          f"{_PERTURB}:TimeShifted", {"beats": 0.5}),
    Entry("perturb-shifted-beat", "Perturbation: ground truth delayed one beat (breaks alignment)",
          f"{_PERTURB}:TimeShifted", {"beats": 1.0}),
    Entry("perturb-other-clip", "Perturbation: ground truth of another clip of the same song (breaks the moment)",
          f"{_PERTURB}:OtherClipSameSong"),
    Entry("perturb-other-song", "Perturbation: ground truth of another song of the same split (RandSong)",
          "sag_bench.systems.randsong:RandSong", {"pool_split": "test"}),
    Entry("perturb-static-chord", "Perturbation: the key's tonic triad held for the whole clip (no harmonic motion)",
          f"{_PERTURB}:StaticChord"),
    Entry("perturb-copied-vocals", "Perturbation: the input vocals copied 12 dB quieter (copying, not accompanying)",
          f"{_PERTURB}:CopiedVocals", {"gain_db": -12.0}),
    Entry("perturb-silence", "Perturbation: silence (no accompaniment)", f"{_PERTURB}:Silence"),
    Entry("perturb-shaped-noise", "Perturbation: noise with the ground truth's spectrum and level (no pitch, no rhythm)",
          f"{_PERTURB}:ShapedNoise"),
]
