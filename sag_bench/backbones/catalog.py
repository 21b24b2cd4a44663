"""Pretrained backbones and their offline stand-ins, declared once here; one ``sag_bench.backbones`` entry point registers them all.

Every pretrained part has a real implementation (used when its weights load) and an offline stand-in that
needs no download; a configuration names one explicitly and the run records which.
"""

from sag_bench.registry import Entry, Family

BACKBONES = Family([
    Entry("mert-v1-95m", "Semantic encoder: MERT-v1-95M layer 7 through transformers.HubertModel (real, needs weights)",
          "sag_bench.backbones.semantic:MertEncoder"),
    Entry("dsp-semantic", "Semantic encoder stand-in: log-mel + chroma features at MERT's 75 Hz frame grid (offline)",
          "sag_bench.backbones.semantic:DSPSemanticEncoder"),
    Entry("bigvgan-24k-100band", "Vocoder: BigVGAN 24 kHz 100-band through the bigvgan package (real, needs weights)",
          "sag_bench.backbones.vocoder:BigVGANVocoder"),
    Entry("griffin-lim", "Vocoder stand-in: Griffin-Lim on the same BigVGAN mel (offline)",
          "sag_bench.backbones.vocoder:GriffinLimVocoder"),
    Entry("encodec-24k", "Codec: Encodec 24 kHz at 6 kbps, 8 codebooks at 75 Hz (real, needs weights)",
          "sag_bench.backbones.codec:EncodecCodec"),
    Entry("mel-rvq", "Codec stand-in: residual k-means over the normalised mel, 8 codebooks at 75 Hz (offline)",
          "sag_bench.backbones.codec:MelRVQCodec"),
    Entry("htdemucs", "Separator: Demucs htdemucs two-stem vocals/accompaniment through demucs.api",
          "sag_bench.backbones.separator:DemucsSeparator"),
])
