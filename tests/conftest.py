"""Shared test fixtures, and the one synthetic dataset builder of the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
import torch

from sag_bench.audio import SAMPLE_RATE, save_audio
from sag_bench.datasets.manifest import write_manifest
from sag_bench.store import sha256_file


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    """Keep tests on few threads: the CI machine has 2 cores."""
    torch.set_num_threads(2)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread: token-by-token decoding and Demucs on tiny models are several times faster on this
    2-core machine with one thread than with two (and robust to a loaded CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tone() -> np.ndarray:
    """Ten seconds of a 440 Hz sine at 24 kHz, amplitude 0.5."""
    t = np.arange(10 * SAMPLE_RATE) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def build_dataset(root: Path, songs: int = 4, clips_per_song: int = 2, seconds: float = 10.0, seed: int = 0,
                  all_train: bool = False) -> Path:
    """The one synthetic dataset folder of the tests: harmonically related vocal/accompaniment pairs per song.

    Song ``s`` (clip ids ``song<s>-<i>``) has a seeded random melody as vocals and its fifth plus a bass note as
    accompaniment. Even songs are in split ``train``, odd ones in ``test`` (all in ``train`` with ``all_train``).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    clips = []
    for song in range(songs):
        base = 196.0 * 2 ** (song / 12)
        for index in range(clips_per_song):
            notes = base * 2 ** (rng.integers(0, 12, size=max(1, int(seconds * 2))) / 12)
            freq = np.repeat(notes, len(t) // len(notes) + 1)[: len(t)]
            vocals = 0.3 * np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE)
            accompaniment = (0.2 * np.sin(2 * np.pi * np.cumsum(freq * 1.5) / SAMPLE_RATE)
                             + 0.2 * np.sin(2 * np.pi * base / 2 * t))
            clip_id = f"song{song}-{index}"
            files = {"vocals": f"clips/{clip_id}.vocals.wav", "accompaniment": f"clips/{clip_id}.acc.wav"}
            save_audio(root / files["vocals"], vocals.astype(np.float32))
            save_audio(root / files["accompaniment"], accompaniment.astype(np.float32))
            clips.append({"id": clip_id, "song": f"song{song}",
                          "split": "train" if all_train or song % 2 == 0 else "test",
                          "offset_seconds": index * seconds, **files,
                          "sha256": {k: sha256_file(root / v) for k, v in files.items()}})
    write_manifest(root, "synthetic", clips, {"seed": seed})
    return root


@pytest.fixture(scope="session")
def dataset_builder() -> Callable[..., Path]:
    """:func:`build_dataset`, for fixtures of any scope."""
    return build_dataset
