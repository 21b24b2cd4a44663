"""Embedded default dataset: Bach chorales from the music21 corpus rendered offline through tinysoundfont.

The soprano line, sung by a General MIDI voice patch with vibrato and expression, is the "vocals"; alto, tenor
and bass played on keyboard / string / bass patches are the "accompaniment". Songs (BWV movements) are split
song-disjointly into ``train``, an in-domain ``test`` rendered the same way, and a ``zeroshot`` test rendered
with other instruments and clean vocals where the other splits carry accompaniment bleed (see presets.toml).
Every random choice is drawn from generators seeded by (seed, song, transposition), so builds are reproducible.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm import tqdm

from sag_bench.audio import CLIP_SAMPLES, SAMPLE_RATE, clip_offsets
from sag_bench.datasets.clips import CLIPS_DIR, Window, dataset_config, select_windows, write_clip
from sag_bench.datasets.clips import preset as preset_table
from sag_bench.datasets.manifest import DatasetError, write_manifest
from sag_bench.datasets.render import Line, Note, Vibrato, render_lines, rendered_length

log = logging.getLogger(__name__)

SPLITS = ("train", "test", "zeroshot")
VOICES = ("soprano", "alto", "tenor", "bass")
SCORE_SUFFIXES = {".mxl", ".xml", ".krn"}
TRANSPOSITIONS = tuple(range(-6, 6))  # the 12 semitone shifts
ARTICULATION_GAP = 0.02  # seconds of silence before each note-off so that repeated notes re-attack


@dataclass(frozen=True)
class Song:
    """A chorale movement (e.g. ``bwv26.6``) and its score files in the corpus (variants of one movement)."""

    id: str
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Chorale:
    """The four voices in quarter notes: ``(offset, duration, midi pitch)`` per note, plus fermata end offsets."""

    song: str
    source: str
    voices: dict[str, tuple[tuple[float, float, int], ...]]
    fermata_ends: tuple[float, ...]


@dataclass(frozen=True)
class Rendering:
    """One rendered transposition of a song: aligned stems, the windows kept, and what was drawn."""

    song: str
    split: str
    transposition: int
    vocals: np.ndarray
    accompaniment: np.ndarray
    windows: tuple[Window, ...]
    extra: dict[str, Any]


def list_songs() -> list[Song]:
    """Bach chorale movements in the music21 corpus, variant files (``-sc``, ``-a``) grouped under one song."""
    from music21 import corpus

    groups: dict[str, list[Path]] = {}
    for path in corpus.getComposer("bach"):
        path = Path(path)
        if path.suffix in SCORE_SUFFIXES:
            groups.setdefault(re.sub(r"-[A-Za-z0-9]+$", "", path.stem), []).append(path)
    return [Song(song_id, tuple(sorted(paths))) for song_id, paths in sorted(groups.items())]


def assign_splits(songs: list[Song], fractions: dict[str, float], seed: int) -> dict[str, list[Song]]:
    """Song-disjoint split: a seeded permutation cut into test, zeroshot and train (the rest), in that order."""
    order = [songs[i] for i in np.random.default_rng(seed).permutation(len(songs))]
    counts = {split: round(fractions.get(split, 0.0) * len(songs)) for split in ("test", "zeroshot")}
    test_end = counts["test"]
    zeroshot_end = test_end + counts["zeroshot"]
    return {"test": order[:test_end], "zeroshot": order[test_end:zeroshot_end], "train": order[zeroshot_end:]}


def _voice_part(score: Any, voice: str) -> Any | None:
    matches = [part for part in score.parts if (part.partName or "").strip().lower().startswith(voice)]
    return matches[0] if len(matches) == 1 else None


def _merge_ties(part: Any) -> tuple[list[tuple[float, float, int]], list[float]]:
    """Notes of ``part`` as ``(offset, duration, pitch)`` with tied notes merged, and the end offsets of notes
    marked with a fermata. (Cheaper than music21's ``stripTies``, which deep-copies the part.)"""
    from music21 import expressions

    notes: list[tuple[float, float, int]] = []
    fermata_notes: set[int] = set()
    open_ties: dict[int, int] = {}
    for element in part.flatten().notes:
        if element.quarterLength <= 0:
            continue
        offset, end = float(element.offset), float(element.offset + element.quarterLength)
        tie = element.tie.type if element.tie is not None else None
        for pitch in (p.midi for p in element.pitches):
            if tie in ("continue", "stop") and pitch in open_ties:
                index = open_ties[pitch]
                notes[index] = (notes[index][0], end - notes[index][0], pitch)
            else:
                index = len(notes)
                notes.append((offset, end - offset, pitch))
            if tie in ("start", "continue"):
                open_ties[pitch] = index
            else:
                open_ties.pop(pitch, None)
            if any(isinstance(e, expressions.Fermata) for e in element.expressions):
                fermata_notes.add(index)
    return notes, sorted(notes[i][0] + notes[i][1] for i in fermata_notes)


def read_chorale(song: Song) -> Chorale:
    """Parse the first score of ``song`` that has Soprano, Alto, Tenor and Bass parts."""
    from music21 import converter

    for path in song.paths:
        score = converter.parse(path)
        parts = {voice: _voice_part(score, voice) for voice in VOICES}
        if any(part is None for part in parts.values()):
            continue
        voices = {}
        for voice, part in parts.items():
            notes, fermatas = _merge_ties(part)
            voices[voice] = tuple(notes)
            if voice == "soprano":
                fermata_ends = tuple(fermatas)
        if all(voices.values()):
            return Chorale(song.id, path.name, voices, fermata_ends)
    raise DatasetError(f"{song.paths[0]}: no score of {song.id} has Soprano, Alto, Tenor and Bass parts")


def _uniform(rng: np.random.Generator, bounds: list[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _line(notes: Iterable[tuple[float, float, int]], program: int, transposition: int, seconds_per_quarter: float,
          hold: float, fermata_ends: np.ndarray, velocity: int, jitter: int, rng: np.random.Generator) -> Line:
    """Notes in quarters -> a line in seconds; every fermata end delays what follows by ``hold`` seconds."""

    def seconds(quarter: float) -> float:
        return quarter * seconds_per_quarter + hold * int(np.searchsorted(fermata_ends, quarter + 1e-6))

    rendered = []
    for offset, duration, pitch in notes:
        start, end = seconds(offset), seconds(offset + duration)
        level = int(np.clip(velocity + rng.integers(-jitter, jitter + 1), 1, 127))
        rendered.append(Note(start, max(start + 0.05, end - ARTICULATION_GAP), pitch + transposition, level))
    return Line(program, tuple(rendered))


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))) + 1e-12)


