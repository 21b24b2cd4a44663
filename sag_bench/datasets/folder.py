"""In-domain clips from any folder of songs (FastSAG's data recipe).

songs -> Demucs two-stem separation -> 10 s non-overlapping clips -> -25 dB filter -> song-disjoint
train/test split -> manifest. Work is recorded per song in ``DIR/songs/<song>.json`` so that

* each song is one task of an executor (:mod:`sag_bench.executors`: in this process, or Ray tasks on a local
  instance or a cluster) that separates, clips, filters and writes that song's clips and record,
* ``shard=(i, N)`` processes every N-th song (a Slurm job array separates a large collection in parallel),
* re-running skips finished songs (and retries a skipped one only if its file changed),
* the manifest is written by the driver of whichever run finds every song accounted for.

Unreadable songs are skipped with a logged reason, recorded in the manifest's options.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sag_bench.audio import CLIP_SAMPLES, SAMPLE_RATE, AudioError, load_audio_channels
from sag_bench.backbones.base import Separator
from sag_bench.datasets.clips import check_protocol, select_windows, write_clip
from sag_bench.datasets.manifest import DatasetError, write_manifest
from sag_bench.executors import Executor, Resources, Task, create
from sag_bench.store import read_json, write_json

log = logging.getLogger(__name__)

# Default size of the held-out in-domain test set, in clips (FastSAG section 4.1).
TEST_CLIPS = 2000
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".aiff", ".aif", ".opus"}
SONGS_DIR = "songs"


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` (0 <= i < N) -> ``(i, N)``; raises :class:`DatasetError` for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise DatasetError(f"shard {text!r}: expected i/N with 0 <= i < N (e.g. 0/8 for an array job's first task)")
    return int(match[1]), int(match[2])


def list_songs(src: Path) -> list[Path]:
    """Audio files under ``src`` (recursively), sorted by path."""
    if not src.is_dir():
        raise DatasetError(f"{src}: not a folder of songs")
    songs = sorted(path for path in src.rglob("*") if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES)
    if not songs:
        raise DatasetError(f"{src}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return songs


def song_id(src: Path, path: Path) -> str:
    """A file-name-safe id from the song's path relative to ``src``, with a short hash against collisions."""
    relative = path.relative_to(src).as_posix()
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", relative.rsplit(".", 1)[0]).strip("_")[:80]
    return f"{readable}-{hashlib.sha1(relative.encode()).hexdigest()[:8]}"


def _file_stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _finished(status_path: Path, path: Path) -> bool:
    if not status_path.is_file():
        return False
    status = read_json(status_path)
    return "skipped" not in status or status.get("stamp") == _file_stamp(path)


def separate_song(root: Path, path: Path, song: str, separator: Separator, protocol: str) -> list[dict[str, Any]]:
    """Separate one song, write the clips that pass ``protocol``'s filter, and return their records."""
    mixture = load_audio_channels(path, SAMPLE_RATE)  # Demucs separates better with the stereo image
    if mixture.shape[-1] < CLIP_SAMPLES:
        raise AudioError(path, f"shorter than one clip ({mixture.shape[-1] / SAMPLE_RATE:.1f} s < 10 s)")
    vocals, accompaniment = (stem.numpy() for stem in separator.separate(torch.from_numpy(mixture), SAMPLE_RATE))
    return [write_clip(root, f"{song}-{window.start // CLIP_SAMPLES:03d}", song, "", window, vocals, accompaniment,
                       vocals_variant="separated")
            for window in select_windows(vocals, accompaniment, protocol)]


@dataclass(frozen=True)
class DemucsSource:
    """The default separator as a recipe: each process that runs song tasks builds it once, on first use."""

    model: str
    device: str
    seed: int

    def load(self) -> Separator:
        """The :class:`~sag_bench.backbones.separator.DemucsSeparator` of this recipe (cached per process)."""
        return _demucs(self)


@lru_cache(maxsize=1)
def _demucs(source: DemucsSource) -> Separator:
    from sag_bench.backbones.separator import DemucsSeparator

    return DemucsSeparator(model=source.model, device=source.device, seed=source.seed)


