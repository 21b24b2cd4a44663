"""Shared by every builder: the papers' clip-selection protocols, writing one clip pair, and presets.

A clip is a 10 s, non-overlapping window of a (vocals, accompaniment) pair at 24 kHz. Which windows are kept
depends on the protocol (see :data:`PROTOCOLS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from sag_bench.audio import CLIP_SAMPLES, SAMPLE_RATE, clip_offsets, peak_rms_db, save_audio
from sag_bench.config import package_toml
from sag_bench.datasets.manifest import DatasetError
from sag_bench.store import sha256_file

# Which stems must pass the -25 dB peak-RMS filter.
# FastSAG section 4.1: vocals and accompaniment both (348 MUSDB18 test clips);
# SingSong section 4: vocals only (778 MUSDB18 test clips).
PROTOCOLS: dict[str, tuple[str, ...]] = {"fastsag": ("vocals", "accompaniment"), "singsong": ("vocals",)}

CLIPS_DIR = "clips"
PRESETS_FILE = Path(__file__).with_name("presets.toml")


@dataclass(frozen=True)
class Window:
    """One candidate 10 s window: its start sample and both stems' peak frame RMS in dBFS."""

    start: int
    vocals_rms_db: float
    accompaniment_rms_db: float


def check_protocol(protocol: str) -> str:
    """Return ``protocol`` or raise :class:`DatasetError` listing the known ones."""
    if protocol not in PROTOCOLS:
        raise DatasetError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return protocol


def select_windows(vocals: np.ndarray, accompaniment: np.ndarray, protocol: str,
                   threshold_db: float, clip_samples: int = CLIP_SAMPLES) -> list[Window]:
    """Non-overlapping full windows of an aligned pair whose stems named by ``protocol`` exceed ``threshold_db``."""
    required = PROTOCOLS[check_protocol(protocol)]
    length = min(len(vocals), len(accompaniment))
    kept = []
    for start in clip_offsets(length, clip_samples):
        window = Window(start, peak_rms_db(vocals[start:start + clip_samples]),
                        peak_rms_db(accompaniment[start:start + clip_samples]))
        levels = {"vocals": window.vocals_rms_db, "accompaniment": window.accompaniment_rms_db}
        if all(levels[stem] > threshold_db for stem in required):
            kept.append(window)
    return kept


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
