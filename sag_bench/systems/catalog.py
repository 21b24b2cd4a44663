"""Built-in systems, registered through the ``sag_bench.systems`` entry points in pyproject.toml.

An ablation is a configuration of one system class, never a copied module.
"""

from sag_bench.registry import Entry

_FASTSAG = "sag_bench.systems.fastsag.system:FastSAGSystem"
_SINGSONG = "sag_bench.systems.singsong.system:SingSongSystem"

FASTSAG = Entry("fastsag", "FastSAG: MERT semantics -> Perceiver-IO resampler -> prior -> EDM mel diffusion -> vocoder",
                _FASTSAG, {"resampler": "perceiver", "condition": "semantic", "mel_norm": True})
FASTSAG_INTERPOLATE = Entry("fastsag-interpolate", "FastSAG ablation: bilinear interpolation instead of the Perceiver",
                            _FASTSAG, {"resampler": "interpolate", "condition": "semantic", "mel_norm": True})
FASTSAG_MEL = Entry("fastsag-mel", "FastSAG ablation: the vocal mel alone as the condition",
                    _FASTSAG, {"resampler": "perceiver", "condition": "mel", "mel_norm": True})
FASTSAG_SEMANTIC_MEL = Entry("fastsag-semantic-mel", "FastSAG ablation: semantic features and the vocal mel as the condition",
                             _FASTSAG, {"resampler": "perceiver", "condition": "semantic+mel", "mel_norm": True})
FASTSAG_NO_NORM = Entry("fastsag-no-norm", "FastSAG ablation: without mel normalisation",
                        _FASTSAG, {"resampler": "perceiver", "condition": "semantic", "mel_norm": False})
SINGSONG_SC = Entry("singsong-sc", "SingSong re-implementation, semantic + coarse stages (Encodec from 3 codebooks)",
                    _SINGSONG, {"stages": "sc"})
SINGSONG_SCF = Entry("singsong-scf", "SingSong re-implementation, semantic + coarse + fine stages (Encodec from 8 codebooks)",
                     _SINGSONG, {"stages": "scf"})
RANDSONG = Entry("randsong", "RandSong: a random human-composed accompaniment from another song (seeded)",
                 "sag_bench.systems.randsong:RandSong")
GROUNDTRUTH = Entry("groundtruth", "Ground truth: the clip's own human-composed accompaniment",
                    "sag_bench.systems.groundtruth:GroundTruth")
