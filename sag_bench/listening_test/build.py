"""Build a self-contained MOS study folder from a run folder (see :mod:`sag_bench.listening_test.study`)."""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sag_bench.audio import MIX_GAIN, SAMPLE_RATE, load_audio
from sag_bench.datasets.manifest import ClipDataset
from sag_bench.evaluation.protocol import eval_mix, reference_mix, through_path
from sag_bench.listening_test import stimuli
from sag_bench.listening_test.loudness import matching_gains
from sag_bench.listening_test.study import (AUDIO_DIR, DATABASE_FILE, STUDY_FILE, STUDY_FORMAT, StudyError,
                                            write_secret)
from sag_bench.runs import REFERENCE, RunStore
from sag_bench.store import write_json

DEFAULT_PRESET = "fastsag_mos.toml"
# Study length: crowd-sourced listening tests keep a session near 15 minutes (longer ones lose attention and raters);
# FastSAG section 4.4 had each rater judge 20 clips x every system, which `--per-rater` can still ask for.
TARGET_MINUTES = 15.0
ANSWER_SECONDS = 5.0      # per rating, after listening once: move the slider, go on
OVERHEAD_SECONDS = 120.0  # consent, instructions, volume setting, headphone check
HEADPHONE_TRIALS = ((0, 1), (2, 0), (1, 2), (0, 2), (1, 0), (2, 1))  # (soft, antiphase) positions
HEADPHONE_TRIALS_USED = 3
# Every audio file gets this modification time, so file dates say nothing about the order they were written in.
AUDIO_MTIME = 946_684_800  # 2000-01-01T00:00:00Z


@dataclass(frozen=True)
class Stimulus:
    """One sound to put into the study before loudness matching."""

    key: str
    audio: np.ndarray


def load_preset(path: str | Path | None = None) -> dict[str, Any]:
    """The study preset (question, scale, gold items, loudness, screening); the packaged FastSAG one by default."""
    if path is None:
        text = resources.files("sag_bench.listening_test").joinpath("presets", DEFAULT_PRESET).read_text()
        source = DEFAULT_PRESET
    else:
        path = Path(path)
        if not path.is_file():
            raise StudyError(f"{path}: no such preset file")
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        preset = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise StudyError(f"{source}: not valid TOML ({error})") from None
    missing = {"title", "question", "hint", "instructions", "consent", "scale", "gold", "loudness", "audio",
               "screening", "server"} - preset.keys()
    if missing:
        raise StudyError(f"{source}: missing keys {sorted(missing)}")
    if sorted(int(k) for k in preset["scale"]) != [1, 2, 3, 4, 5]:
        raise StudyError(f"{source}: [scale] must label exactly the values 1 to 5")
    return preset


def _run_inputs(run_dir: Path, systems: list[str] | None) -> tuple[ClipDataset, list[str], list[str]]:
    store = RunStore(run_dir)
    try:
        manifest = store.read_manifest()
    except (KeyError, TypeError, ValueError) as error:
        raise StudyError(f"{store.manifest_path}: not a run manifest ({error})") from None
    if manifest is None:
        raise StudyError(f"{store.manifest_path}: no run manifest (is {run_dir} a run folder?)")
    data_dir = Path(manifest.data_dir)
    # Relative data_dir: against the run folder first, then the working directory.
    dataset = ClipDataset(run_dir / data_dir if (run_dir / data_dir).is_dir() else data_dir)
    # The runner's reference mix is its own ground-truth mix, never a condition of the study.
    keys = [s.get("label") or s["name"] for s in manifest.spec.get("systems", [])] or sorted(
        {p.name for p in (*store.mixes_dir(REFERENCE).parent.glob("*"), *store.generated_dir(REFERENCE).parent.glob("*"))})
    available = sorted(k for k in keys  # reference-<path>: the runner's per-path reference mixes, no system
                       if not k.startswith(REFERENCE) and (store.mixes_dir(k).is_dir() or store.generated_dir(k).is_dir()))
    if systems and REFERENCE in systems:
        raise StudyError(f"{run_dir}: '{REFERENCE}' is the runner's ground-truth mix, not a system (the human "
                         "accompaniment is the system that produced generated/groundtruth)")
    systems = systems or available
    unknown = [s for s in systems if s not in available]
    if unknown or not systems:
        raise StudyError(f"{run_dir}: no outputs for systems {unknown or systems} (found: {', '.join(available)})")
    complete = [clip for clip in manifest.clips if all(_output_path(store, s, clip) is not None for s in systems)]
    if not complete:
        raise StudyError(f"{run_dir}: no clip has outputs from every system {systems}")
    return dataset, systems, complete


