"""The study description ``STUDY_DIR/study.json``: what the builder writes, and what the server and analysis read.

Layout of a study folder::

    study.json        this description (systems, clips, items, gold items, scale, loudness, screening rules)
    secret.key        random key for completion codes and the export endpoint (never served)
    audio/<name>      loudness-matched mixes with opaque names (the name does not reveal the system)
    ratings.sqlite    the answers (written by the server)
    ratings.sqlite.tokens-issued   written before the first session is handed out: a later start on a missing or
                      empty database is refused (``listen serve --allow-empty-database`` overrides)

Each rater gets ``per_rater`` clips, every system on each of them (a within-rater design, so systems can be
compared pairwise), plus every gold item, in an order of their own. Gold items and the volume example are made
from ``gold_clips``, clips that no system is rated on.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sag_bench.store import atomic_write_text, read_json

STUDY_FORMAT = "sag-bench-study/1"
STUDY_FILE = "study.json"
SECRET_FILE = "secret.key"
DATABASE_FILE = "ratings.sqlite"
AUDIO_DIR = "audio"
# Gold items are never among the first trials, so a rater has heard a few ordinary items first.
GOLD_EARLIEST_POSITION = 2


class StudyError(ValueError):
    """A study folder that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Item:
    """One rated stimulus: a test item (system x clip) or a gold item with its expected score range."""

    id: str
    kind: str  # "test", "anchor", "reference" or "trap"
    clip: str
    audio: str
    system: str | None = None
    expected: tuple[int, int] | None = None
    prompt: str | None = None

    @property
    def is_gold(self) -> bool:
        """True for anchor, reference and trap items (excluded from the MOS, used for screening)."""
        return self.kind != "test"

    def public(self) -> dict[str, Any]:
        """What a rater's browser may see: no system name, no expected answer."""
        return {"id": self.id, "audio": self.audio, "prompt": self.prompt}


@dataclass
class Study:
    """A built study folder, read from its ``study.json``."""

    root: Path
    spec: dict[str, Any]
    items: dict[str, Item]

    @classmethod
    def open(cls, root: str | Path) -> "Study":
        """Read and check ``root/study.json``; raises :class:`StudyError` with a one-line reason."""
        root = Path(root)
        path = root / STUDY_FILE
        if not path.is_file():
            raise StudyError(f"{path}: no study here (build one with `sag-bench listen build RUN_DIR --out DIR`)")
        try:
            spec = read_json(path)
        except ValueError as error:
            raise StudyError(f"{path}: not valid JSON ({error})") from None
        if spec.get("format") != STUDY_FORMAT:
            raise StudyError(f"{path}: unknown study format {spec.get('format')!r} (expected {STUDY_FORMAT})")
        items = {}
        for raw in spec["items"]:
            expected = tuple(raw["expected"]) if raw.get("expected") else None
            items[raw["id"]] = Item(id=raw["id"], kind=raw["kind"], clip=raw["clip"], audio=raw["audio"],
                                    system=raw.get("system"), expected=expected, prompt=raw.get("prompt"))
        for item in items.values():
            if not (root / item.audio).is_file():
                raise StudyError(f"{root / item.audio}: audio of item {item.id} is missing")
        return cls(root=root, spec=spec, items=items)

    @property
    def systems(self) -> list[str]:
        """Systems in the study, in study order."""
        return list(self.spec["systems"])

    @property
    def clips(self) -> list[str]:
        """Clip ids in the study."""
        return list(self.spec["clips"])

    @property
    def per_rater(self) -> int:
        """Clips each rater hears (each with every system)."""
        return int(self.spec["per_rater"])

    @property
    def seed(self) -> int:
        """Seed of clip choice and orders."""
        return int(self.spec["seed"])

    @property
    def database(self) -> Path:
        """Where the server keeps the ratings."""
        return self.root / DATABASE_FILE

    def __post_init__(self) -> None:
        self.pairs: dict[tuple[str, str], Item] = {(i.system, i.clip): i for i in self.items.values()
                                                   if i.kind == "test"}

    def gold_items(self) -> list[Item]:
        """Every gold item (anchors, references, traps) in study order."""
        return [item for item in self.items.values() if item.is_gold]

    def assignment(self, rater_index: int) -> list[str]:
        """Item ids for the ``rater_index``-th rater (0-based), in their presentation order.

        Clips go round-robin through a seeded permutation, so every clip gets the same number of raters (give or
        take one) however many raters come; each clip is heard with every system; gold items are placed at
        random positions after :data:`GOLD_EARLIEST_POSITION`. Deterministic in (study seed, rater index).
        """
        clips = self.clips
        order = np.random.default_rng([self.seed, 0]).permutation(len(clips))
        start = rater_index * self.per_rater
        chosen = [clips[order[(start + j) % len(clips)]] for j in range(min(self.per_rater, len(clips)))]
        tests = [self.pairs[(system, clip)].id for clip in chosen for system in self.systems]
        rng = np.random.default_rng([self.seed, 1, rater_index])
        sequence = [tests[k] for k in rng.permutation(len(tests))]
        for gold in self.gold_items():
            position = int(rng.integers(min(GOLD_EARLIEST_POSITION, len(sequence)), len(sequence) + 1))
            sequence.insert(position, gold.id)
        return sequence

    def public(self) -> dict[str, Any]:
        """The study as a rater's browser sees it (no systems, no expected answers)."""
        keys = ("title", "question", "hint", "instructions", "consent", "scale", "calibration_audio",
                "completion_url")
        info = {key: self.spec[key] for key in keys}
        info["estimated_minutes"] = self.spec.get("estimated_minutes")
        info["headphone_check"] = [{"audio": t["audio"]} for t in self.spec["headphone_check"]["trials"]]
        info["study_id"] = self.spec["study_id"]
        return info


def read_secret(root: str | Path) -> bytes:
    """The study's secret key (created by the builder); raises :class:`StudyError` when absent."""
    path = Path(root) / SECRET_FILE
    if not path.is_file():
        raise StudyError(f"{path}: missing secret key (rebuild the study)")
    return bytes.fromhex(path.read_text().strip())


def write_secret(root: str | Path) -> bytes:
    """Create the study's secret key if absent and return it."""
    path = Path(root) / SECRET_FILE
    if not path.is_file():
        atomic_write_text(path, secrets.token_hex(32) + "\n")
        path.chmod(0o600)
    return read_secret(root)