def render_chorale(chorale: Chorale, split: str, transposition: int, seed: int, clips_per_render: int) -> Rendering:
    """Render one transposition of ``chorale`` in the style of ``split`` and choose its windows."""
    config = dataset_config("chorales")
    settings = config["rendering"]
    style_name = settings["split_styles"][split]
    style = config["styles"][style_name]
    rng = np.random.default_rng([seed, zlib.crc32(chorale.song.encode()), transposition + 6])
    bpm = _uniform(rng, settings["tempo_bpm"])
    seconds_per_quarter = 60.0 / bpm
    hold = _uniform(rng, settings["fermata_beats"]) * seconds_per_quarter
    programs = {"vocals": int(rng.choice(style["voice"])), "upper": int(rng.choice(style["upper"])),
                "bass": int(rng.choice(style["bass"]))}
    fermata_ends = np.asarray(chorale.fermata_ends)

    def line(voice: str, program: int) -> Line:
        velocity = int(rng.integers(settings["velocity"][0], settings["velocity"][1] + 1))
        return _line(chorale.voices[voice], program, transposition, seconds_per_quarter, hold, fermata_ends,
                     velocity, settings["velocity_jitter"], rng)

    soprano = line("soprano", programs["vocals"])
    lower = [line("alto", programs["upper"]), line("tenor", programs["upper"]), line("bass", programs["bass"])]
    vibrato = Vibrato(rate_hz=_uniform(rng, settings["vibrato_rate_hz"]),
                      depth_semitones=_uniform(rng, settings["vibrato_depth_semitones"]),
                      expression_depth=settings["expression_depth"])
    total = max(rendered_length([soprano]), rendered_length(lower))
    starts = clip_offsets(total)
    if 0 < clips_per_render < len(starts):
        starts = sorted(starts[i] for i in rng.choice(len(starts), clips_per_render, replace=False))
    length = starts[-1] + CLIP_SAMPLES if starts else total  # render only as far as the last window kept
    vocals = render_lines([soprano], vibrato, length=length)
    accompaniment = render_lines(lower, length=length)
    vocals = np.pad(vocals, (0, length - len(vocals)))
    accompaniment = np.pad(accompaniment, (0, length - len(accompaniment)))

    ratio_db = _uniform(rng, settings["vocals_over_accompaniment_db"])
    vocals = vocals * (_rms(accompaniment) / _rms(vocals) * 10 ** (ratio_db / 20))
    bleed_db = _uniform(rng, style["bleed_db"]) if style["bleed_db"] else None
    if bleed_db is not None:
        vocals = vocals + 10 ** (bleed_db / 20) * accompaniment
    scale = settings["mix_peak"] / max(float(np.abs(vocals + accompaniment).max()), 1e-9)
    vocals = (vocals * scale).astype(np.float32)
    accompaniment = (accompaniment * scale).astype(np.float32)
    chosen = set(starts)
    windows = [window for window in select_windows(vocals, accompaniment, "peak-both")
               if window.start in chosen]
    extra = {"source": chorale.source, "transposition": transposition, "tempo_bpm": round(bpm, 2),
             "programs": programs, "style": style_name, "vocals_variant": "bleed" if bleed_db is not None else "clean",
             "bleed_db": None if bleed_db is None else round(bleed_db, 2),
             "vibrato": {"rate_hz": round(vibrato.rate_hz, 3), "depth_semitones": round(vibrato.depth_semitones, 3)}}
    return Rendering(chorale.song, split, transposition, vocals, accompaniment, tuple(windows), extra)


