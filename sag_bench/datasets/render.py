"""Render monophonic note lines to audio through tinysoundfont with the General MIDI SoundFont of pretty-midi.

Each line plays on its own MIDI channel. An optional :class:`Vibrato` adds what a singer does and a keyboard
does not: a delayed periodic pitch bend and a swell of expression over each note.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from sag_bench.audio import SAMPLE_RATE

CONTROL_SECONDS = 0.01  # vibrato and expression are updated every 10 ms
RELEASE_SECONDS = 1.0  # rendered after the last note-off so that releases decay
PITCH_BEND_CENTRE = 8192  # MIDI 1.0: 14-bit pitch wheel, 8192 = no bend
PITCH_BEND_RANGE = 2.0  # semitones, the General MIDI default
EXPRESSION_CC = 11  # MIDI 1.0 controller number of "expression"


@dataclass(frozen=True)
class Note:
    """A note in seconds with a MIDI pitch and velocity."""

    start: float
    end: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Line:
    """A monophonic line played with one General MIDI program (0-127)."""

    program: int
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class Vibrato:
    """Singer-like modulation: sinusoidal pitch bend after ``delay`` seconds, ramped in over ``ramp`` seconds,
    and an expression swell (``expression_depth`` in 0..1) rising and falling over each note."""

    rate_hz: float
    depth_semitones: float
    delay: float = 0.2
    ramp: float = 0.3
    expression_depth: float = 0.25


def soundfont_path() -> Path:
    """``TimGM6mb.sf2`` as shipped inside the pretty-midi wheel."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("pretty_midi is not installed; it ships the TimGM6mb.sf2 SoundFont "
                                "(pip install pretty-midi)")
    path = Path(spec.origin).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SoundFont missing from the pretty-midi installation")
    return path


@lru_cache(maxsize=1)
def _soundfont_bytes() -> bytes:
    return soundfont_path().read_bytes()


def _events(lines: Sequence[Line], sample_rate: int) -> list[tuple[int, int, int, int, int]]:
    """(sample, order, channel, pitch, velocity) with note-offs (order 0) before note-ons (order 1) at one time."""
    events = []
    for channel, line in enumerate(lines):
        for note in line.notes:
            start, end = round(note.start * sample_rate), round(note.end * sample_rate)
            events.append((start, 1, channel, note.pitch, note.velocity))
            events.append((max(end, start + 1), 0, channel, note.pitch, 0))
    return sorted(events)


def _modulation(vibrato: Vibrato, note: Note | None, seconds: float) -> tuple[int, int]:
    """Pitch-bend value and expression (0-127) for the note sounding at ``seconds``."""
    if note is None:
        return PITCH_BEND_CENTRE, 127
    elapsed = seconds - note.start
    ramp = min(max((elapsed - vibrato.delay) / vibrato.ramp, 0.0), 1.0)
    semitones = ramp * vibrato.depth_semitones * math.sin(2.0 * math.pi * vibrato.rate_hz * elapsed)
    bend = PITCH_BEND_CENTRE + round(semitones / PITCH_BEND_RANGE * (PITCH_BEND_CENTRE - 1))
    progress = min(max(elapsed / max(note.end - note.start, 1e-3), 0.0), 1.0)
    swell = 1.0 - vibrato.expression_depth * (1.0 - math.sin(math.pi * progress))
    return bend, round(127 * swell)


def rendered_length(lines: Sequence[Line], sample_rate: int = SAMPLE_RATE) -> int:
    """Samples :func:`render_lines` produces for ``lines``: up to the last note-off plus one release."""
    events = _events(lines, sample_rate)
    return (events[-1][0] if events else 0) + round(RELEASE_SECONDS * sample_rate)


def render_lines(lines: Sequence[Line], vibrato: Vibrato | None = None, sample_rate: int = SAMPLE_RATE,
                 length: int | None = None) -> np.ndarray:
    """Render ``lines`` (one channel each, at most 16) to mono float32 audio.

    The audio ends one release after the last note-off, or after ``length`` samples when that is shorter
    (rendering stops there, so a prefix costs only its own duration).
    """
    import tinysoundfont

    if len(lines) > 16:
        raise ValueError(f"at most 16 lines can be rendered at once, got {len(lines)}")
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    font = synth.sfload(_soundfont_bytes())
    for channel, line in enumerate(lines):
        synth.program_select(channel, font, 0, line.program)
    events = _events(lines, sample_rate)
    total = rendered_length(lines, sample_rate)
    if length is not None:
        total = min(total, length)
        events = [event for event in events if event[0] < total]
    hop = round(CONTROL_SECONDS * sample_rate)
    controls = set(range(0, total, hop)) if vibrato is not None else set()
    sounding: dict[int, Note] = {}
    by_start = {(channel, round(note.start * sample_rate), note.pitch): note
                for channel, line in enumerate(lines) for note in line.notes}
    chunks, cursor, index = [], 0, 0
    for position in sorted(controls | {sample for sample, *_ in events} | {total}):
        if position > cursor:
            chunks.append(np.frombuffer(synth.generate(position - cursor), dtype=np.float32).reshape(-1, 2))
            cursor = position
        while index < len(events) and events[index][0] == position:
            _, is_on, channel, pitch, velocity = events[index]
            if is_on:
                synth.noteon(channel, pitch, velocity)
                sounding[channel] = by_start[(channel, position, pitch)]
            else:
                synth.noteoff(channel, pitch)
                if channel in sounding and sounding[channel].pitch == pitch:
                    sounding.pop(channel)
            index += 1
        if position in controls:
            for channel in range(len(lines)):
                bend, expression = _modulation(vibrato, sounding.get(channel), position / sample_rate)
                synth.pitchbend(channel, bend)
                synth.control_change(channel, EXPRESSION_CC, expression)
    audio = np.concatenate(chunks) if chunks else np.zeros((0, 2), dtype=np.float32)
    return audio.mean(axis=1).astype(np.float32)
