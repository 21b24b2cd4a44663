"""A CI-sized rendered chorale dataset: a few short clips of several test songs, rendered like the builder does."""

from __future__ import annotations

from pathlib import Path

from sag_bench.audio import SAMPLE_RATE, passes_rms_filter
from sag_bench.datasets import chorales
from sag_bench.datasets import clips as clip_config
from sag_bench.datasets.clips import write_clip
from sag_bench.datasets.manifest import DatasetError, write_manifest


def build_chorale_fixture(root: Path, songs: int = 3, clips_per_song: int = 2, seconds: float = 6.0,
                          style_split: str = "test", seed: int = 0, reference_songs: int = 0) -> Path:
    """``songs`` test-split chorales rendered in the style of ``style_split`` (``test``: in-domain instruments and
    bleed; ``zeroshot``: other instruments, clean vocals), the first ``seconds`` of ``clips_per_song`` windows
    each, written as a dataset folder whose clips are in split ``test``; plus ``reference_songs`` train-split
    chorales rendered the same way in split ``train`` (song-disjoint reference pairs for APA)."""
    fractions = clip_config.preset("chorales", "tiny")["split_fractions"]
    assigned = chorales.assign_splits(chorales.list_songs(), fractions, seed=seed)
    records = []
    for split, wanted in (("test", songs), ("train", reference_songs)):
        seen = 0
        for song in assigned[split]:
            if seen == wanted:
                break
            clips = _song_clips(root, song, split, style_split, clips_per_song, seconds, seed)
            records.extend(clips)
            seen += bool(clips)
    write_manifest(root, "chorales-fixture", records, {"style": style_split, "seconds": seconds, "seed": seed})
    return root


def _song_clips(root: Path, song: chorales.Song, split: str, style_split: str, clips_per_song: int, seconds: float,
                seed: int) -> list:
    """The first ``clips_per_song`` audible ``seconds``-long windows of one song written as clips of ``split``
    (none when the song cannot be rendered or has too few audible windows)."""
    try:
        rendering = chorales.render_chorale(chorales.read_chorale(song), style_split, 0, seed=seed, clips_per_render=0)
    except DatasetError:
        return []
    length = int(seconds * SAMPLE_RATE)
    audible = [w for w in rendering.windows  # the excerpt itself must pass the papers' RMS filter
               if all(passes_rms_filter(stem[w.start:w.start + length])
                      for stem in (rendering.vocals, rendering.accompaniment))]
    if len(audible) < clips_per_song:
        return []
    return [write_clip(root, f"{song.id}_{index}", song.id, split, window, rendering.vocals, rendering.accompaniment,
                       clip_samples=length, **rendering.extra) for index, window in enumerate(audible[:clips_per_song])]
