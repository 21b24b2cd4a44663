"""A small synthetic dataset folder for runner tests: harmonically related vocal/accompaniment pairs per song."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sag_bench.audio import save_audio
from sag_bench.datasets.manifest import write_manifest
from sag_bench.store import sha256_file


def build_synthetic_dataset(root: Path, songs: int = 4, clips_per_song: int = 2, seconds: float = 10.0,
                            seed: int = 0) -> Path:
    """Songs 0..songs-1; even songs -> train, odd -> test. Vocals: a melody; accompaniment: its fifth and bass."""
    rng = np.random.default_rng(seed)
    rate = 24_000
    t = np.arange(int(seconds * rate)) / rate
    clips = []
    for song in range(songs):
        base = 196.0 * 2 ** (song / 12)
        for index in range(clips_per_song):
            notes = base * 2 ** (rng.integers(0, 12, size=int(seconds * 2)) / 12)
            freq = np.repeat(notes, len(t) // len(notes) + 1)[: len(t)]
            vocals = 0.3 * np.sin(2 * np.pi * np.cumsum(freq) / rate)
            accompaniment = 0.2 * np.sin(2 * np.pi * np.cumsum(freq * 1.5) / rate) + 0.2 * np.sin(2 * np.pi * base / 2 * t)
            clip_id = f"song{song}-{index}"
            files = {"vocals": f"clips/{clip_id}.vocals.wav", "accompaniment": f"clips/{clip_id}.acc.wav"}
            save_audio(root / files["vocals"], vocals.astype(np.float32))
            save_audio(root / files["accompaniment"], accompaniment.astype(np.float32))
            clips.append({"id": clip_id, "song": f"song{song}", "split": "train" if song % 2 == 0 else "test",
                          "offset_seconds": index * seconds, **files,
                          "sha256": {k: sha256_file(root / v) for k, v in files.items()}})
    write_manifest(root, "synthetic", clips, {"seed": seed})
    return root