def _output_path(store: RunStore, system: str, clip: str) -> Path | None:
    for path in (store.mix(system, clip), store.generated(system, clip)):
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class RunLevels:
    """The run's recorded mixing rule (``[protocol]`` of its manifest; runs made before ``levels`` existed: raw)."""

    levels: str = "raw"
    gain: float = MIX_GAIN

    @classmethod
    def of(cls, store: RunStore) -> "RunLevels":
        manifest = store.read_manifest()
        protocol = manifest.spec.get("protocol", {}) if manifest is not None else {}
        return cls(protocol.get("levels", "raw"), float(protocol.get("gain", MIX_GAIN)))

    def generated(self, vocals: np.ndarray, accompaniment: np.ndarray) -> np.ndarray:
        """A generated accompaniment mixed as the run's evaluation mixes (clean vocals)."""
        return np.asarray(eval_mix(through_path(vocals, self.levels), accompaniment, self.gain, self.levels))

    def human(self, vocals: np.ndarray, accompaniment: np.ndarray) -> np.ndarray:
        """A human-composed accompaniment mixed as the run's (clean) reference mixes."""
        return np.asarray(reference_mix(through_path(vocals, self.levels), accompaniment, self.levels))


def _system_mix(store: RunStore, system: str, clip: str, vocals: np.ndarray, levels: RunLevels) -> np.ndarray:
    """The run's mix for (system, clip), or - when the run wrote no mix - the generated accompaniment mixed with the
    run's recorded levels and gain."""
    path = _output_path(store, system, clip)
    audio = load_audio(path, SAMPLE_RATE)
    return audio if path == store.mix(system, clip) else levels.generated(vocals, audio)


def _opaque(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:16]


