"""MUSDB18 / MUSDB18-HQ as 10 s clip pairs: the zero-shot test set of FastSAG and SingSong.

Clips are the non-overlapping 10 s windows of each track. Which windows are kept is chosen on the isolated
stems, so both vocal variants cover the same clips:

* protocol ``fastsag``: the authors' code (both stems' whole-clip RMS >= e^-2.5, about -21.7 dBFS, measured on
  the mono stems at the file rate); ``singsong``: vocals' peak-frame RMS over -25 dBFS (see ``clips.FILTERS``).
* vocals ``isolated``: the ground-truth vocal stem (FAD_i); ``separated``: vocals Demucs separates from the
  mixture (FAD_s). The accompaniment reference is always the ground-truth accompaniment.

The musdb package (and with it stempeg/ffmpeg) is imported only when this dataset is built.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sag_bench.audio import CLIP_SAMPLES, CLIP_SECONDS, SAMPLE_RATE, resample
from sag_bench.backbones.base import Separator
from sag_bench.datasets.clips import FILTERS, Window, check_protocol, select_windows, write_clip
from sag_bench.datasets.manifest import DatasetError, write_manifest

# Clip counts the papers report for the MUSDB18 test set (FastSAG section 4.1; SingSong section 4).
PAPER_TEST_CLIPS = {"fastsag": 348, "singsong": 778}
VOCAL_VARIANTS = ("isolated", "separated")
DOWNLOAD_PAGE = "https://sigsep.github.io/datasets/musdb.html"


def find_root(root: str | Path | None, subset: str) -> tuple[Path, bool]:
    """The MUSDB18 folder (``root`` or ``$MUSDB_PATH``) and whether it has the HQ wav layout.

    Raises :class:`DatasetError` saying where to put the data when neither layout is found.
    """
    candidate = root if root is not None else os.environ.get("MUSDB_PATH")
    hint = (f"download MUSDB18 or MUSDB18-HQ from {DOWNLOAD_PAGE} (musdb cannot download it here) and pass "
            f"--root DIR or set MUSDB_PATH; expected DIR/{subset}/*.stem.mp4 or DIR/{subset}/<track>/mixture.wav")
    if candidate is None:
        raise DatasetError(f"MUSDB18 not found: {hint}")
    folder = Path(candidate).expanduser() / subset
    if any(folder.glob("*.stem.mp4")):
        return Path(candidate).expanduser(), False
    if any(folder.glob("*/mixture.wav")):
        return Path(candidate).expanduser(), True
    raise DatasetError(f"{folder}: no MUSDB18 tracks: {hint}")


def _mono(audio: np.ndarray) -> np.ndarray:
    return np.asarray(audio, dtype=np.float64).mean(axis=1).astype(np.float32)


def kept_windows(native: tuple[np.ndarray, np.ndarray], rate: int, stems: tuple[np.ndarray, np.ndarray],
                 protocol: str) -> list[Window]:
    """The 10 s windows of the 24 kHz mono ``stems`` (vocals, accompaniment) that ``protocol`` keeps, measured on
    the ``native`` mono stems at file ``rate`` or on ``stems``, as :data:`FILTERS` says (starts in 24 kHz samples)."""
    if not FILTERS[protocol].at_file_rate:
        return select_windows(*stems, protocol)
    windows = select_windows(*native, protocol, int(round(CLIP_SECONDS * rate)))
    length = min(len(stem) for stem in stems)
    return [Window(w.start * SAMPLE_RATE // rate, w.levels) for w in windows
            if w.start * SAMPLE_RATE // rate + CLIP_SAMPLES <= length]


def _clip_prefix(track_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", track_name).strip("_")


def track_clips(root: Path, track: Any, protocol: str, vocals_variant: str, separator: Separator | None,
                subset: str) -> list[dict[str, Any]]:
    """Write one track's clips (chosen on its isolated stems) and return their manifest records."""
    native = (_mono(track.targets["vocals"].audio), _mono(track.targets["accompaniment"].audio))
    vocals, accompaniment = (resample(stem, track.rate, SAMPLE_RATE) for stem in native)
    windows = kept_windows(native, track.rate, (vocals, accompaniment), protocol)
    if windows and separator is not None:
        mixture = torch.from_numpy(np.ascontiguousarray(track.audio.T, dtype=np.float32))
        vocals = separator.separate(mixture, track.rate)[0].numpy()
    prefix = _clip_prefix(track.name)
    return [write_clip(root, f"{prefix}-{window.start // CLIP_SAMPLES:03d}",
                       track.name, subset, window, vocals, accompaniment, vocals_variant=vocals_variant)
            for window in windows]


def build(out_dir: str | Path, root: str | Path | None = None, protocol: str = "fastsag", vocals: str = "isolated",
          separator: Separator | None = None, model: str = "htdemucs", device: str = "cpu", subset: str = "test",
          seed: int = 0) -> Path:
    """Cut MUSDB18's ``subset`` tracks into clips under ``protocol`` with ``vocals`` isolated or separated.

    ``separator`` (for ``vocals="separated"``) defaults to Demucs ``model`` on ``device``, its random time
    shifts seeded by ``seed``. The split of every clip is ``subset``. Returns the manifest path.
    """
    check_protocol(protocol)
    if vocals not in VOCAL_VARIANTS:
        raise DatasetError(f"unknown vocals variant {vocals!r}; known: {', '.join(VOCAL_VARIANTS)}")
    data_root, is_wav = find_root(root, subset)
    import musdb

    tracks = musdb.DB(root=str(data_root), is_wav=is_wav, subsets=subset).tracks
    if vocals == "separated" and separator is None:
        from sag_bench.backbones.separator import DemucsSeparator

        separator = DemucsSeparator(model=model, device=device, seed=seed)
    active = separator if vocals == "separated" else None
    out = Path(out_dir)
    records = []
    for track in tqdm(tracks, desc=f"musdb18/{subset} ({protocol}, {vocals})", unit="track"):
        records.extend(track_clips(out, track, protocol, vocals, active, subset))
    if not records:
        raise DatasetError(f"{data_root}: no clip of the {subset} tracks passed the {protocol} filter")
    options = {"root": str(data_root), "layout": "hq-wav" if is_wav else "stems", "subset": subset,
               "protocol": protocol, "vocals_variant": vocals, "tracks": len(tracks), "seed": seed,
               "paper_test_clips": PAPER_TEST_CLIPS[protocol],
               "separator": active.describe() if active is not None else None}
    return write_manifest(out, "musdb18", records, options)
