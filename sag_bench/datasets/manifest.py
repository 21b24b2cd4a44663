"""The dataset manifest: the on-disk clip list every dataset builder writes and every consumer reads (not to be
confused with the *run* manifest of :mod:`sag_bench.runs`).

``DIR/manifest.json``::

    {"dataset": "chorales", "sample_rate": 24000, "clip_seconds": 10.0, "options": {...},
     "clips": [{"id": ..., "song": ..., "split": "train" | "test" | "zeroshot" | ...,
                "offset_seconds": ..., "vocals": "clips/<id>.vocals.wav", "accompaniment": "clips/<id>.acc.wav",
                "vocals_rms_db": ..., "accompaniment_rms_db": ..., "sha256": {"vocals": ..., "accompaniment": ...}}]}

Paths are relative to DIR. Extra keys per clip are allowed (e.g. ``vocals_variant``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from sag_bench.audio import SAMPLE_RATE, load_audio
from sag_bench.errors import DatasetError  # noqa: F401 (raised here; importable from here)
from sag_bench.store import read_json, sha256_file, write_json

DATASET_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ClipRecord:
    """One clip pair as listed in a manifest (no audio loaded)."""

    id: str
    song: str
    split: str
    vocals: Path
    accompaniment: Path
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class ClipPair:
    """A loaded (vocals, accompaniment) pair: mono float32 arrays of equal length at ``sample_rate``."""

    id: str
    song: str
    vocals: np.ndarray
    accompaniment: np.ndarray
    sample_rate: int = SAMPLE_RATE
    split: str = ""


def write_manifest(root: str | Path, dataset: str, clips: list[dict[str, Any]], options: dict[str, Any],
                   sample_rate: int = SAMPLE_RATE, clip_seconds: float = 10.0) -> Path:
    """Write ``root/manifest.json`` atomically; ``clips`` carry paths relative to ``root``."""
    ids = [clip["id"] for clip in clips]
    if len(ids) != len(set(ids)):
        raise DatasetError(f"{root}: duplicate clip ids in manifest")
    return write_json(Path(root) / DATASET_MANIFEST, {"dataset": dataset, "sample_rate": sample_rate,
                                                    "clip_seconds": clip_seconds, "options": options, "clips": clips})


class ClipDataset:
    """A built dataset folder: lists clips from the manifest and loads them on demand."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / DATASET_MANIFEST
        if not path.is_file():
            raise DatasetError(f"{self.root}: no {DATASET_MANIFEST} (build one with `sag-bench data build NAME --out DIR`)")
        self.manifest: dict[str, Any] = read_json(path)
        self.sample_rate: int = int(self.manifest.get("sample_rate", SAMPLE_RATE))
        self.name: str = self.manifest.get("dataset", self.root.name)

    def records(self, split: str | None = None) -> list[ClipRecord]:
        """Clip records, optionally only those of ``split``."""
        known = {"id", "song", "split", "vocals", "accompaniment"}
        return [ClipRecord(id=c["id"], song=c["song"], split=c.get("split", ""), vocals=self.root / c["vocals"],
                           accompaniment=self.root / c["accompaniment"],
                           extra={k: v for k, v in c.items() if k not in known})
                for c in self.manifest["clips"] if split is None or c.get("split") == split]

    def splits(self) -> list[str]:
        """The splits present, sorted."""
        return sorted({c.get("split", "") for c in self.manifest["clips"]})

    def load_vocals(self, record: ClipRecord) -> np.ndarray:
        """Only the vocals of one clip (what a system's input needs), at the dataset's sample rate."""
        return load_audio(record.vocals, self.sample_rate)

    def load(self, record: ClipRecord) -> ClipPair:
        """Load one clip pair at the dataset's sample rate."""
        return ClipPair(id=record.id, song=record.song, split=record.split,
                        vocals=load_audio(record.vocals, self.sample_rate),
                        accompaniment=load_audio(record.accompaniment, self.sample_rate),
                        sample_rate=self.sample_rate)

    def __iter__(self) -> Iterator[ClipPair]:
        return (self.load(record) for record in self.records())

    def verify(self) -> list[str]:
        """Clip ids whose files are missing or whose sha256 differs from the manifest."""
        bad = []
        for clip in self.manifest["clips"]:
            for role in ("vocals", "accompaniment"):
                path = self.root / clip[role]
                expected = clip.get("sha256", {}).get(role)
                if not path.is_file() or (expected and sha256_file(path) != expected):
                    bad.append(clip["id"])
                    break
        return bad
