"""Built-in dataset builders, declared once here; one ``sag_bench.datasets`` entry point registers them all."""

from sag_bench.registry import Entry, Family

DATASETS = Family([
    Entry("chorales", "Embedded default: Bach chorales rendered offline (soprano = vocals, lower voices = accompaniment)",
          "sag_bench.datasets.chorales:build"),
    Entry("musdb18", "MUSDB18 / MUSDB18-HQ test set as 10 s clips (zero-shot set of FastSAG and SingSong)",
          "sag_bench.datasets.musdb18:build"),
    Entry("folder", "In-domain clips from any folder of songs, separated by Demucs (FastSAG's data recipe)",
          "sag_bench.datasets.folder:build"),
])
