"""Mixing stage of a run: each system's evaluation mixes and the reference mixes of its reference path.

Per system (README, "Evaluation protocol"): its reference path comes from ``[protocol] degrade`` (``system``: the
role in its registry entry), the stems are levelled by ``[protocol] levels``; reference mix = path(vocals) +
path(true accompaniment), evaluated mix = path(vocals) + gain x generated. Reference mixes are written once per
distinct path (``mixes/reference-<key>/``, keyed by content); what each system's mixes went through is recorded in
its status (``mixing``) and then in the run manifest. Finished files are never rewritten.
"""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

from sag_bench.audio import load_audio, save_audio
from sag_bench.evaluation.degradation import ReferencePath, resolve, role_for, uses_system
from sag_bench.evaluation.protocol import REFERENCE_GAIN, eval_mix, reference_mix, through_path
from sag_bench.runner.generation import build_system
from sag_bench.runner.scoring import Clips
from sag_bench.runner.spec import ProtocolSpec, SystemSpec
from sag_bench.systems.base import System


def _missing(clips: Clips, key: str | None, path_key: str) -> list:
    store = clips.store
    return [record for record in clips.records
            if not store.reference_mixes_dir(path_key).joinpath(f"{record.id}.wav").is_file()
            or (key is not None and not store.mix(key, record.id).is_file())]


def write_path_mixes(clips: Clips, path: ReferencePath, protocol: ProtocolSpec, key: str | None = None) -> None:
    """The reference mixes through ``path`` and, for system ``key``, its evaluation mixes (only missing files)."""
    store, dataset = clips.store, clips.dataset
    todo = _missing(clips, key, path.key)
    degrade = path if path.backbone is not None else None
    for record in tqdm(todo, desc=f"mixes {key or 'reference'}", unit="clip"):
        pair = dataset.load(record)
        vocals = through_path(pair.vocals, protocol.levels, degrade)
        reference = store.reference_mixes_dir(path.key) / f"{record.id}.wav"
        if not reference.is_file():
            save_audio(reference, reference_mix(vocals, pair.accompaniment, protocol.levels, degrade),
                       dataset.sample_rate)
        if key is not None and not store.mix(key, record.id).is_file():
            generated = load_audio(store.generated(key, record.id), dataset.sample_rate)
            save_audio(store.mix(key, record.id), eval_mix(vocals, generated, protocol.gain, protocol.levels,
                                                           degraded=degrade is not None), dataset.sample_rate)


def mixing_record(path: ReferencePath, protocol: ProtocolSpec) -> dict[str, Any]:
    """What a run records about how one system's mixes were made."""
    return {"reference_path": path.key, "degradation": path.describe(), "levels": protocol.levels,
            "gain": protocol.gain, "reference_gain": REFERENCE_GAIN, "vocals": "through the reference path",
            "generated": f"levelled ({protocol.levels}), x {protocol.gain}, never degraded"}


def write_system_mixes(clips: Clips, system_spec: SystemSpec, system: System | None, protocol: ProtocolSpec,
                       device: str) -> System | None:
    """Mixes of one finished system and of its reference path; builds the system only when its path needs its
    vocoder or codec and something is missing. Returns the system (loaded if it was built here)."""
    store, key = clips.store, system_spec.key
    role = role_for(protocol.degrade, system_spec.name)
    recorded = store.status(key).get("mixing")
    if recorded and recorded["degradation"]["role"] == role and not _missing(clips, key, recorded["reference_path"]):
        return system
    if uses_system(role) and system is None:
        system = build_system(system_spec, clips.dataset.root, device)
    path = resolve(role, system, device)
    write_path_mixes(clips, path, protocol, key)
    store.write_status(key, mixing=mixing_record(path, protocol))
    return system