def song_task(root: Path, src: Path, song: str, path: Path, separator: Separator | DemucsSource,
              protocol: str) -> dict[str, Any]:
    """One song's task: separate, clip, filter, write its clips and its record ``songs/<song>.json`` (atomically,
    last); returns the record. An unreadable or too short song is recorded as skipped with the reason."""
    if isinstance(separator, DemucsSource):
        separator = separator.load()
    status: dict[str, Any] = {"song": song, "source": path.relative_to(src).as_posix()}
    try:
        status["clips"] = separate_song(root, path, song, separator, protocol)
        status["separator"] = separator.describe()
    except AudioError as error:
        log.warning("skipped %s", error)
        status.update(skipped=error.problem, stamp=_file_stamp(path))
    write_json(root / SONGS_DIR / f"{song}.json", status)
    return status


def split_songs(song_clips: dict[str, int], test_clips: int, seed: int) -> set[str]:
    """Songs of the test split: a seeded order of songs, taken until ``test_clips`` clips (at least one song stays
    in train). Only songs with clips count."""
    songs = sorted(song for song, count in song_clips.items() if count > 0)
    test: set[str] = set()
    total = 0
    for index in np.random.default_rng(seed).permutation(len(songs)):
        if total >= test_clips or len(test) + 1 >= len(songs):
            break
        test.add(songs[index])
        total += song_clips[songs[index]]
    return test


def _write_dataset(root: Path, statuses: list[dict[str, Any]], test_clips: int, seed: int,
                   options: dict[str, Any]) -> Path:
    clips = {status["song"]: status.get("clips", []) for status in statuses}
    test = split_songs({song: len(records) for song, records in clips.items()}, test_clips, seed)
    records = [{**record, "split": "test" if song in test else "train"}
               for song, song_records in sorted(clips.items()) for record in song_records]
    if not records:
        raise DatasetError(f"{root}: no clip passed the filter in any song")
    skipped = {status["source"]: status["skipped"] for status in statuses if "skipped" in status}
    used = {json.dumps(status["separator"], sort_keys=True) for status in statuses if "separator" in status}
    separators = [json.loads(text) for text in sorted(used)]
    return write_manifest(root, "folder", records, {**options, "skipped": skipped, "separators": separators,
                                                    "songs": len(clips), "test_songs": len(test)})


def build(out_dir: str | Path, src: str | Path, separator: Separator | None = None, model: str = "htdemucs",
          device: str = "cpu", protocol: str = "fastsag", test_clips: int = TEST_CLIPS,
          shard: str | tuple[int, int] | None = None, seed: int = 0, executor: str | Executor = "inprocess",
          address: str | None = None, workers: int | None = None) -> Path:
    """Separate the songs of ``src`` (this shard's share), one task per song, and, once every song is done, write
    the manifest.

    ``separator`` defaults to :class:`~sag_bench.backbones.separator.DemucsSeparator` with ``model`` on
    ``device``, built only where a song needs separating. ``executor`` is an executor or its name (``inprocess``,
    ``ray`` with ``address``/``workers``); it is recorded in the manifest's options and never changes the files.
    Returns the manifest path, or the ``songs/`` status folder when other shards still have songs to finish.
    """
    root, src = Path(out_dir), Path(src)
    check_protocol(protocol)
    index, count = parse_shard(shard) if isinstance(shard, str) else (shard or (0, 1))
    songs = {song_id(src, path): path for path in list_songs(src)}
    status_dir = root / SONGS_DIR
    source = separator if separator is not None else DemucsSource(model, device, seed)
    tasks = [Task(song, song_task, (root, src, song, path, source, protocol), Resources.for_device(device))
             for position, (song, path) in enumerate(songs.items()) if position % count == index]
    if isinstance(executor, Executor) and (address is not None or workers is not None):
        raise DatasetError("address and workers configure an executor given by name, not an executor object")
    owned = create(executor, address=address, workers=workers) if isinstance(executor, str) else None
    executor = owned or executor
    todo = [task for task in tasks if not _finished(status_dir / f"{task.key}.json", songs[task.key])]
    if todo and separator is None:
        from sag_bench.backbones.separator import check_weights

        check_weights(model)  # fail before starting any worker
    with owned or nullcontext():  # an executor object given stays open for its owner
        for _ in tqdm(executor.map(todo), total=len(todo), desc=f"separating (shard {index}/{count})", unit="song"):
            pass
    missing = [song for song in songs if not (status_dir / f"{song}.json").is_file()]
    if missing:
        log.info("%d of %d songs still to separate (other shards); the manifest follows when all are done",
                 len(missing), len(songs))
        return status_dir
    statuses = [read_json(status_dir / f"{song}.json") for song in songs]
    options = {"src": str(src), "protocol": protocol, "test_clips": test_clips, "seed": seed,
               "executor": executor.describe()}
    return _write_dataset(root, statuses, test_clips, seed, options)
