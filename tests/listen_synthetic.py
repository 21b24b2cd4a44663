"""A small synthetic run folder in the layout the experiment runner writes, to build and try a study offline.

Vocals are a sung-like sine melody with vibrato; the ground-truth accompaniment plays the triads under it.
System ``k`` (in the order given) plays the same chords transposed by ``k`` semitones, so quality falls with ``k``
and a listener (or a test) has a known ordering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sag_bench.audio import SAMPLE_RATE, mix, save_audio
from sag_bench.datasets.manifest import write_manifest
from sag_bench.runs import RunManifest, RunStore

_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11, 12)
_NOTES_PER_SECOND = 2


def _tone(freq: np.ndarray, sample_rate: int) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    return np.sin(phase) + 0.3 * np.sin(2 * phase)


def _clip(rng: np.random.Generator, seconds: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Vocals and a chord accompaniment (as MIDI note arrays per sample) for one clip."""
    samples = int(seconds * sample_rate)
    notes = max(1, int(seconds * _NOTES_PER_SECOND))
    key = 60 + int(rng.integers(-5, 6))
    degrees = rng.integers(0, 7, size=notes)
    per_note = int(np.ceil(samples / notes))
    melody = np.repeat(key + 12 + np.take(_MAJOR_SCALE, degrees), per_note)[:samples].astype(np.float64)
    roots = np.repeat(key + np.take(_MAJOR_SCALE, degrees), per_note)[:samples].astype(np.float64)
    return melody, roots


def _midi_hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _render(melody: np.ndarray, roots: np.ndarray, sample_rate: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(len(melody)) / sample_rate
    vibrato = 1.0 + 0.006 * np.sin(2 * np.pi * 5.5 * t)
    vocals = 0.3 * _tone(_midi_hz(melody) * vibrato, sample_rate)
    chord = sum(_tone(_midi_hz(roots + shift + offset), sample_rate) for offset in (-12, 0, 4, 7))
    return vocals.astype(np.float32), (0.12 * chord).astype(np.float32)


def make_synthetic_run(root: str | Path, systems: list[str], clips: int = 4, seconds: float = 2.0,
                       seed: int = 0, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write ``root/{data, generated, mixes, manifest.json}`` for ``systems`` on ``clips`` clips; returns root."""
    root = Path(root)
    store = RunStore(root)
    rng = np.random.default_rng(seed)
    records = []
    for index in range(clips):
        clip_id = f"clip{index:03d}"
        melody, roots = _clip(rng, seconds, sample_rate)
        vocals, accompaniment = _render(melody, roots, sample_rate, shift=0)
        save_audio(root / "data" / "clips" / f"{clip_id}.vocals.wav", vocals, sample_rate)
        save_audio(root / "data" / "clips" / f"{clip_id}.acc.wav", accompaniment, sample_rate)
        records.append({"id": clip_id, "song": f"song{index // 2}", "split": "test",
                        "vocals": f"clips/{clip_id}.vocals.wav", "accompaniment": f"clips/{clip_id}.acc.wav"})
        for shift, system in enumerate(systems):
            generated = _render(melody, roots, sample_rate, shift=shift)[1]
            save_audio(store.generated(system, clip_id), generated, sample_rate)
            save_audio(store.mix(system, clip_id), mix(vocals, generated)[0], sample_rate)
    write_manifest(root / "data", "synthetic", records, {"seed": seed, "seconds": seconds}, sample_rate, seconds)
    store.write_manifest(RunManifest(spec={"systems": [{"name": s} for s in systems]}, seeds={"run": seed},
                                     data_dir="data", clips=[r["id"] for r in records]))
    return root