def _spare_clips(dataset: ClipDataset, evaluated: list[str], rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(evaluated clips, spare clips): gold items and the volume example use clips no system is rated on.

    Spare clips are the dataset's clips outside the study; when there are none, one evaluated clip (seeded) is
    held out of the evaluation instead.
    """
    spare = sorted(record.id for record in dataset.records() if record.id not in set(evaluated))
    if spare:
        return evaluated, spare
    if len(evaluated) < 2:
        raise StudyError(f"{dataset.root}: a study needs a clip outside the evaluation for its gold items and "
                         f"volume example, but the dataset has only {len(evaluated)} clip(s)")
    held = int(rng.integers(len(evaluated)))
    return [clip for index, clip in enumerate(evaluated) if index != held], [evaluated[held]]


def _gold_plan(preset: dict[str, Any], clips: list[str], rng: np.random.Generator) -> list[dict[str, Any]]:
    gold = preset["gold"]
    kinds = ["anchor"] * gold["anchors"] + ["reference"] * gold["references"] + ["trap"] * gold["traps"]
    chosen = rng.choice(len(clips), size=len(kinds), replace=len(kinds) > len(clips))
    plan = []
    for number, (kind, index) in enumerate(zip(kinds, chosen)):
        expected = {"anchor": gold["anchor_expected"], "reference": gold["reference_expected"],
                    "trap": [gold["trap_score"], gold["trap_score"]]}[kind]
        plan.append({"key": f"gold/{kind}/{number}", "kind": kind, "clip": clips[int(index)],
                     "expected": list(expected), "prompt": gold["trap_prompt"] if kind == "trap" else None})
    return plan


def _gold_audio(kind: str, vocals: np.ndarray, accompaniment: np.ndarray, levels: RunLevels) -> np.ndarray:
    backing = stimuli.broken_anchor(accompaniment) if kind == "anchor" else accompaniment
    return levels.human(vocals, backing)


def _excerpt(audio: np.ndarray, part: int, parts: int) -> np.ndarray:
    """The audio started ``part/parts`` of the way in (wrapping round): gold items and the volume example that
    share a spare clip still differ in every file."""
    return np.roll(audio, -(part * len(audio) // parts), axis=0)


def session_minutes(ratings: int, gold: int, clip_seconds: float) -> float:
    """Estimated length of one rater's session: every rating and gold item heard once and answered, plus the
    fixed pages (consent, volume, headphone check)."""
    return (OVERHEAD_SECONDS + (ratings + gold) * (clip_seconds + ANSWER_SECONDS)) / 60.0


def clips_per_rater(ratings: int | None, systems: int, gold: int, clip_seconds: float) -> int:
    """Clips per rater (each rated with every system) for ``ratings`` ratings per rater; None: as many as fit in
    :data:`TARGET_MINUTES`. At least one clip."""
    if ratings is None:
        budget = TARGET_MINUTES * 60.0 - OVERHEAD_SECONDS
        ratings = int(budget // (clip_seconds + ANSWER_SECONDS)) - gold
    return max(1, ratings // systems)


def build_study(run_dir: str | Path, out: str | Path, systems: list[str] | None = None, clips: int | None = None,
                per_rater: int | None = None, seed: int = 0, preset_path: str | Path | None = None,
                audio_format: str | None = None, ratings: int | None = None) -> Path:
    """Build a study folder at ``out`` from the run at ``run_dir``; returns the path of ``study.json``.

    ``clips`` limits the study to a seeded random subset of the run's clips (all by default); each rater hears
    ``per_rater`` clips with every system (or as many clips as give ``ratings`` ratings; by default as many as fit
    in about 15 minutes), plus the gold items of the preset; study.json records the estimated session length. Gold items and the volume example
    are made from clips that are not evaluated (see :func:`_spare_clips`), so no gold or example file equals, or
    sounds like, a rated stimulus. All stimuli are loudness-matched (BS.1770), encoded as ``audio_format`` (the
    preset's by default) under opaque names, written in a shuffled order and given one common modification time.
    """
    run_dir, out = Path(run_dir), Path(out)
    if (out / DATABASE_FILE).exists():
        raise StudyError(f"{out}: already holds ratings ({DATABASE_FILE}); build into a new folder")
    preset = load_preset(preset_path)
    fmt = audio_format or preset["audio"]["format"]
    if fmt not in stimuli.FORMATS:
        raise StudyError(f"unknown audio format {fmt!r} (choose from {', '.join(stimuli.FORMATS)})")
    if per_rater is not None and per_rater < 1:
        raise StudyError(f"per_rater must be at least 1 clip (got {per_rater})")
    if ratings is not None and ratings < 1:
        raise StudyError(f"--per-rater must be at least 1 rating (got {ratings})")
    dataset, systems, available = _run_inputs(run_dir, systems)
    levels = RunLevels.of(RunStore(run_dir))  # every item is mixed by the run's own rule
    rng = np.random.default_rng(seed)
    if clips is not None:
        if not 1 <= clips <= len(available):
            raise StudyError(f"--clips must be between 1 and {len(available)} for {run_dir} (got {clips})")
        keep = set(rng.choice(len(available), size=clips, replace=False).tolist())
        available = [clip for index, clip in enumerate(available) if index in keep]
    records = {record.id: record for record in dataset.records()}
    missing = [clip for clip in available if clip not in records]
    if missing:
        raise StudyError(f"{dataset.root}: clips {missing[:3]} of the run are not in the dataset manifest")

    available, spare = _spare_clips(dataset, available, rng)
    gold_plan = _gold_plan(preset, spare, rng)
    stimuli_list: list[Stimulus] = []
    items: list[dict[str, Any]] = []
    for clip in tqdm(available, desc="study: loading mixes", unit="clip"):
        pair = dataset.load(records[clip])
        for system in systems:
            key = f"test/{system}/{clip}"
            stimuli_list.append(Stimulus(key, _system_mix(RunStore(run_dir), system, clip, pair.vocals, levels)))
            items.append({"key": key, "kind": "test", "system": system, "clip": clip})
    for clip in sorted({gold["clip"] for gold in gold_plan}):
        pair = dataset.load(records[clip])
        for number, gold in ((n, g) for n, g in enumerate(gold_plan) if g["clip"] == clip):
            audio = _gold_audio(gold["kind"], pair.vocals, pair.accompaniment, levels)
            stimuli_list.append(Stimulus(gold["key"], _excerpt(audio, number, len(gold_plan) + 1)))
            items.append(gold)
    calibration = dataset.load(records[spare[-1]])
    example = levels.human(calibration.vocals, calibration.accompaniment)
    stimuli_list.append(Stimulus("calibration", _excerpt(example, len(gold_plan), len(gold_plan) + 1)))

    loudness = preset["loudness"]
    gains, common, measured = matching_gains({s.key: s.audio for s in stimuli_list}, SAMPLE_RATE,
                                             loudness["target_lufs"], loudness["peak_limit"])
    secret = write_secret(out)
    audio_dir = out / AUDIO_DIR
    sounds = {s.key: s.audio * gains[s.key] for s in stimuli_list}
    headphone = HEADPHONE_TRIALS[:HEADPHONE_TRIALS_USED]
    for number, (soft, antiphase) in enumerate(headphone):
        sounds[f"headphone/{number}"] = stimuli.headphone_trial(soft, antiphase, SAMPLE_RATE)
    names: dict[str, str] = {}
    order = [list(sounds)[k] for k in rng.permutation(len(sounds))]  # nothing on disk follows system order
    for key in tqdm(order, desc=f"study: encoding {fmt}", unit="file"):
        path = stimuli.write_encoded(audio_dir, _opaque(secret, key), sounds[key], SAMPLE_RATE, fmt,
                                     preset["audio"]["bitrate"])
        os.utime(path, (AUDIO_MTIME, AUDIO_MTIME))
        names[key] = f"{AUDIO_DIR}/{path.name}"
    clip_seconds = len(stimuli_list[0].audio) / SAMPLE_RATE
    per_rater = min(per_rater or clips_per_rater(ratings, len(systems), len(gold_plan), clip_seconds), len(available))
    trials = [{"audio": names[f"headphone/{number}"], "answer": soft + 1}
              for number, (soft, _) in enumerate(headphone)]

    study_items = []
    for item in items:
        entry = {"id": "i" + _opaque(secret, "id/" + item["key"])[:10], "kind": item["kind"], "clip": item["clip"],
                 "audio": names[item["key"]], "system": item.get("system"), "expected": item.get("expected"),
                 "prompt": item.get("prompt"), "source_lufs": round(measured[item["key"]], 2)}
        study_items.append(entry)
    spec = {
        "format": STUDY_FORMAT, "study_id": _opaque(secret, "study"), "source_run": str(run_dir.resolve()),
        "dataset": str(dataset.root.resolve()), "seed": seed, "per_rater": per_rater,
        "estimated_minutes": round(session_minutes(per_rater * len(systems), len(gold_plan), clip_seconds)),
        "systems": systems, "clips": available, "gold_clips": spare, "audio_format": fmt,
        **{key: preset[key] for key in ("title", "question", "hint", "instructions", "consent")},
        "scale": {str(k): preset["scale"][str(k)] for k in range(5, 0, -1)},
        "screening": preset["screening"], "server": preset["server"],
        "loudness": {"method": "ITU-R BS.1770-4 integrated, gated", "target_lufs": loudness["target_lufs"],
                     "matched_lufs": round(common, 2), "peak_limit": loudness["peak_limit"]},
        "calibration_audio": names["calibration"],
        "headphone_check": {"method": "Woods et al. 2017 antiphase", "trials": trials},
        "items": study_items,
        "completion_url": preset.get("completion_url", ""),
    }
    return write_json(out / STUDY_FILE, spec)
