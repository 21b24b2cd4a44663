"""Shared by every builder: the papers' clip-selection filters, writing one clip pair, and presets.

A clip is a 10 s, non-overlapping window of a (vocals, accompaniment) pair at 24 kHz. Which windows are kept
depends on the protocol's filter (see :data:`FILTERS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from sag_bench.audio import CLIP_SAMPLES, RMS_THRESHOLD_DB, SAMPLE_RATE, clip_offsets, peak_rms_db, save_audio
from sag_bench.config import package_toml
from sag_bench.datasets.manifest import DatasetError
from sag_bench.store import sha256_file

CLIPS_DIR = "clips"
PRESETS_FILE = Path(__file__).with_name("presets.toml")


def clip_rms_db(audio: np.ndarray) -> float:
    """RMS of the whole clip in dBFS (20 log10 RMS; silence floors at -120 dB)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return 20.0 * float(np.log10(max(rms, 1e-6)))


@dataclass(frozen=True)
class ClipFilter:
    """A clip-selection rule: the stems that must pass, the level measured on each, the threshold, and whether the
    level is measured on the stems at their file rate (else at 24 kHz)."""

    stems: tuple[str, ...]
    level: Callable[[np.ndarray], float]
    threshold_db: float
    inclusive: bool
    at_file_rate: bool
    rule: str

    def passes(self, levels: dict[str, float]) -> bool:
        """True when every required stem's level meets the threshold."""
        return all(levels[stem] >= self.threshold_db if self.inclusive else levels[stem] > self.threshold_db
                   for stem in self.stems)


# fastsag: the authors' preprocessing/clip_to_10s.py (reference facts): each stem mono at its file rate, whole-clip
# RMS with 10 ln(RMS) >= -25 on both stems, i.e. RMS >= e^-2.5 = 20 log10(e^-2.5) = -21.71 dBFS (348 MUSDB18 test
# clips in the paper). singsong: SingSong section 4, vocals' peak-frame RMS (2048 / 1024 frames) above -25 dBFS
# (778 clips). peak-both: both stems' peak-frame RMS above -25 dBFS, the rule the synthetic chorales are cut with.
FILTERS: dict[str, ClipFilter] = {
    "fastsag": ClipFilter(("vocals", "accompaniment"), clip_rms_db, -50.0 / math.log(10.0), True, True,
                          "vocals and accompaniment whole-clip RMS >= e^-2.5 (-21.71 dBFS), authors' code"),
    "singsong": ClipFilter(("vocals",), peak_rms_db, RMS_THRESHOLD_DB, False, False,
                           "vocals peak-frame RMS > -25 dBFS, SingSong paper"),
    "peak-both": ClipFilter(("vocals", "accompaniment"), peak_rms_db, RMS_THRESHOLD_DB, False, False,
                            "vocals and accompaniment peak-frame RMS > -25 dBFS"),
}
# Filters a dataset can be built with (peak-both is internal to the chorales builder).
PROTOCOLS = ("fastsag", "singsong")


@dataclass(frozen=True)
class Window:
    """One kept 10 s window: its start sample and the levels (dBFS) its filter measured per required stem."""

    start: int
    levels: dict[str, float]


def check_protocol(protocol: str) -> str:
    """Return ``protocol`` or raise :class:`DatasetError` listing the known ones."""
    if protocol not in PROTOCOLS:
        raise DatasetError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return protocol


def select_windows(vocals: np.ndarray, accompaniment: np.ndarray, protocol: str,
                   clip_samples: int = CLIP_SAMPLES) -> list[Window]:
    """Non-overlapping full windows (from the start) of an aligned pair that pass ``protocol``'s filter
    (:data:`FILTERS`); ``clip_samples`` is 10 s at the rate of the arrays given."""
    if protocol not in FILTERS:
        raise DatasetError(f"unknown clip filter {protocol!r}; known: {', '.join(FILTERS)}")
    rule = FILTERS[protocol]
    stems = {"vocals": vocals, "accompaniment": accompaniment}
    kept = []
    for start in clip_offsets(min(len(vocals), len(accompaniment)), clip_samples):
        levels = {stem: rule.level(stems[stem][start:start + clip_samples]) for stem in rule.stems}
        if rule.passes(levels):
            kept.append(Window(start, levels))
    return kept


def filter_counts(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, int]:
    """How many (vocals, accompaniment) clips pass each filter of :data:`PROTOCOLS`."""
    counts = dict.fromkeys(PROTOCOLS, 0)
    for vocals, accompaniment in pairs:
        for name in PROTOCOLS:
            counts[name] += len(select_windows(vocals, accompaniment, name, min(len(vocals), len(accompaniment))))
    return counts


def write_clip(root: Path, clip_id: str, song: str, split: str, window: Window, vocals: np.ndarray,
               accompaniment: np.ndarray, sample_rate: int = SAMPLE_RATE,
               clip_samples: int = CLIP_SAMPLES, **extra: Any) -> dict[str, Any]:
    """Write the window of both stems under ``root/clips/`` and return its manifest record.

    The record's levels are those of the written stems (which may differ from the window's when the vocals
    written are not the ones the window was selected on, e.g. separated instead of isolated).
    """
    paths = {"vocals": f"{CLIPS_DIR}/{clip_id}.vocals.wav", "accompaniment": f"{CLIPS_DIR}/{clip_id}.acc.wav"}
    end = window.start + clip_samples
    stems = {"vocals": vocals[window.start:end], "accompaniment": accompaniment[window.start:end]}
    for role, audio in stems.items():
        save_audio(root / paths[role], audio, sample_rate)
    return {"id": clip_id, "song": song, "split": split, "offset_seconds": window.start / sample_rate, **paths,
            **{f"{role}_rms_db": round(peak_rms_db(audio), 3) for role, audio in stems.items()},
            "sha256": {role: sha256_file(root / path) for role, path in paths.items()}, **extra}


@lru_cache(maxsize=1)
def dataset_config(dataset: str) -> dict[str, Any]:
    """The ``[dataset]`` table of ``presets.toml`` (presets, rendering settings, ...)."""
    return package_toml(__package__, PRESETS_FILE.name).get(dataset, {})


def preset(dataset: str, name: str) -> dict[str, Any]:
    """The ``[dataset.presets.name]`` table; raises :class:`DatasetError` listing the known presets."""
    tables = dataset_config(dataset).get("presets", {})
    if name not in tables:
        raise DatasetError(f"{PRESETS_FILE}: no preset {name!r} for {dataset}; known: {', '.join(tables) or '(none)'}")
    return tables[name]