def song_transpositions(song: str, count: int, seed: int) -> list[int]:
    """``count`` distinct semitone shifts for ``song`` (all 12, in order, when ``count >= 12``)."""
    if count >= len(TRANSPOSITIONS):
        return list(TRANSPOSITIONS)
    rng = np.random.default_rng([seed, zlib.crc32(song.encode())])
    return sorted(int(t) for t in rng.choice(TRANSPOSITIONS, count, replace=False))


def _render_song(job: tuple[Song, str, int, int, int]) -> list[Rendering] | str:
    """Worker: all transpositions of one song, or the reason it was skipped."""
    song, split, transpositions, clips_per_render, seed = job
    try:
        chorale = read_chorale(song)
    except DatasetError as error:
        return str(error)
    return [render_chorale(chorale, split, shift, seed, clips_per_render)
            for shift in song_transpositions(song.id, transpositions, seed)]


def _clip_id(rendering: Rendering, window: Window) -> str:
    return f"{rendering.song}_tr{rendering.transposition:+d}_{window.start // CLIP_SAMPLES:02d}"


def _remove_stale_clips(root: Path, records: list[dict[str, Any]]) -> None:
    keep = {Path(record[role]).name for record in records for role in ("vocals", "accompaniment")}
    for path in (root / CLIPS_DIR).glob("*.wav"):
        if path.name not in keep:
            path.unlink()


def _next_jobs(splits: dict[str, list[Song]], sizes: dict[str, Any], counts: dict[str, int],
               cursor: dict[str, int], seed: int) -> list[tuple[Song, str, int, int, int]]:
    """The next songs of each split that still has clip budget: as many as should fill it (all when unbounded)."""
    per_song = sizes["transpositions"] * (sizes["clips_per_render"] or math.inf)
    jobs = []
    for split in SPLITS:
        remaining = sizes["max_clips"].get(split, math.inf) - counts[split]
        if remaining <= 0:
            continue
        take = len(splits[split]) if math.isinf(remaining) else max(1, math.ceil(remaining / per_song))
        batch = splits[split][cursor[split]:cursor[split] + take]
        cursor[split] += len(batch)
        jobs.extend((song, split, sizes["transpositions"], sizes["clips_per_render"], seed) for song in batch)
    return jobs


def build(out_dir: str | Path, preset: str = "tiny", seed: int = 0, workers: int | None = None) -> Path:
    """Render the chorale clip set named by ``preset`` (``tiny`` | ``small`` | ``full`` | ``smoke``) into ``out_dir``.

    Songs are taken in seeded order, split by split, until each split's clip budget is met (all songs for
    ``full``). Rendering runs in ``workers`` processes (default: up to 2). Returns the manifest path.
    """
    root = Path(out_dir)
    sizes = preset_table("chorales", preset)
    splits = assign_splits(list_songs(), sizes["split_fractions"], seed)
    workers = workers or min(2, multiprocessing.cpu_count())
    records: list[dict[str, Any]] = []
    counts = dict.fromkeys(SPLITS, 0)
    cursor = dict.fromkeys(SPLITS, 0)
    # fork: workers inherit the imports (spawn would re-import torch via sag_bench.audio in each); they run no torch
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        while jobs := _next_jobs(splits, sizes, counts, cursor, seed):
            results = pool.imap(_render_song, jobs) if pool else map(_render_song, jobs)
            progress = tqdm(zip(jobs, results, strict=True), total=len(jobs), desc=f"chorales/{preset}", unit="song")
            for job, result in progress:
                if isinstance(result, str):
                    log.warning("skipped %s: %s", job[0].id, result)
                    continue
                for rendering in result:
                    for window in rendering.windows:
                        if counts[rendering.split] >= sizes["max_clips"].get(rendering.split, math.inf):
                            break
                        records.append(write_clip(root, _clip_id(rendering, window), rendering.song,
                                                  rendering.split, window, rendering.vocals,
                                                  rendering.accompaniment, **rendering.extra))
                        counts[rendering.split] += 1
    finally:
        if pool is not None:
            pool.terminate()
    if not records:
        raise DatasetError(f"{root}: no chorale clips were rendered")
    _remove_stale_clips(root, records)
    options = {"preset": preset, "seed": seed, "sample_rate": SAMPLE_RATE, "counts": counts,
               "rendering": dataset_config("chorales")["rendering"]}
    return write_manifest(root, "chorales", records, options)
