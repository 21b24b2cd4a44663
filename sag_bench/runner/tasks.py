"""How a run's work is scheduled: generation, embedding and RTF as executor tasks (:mod:`sag_bench.executors`).

What the work computes lives in :mod:`.generation` and :mod:`.scoring`; this module only cuts it into tasks and
collects their results in the driver:

* generation: one task per system x clip batch (the spec's fixed batches); each worker process loads a system once
  (an ``lru_cache``, tasks are submitted system by system) and writes ``generated/<system>/<clip>.wav`` atomically;
  the driver leaves out batches whose files all exist, so a rerun redoes nothing finished;
* FAD embedding: one task per embedder x batch of mix files, through the content-hash embedding cache; the FAD
  statistics are then computed in the driver from the cache;
* RTF: one task that times every system one after another on one worker, after generation, while nothing else
  runs, so that timings stay comparable between systems whatever the executor.

The executor is recorded in the run manifest; it never changes outputs (tasks are seeded by what they compute,
never by where or in which order they run).
"""

from __future__ import annotations

import json
import math
import sys
import traceback
from collections import Counter
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sag_bench.audio import save_audio
from sag_bench.datasets.manifest import ClipDataset, ClipRecord
from sag_bench.errors import SpecError
from sag_bench.executors import Executor, Resources, Task, create
from sag_bench.runner import scoring
from sag_bench.runner.generation import batches, build_system, generate_batch
from sag_bench.runner.spec import Spec, SystemSpec
from sag_bench.runs import RunStore
from sag_bench.systems.base import System

# Mix files per embedding task: large enough to amortise a task's overhead, small enough to spread over workers.
EMBED_FILES_PER_TASK = 32
EXECUTOR_KEYS = ("name", "address", "workers")


def executor_for(spec: Spec, name: str | None = None, address: str | None = None,
                 workers: int | None = None) -> Executor:
    """The executor of a run: the command line's when ``name`` is given, else the spec's ``executor`` table."""
    if name is not None:
        return create(name, address=address, workers=workers)
    unknown = sorted(set(spec.executor) - set(EXECUTOR_KEYS))
    if unknown:
        raise SpecError(f"{spec.source}: unknown key(s) {', '.join(unknown)} in executor (known: "
                        f"{', '.join(EXECUTOR_KEYS)})")
    return create(spec.executor.get("name", "inprocess"), address=spec.executor.get("address"),
                  workers=spec.executor.get("workers"))


@lru_cache(maxsize=1)
def _loaded_system(system_json: str, data_dir: str, device: str, seed: int) -> System:
    torch.manual_seed(seed)  # whatever a system draws while loading does not depend on which process loads it
    return build_system(SystemSpec(**json.loads(system_json)), Path(data_dir), device)


def loaded_system(system_spec: SystemSpec, data_dir: Path, device: str, seed: int) -> System:
    """``system_spec`` built and loaded, once per process (the last one is kept; tasks come system by system)."""
    return _loaded_system(json.dumps(asdict(system_spec), sort_keys=True), str(data_dir), device, seed)


def generate_clips(system_spec: SystemSpec, dataset: ClipDataset, batch: list[ClipRecord], seed: int, device: str,
                   store: RunStore) -> dict[str, Any]:
    """Task: generate one batch of one system and write the clips not yet written; returns the system's description,
    or the error (a failing system is reported, it does not stop the other systems' tasks)."""
    try:
        system = loaded_system(system_spec, dataset.root, device, seed)
        output = generate_batch(system, dataset, batch, seed)
        for record, audio in zip(batch, output):
            path = store.generated(system_spec.key, record.id)
            if not path.is_file():
                save_audio(path, audio, dataset.sample_rate)
        return {"system": system.describe()}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(limit=5)}


def generation_tasks(spec: Spec, store: RunStore, dataset: ClipDataset, records: list[ClipRecord]) -> list[Task]:
    """One task per system x batch whose clips are not all generated yet, system by system."""
    resources = Resources.for_device(spec.device)
    return [Task(f"generate/{system.key}/{batch[0].id}", generate_clips,
                 (system, dataset, batch, spec.seed, spec.device, store), resources)
            for system in spec.systems for batch in batches(records, spec.batch_size)
            if not all(store.generated(system.key, record.id).is_file() for record in batch)]


def run_generation(executor: Executor, spec: Spec, store: RunStore, dataset: ClipDataset,
                   records: list[ClipRecord]) -> None:
    """Generate every missing clip of every system; each system's state (done / failed) goes to its status file."""
    tasks = generation_tasks(spec, store, dataset, records)
    left = Counter(task.args[0].key for task in tasks)
    for system in spec.systems:
        store.write_status(system.key, state="running" if left[system.key] else "done", clips=len(records))
    failed: set[str] = set()
    for task, result in tqdm(executor.map(tasks), total=len(tasks), desc="generate", unit="batch"):
        key = task.args[0].key
        left[key] -= 1
        if key in failed:
            continue
        if "error" in result:
            failed.add(key)
            store.write_status(key, state="failed", error=result["error"], traceback=result["traceback"])
            tqdm.write(f"sag-bench: {key} failed: {result['error']}", file=sys.stderr)
            continue
        store.write_status(key, system=result["system"], **({"state": "done"} if left[key] == 0 else {}))


def measure_rtf(systems: list[SystemSpec], clips: scoring.Clips, spec: Spec) -> None:
    """Task: the real-time factor of each system in turn, on this one worker; a failure is noted in its status."""
    for system_spec in systems:
        try:
            system = loaded_system(system_spec, clips.dataset.root, spec.device, spec.seed)
            scoring.measure_system_rtf(clips, system_spec.key, system, spec.rtf, spec.seed, spec.device)
        except Exception as error:  # an RTF failure is reported, the audio is kept
            clips.store.write_status(system_spec.key, rtf_error=f"{type(error).__name__}: {error}")


def run_rtf(executor: Executor, spec: Spec, clips: scoring.Clips, done: list[str]) -> None:
    """Time the finished systems that have no RTF yet, all in one task (one worker, nothing else running)."""
    from sag_bench.evaluation.rtf import END_TO_END, MODEL_ONLY

    systems = [system for system in spec.systems if system.key in done and not all(
        clips.store.rtf_path(system.key, scope).is_file() for scope in (END_TO_END, MODEL_ONLY))]
    if spec.rtf.clips > 0 and systems:
        list(executor.map([Task("rtf", measure_rtf, (systems, clips, spec), Resources.for_device(spec.device))]))


@lru_cache(maxsize=1)
def _loaded_embedder(name: str, device: str) -> Any:
    from sag_bench.evaluation.embedders import load_embedder

    return load_embedder(name, device=device)


def embed_mixes(embedder: str, device: str, cache_dir: Path, files: list[Path], batch_size: int) -> int:
    """Task: embed ``files`` with ``embedder`` (loaded once per process) into the content-hash cache."""
    from sag_bench.evaluation.fad import embed_files

    embed_files(files, _loaded_embedder(embedder, device), cache_dir, batch_size, device)
    return len(files)


def embedding_tasks(spec: Spec, clips: scoring.Clips, keys: list[str]) -> list[Task]:
    """Per embedder, tasks of at most ``EMBED_FILES_PER_TASK`` mix files that a missing FAD score needs."""
    store, resources, tasks = clips.store, Resources.for_device(spec.device), []
    for embedder in spec.evaluation.embedders:
        unscored = [key for key in keys if not store.fad_path(embedder, key).is_file()]
        if not unscored:
            continue
        files = list(dict.fromkeys(path for key in unscored for record in clips.records
                                   for path in (store.reference_mix(key, record.id), store.mix(key, record.id))))
        tasks += [Task(f"embed/{embedder}/{start}", embed_mixes,
                       (embedder, spec.device, store.cache_dir, files[start : start + EMBED_FILES_PER_TASK],
                        spec.evaluation.batch_size), resources)
                  for start in range(0, len(files), EMBED_FILES_PER_TASK)]
    return tasks


def run_embedding(executor: Executor, spec: Spec, clips: scoring.Clips, keys: list[str]) -> None:
    """Fill the embedding cache for every FAD score still missing; the scores themselves are the driver's."""
    tasks = embedding_tasks(spec, clips, keys)
    for _ in tqdm(executor.map(tasks), total=len(tasks), desc="embed", unit="task", disable=not tasks):
        pass


def describe_tasks(spec: Spec, clip_count: int | None) -> list[str]:
    """What a run of ``spec`` schedules, one line per kind of task with the resources each task needs
    (``clip_count`` None: the data is not built yet, so only the batch sizes are known)."""
    resources = Resources.for_device(spec.device)
    need = f"num_cpus={resources.cpus:g} num_gpus={resources.gpus:g}"

    def count(items: int | None, per_task: int) -> str:
        return "?" if items is None else str(math.ceil(items / per_task))

    lines = [f"task generate/{system.key}: {count(clip_count, spec.batch_size)} task(s) of "
             f"<= {spec.batch_size} clips, each {need}" for system in spec.systems]
    if spec.rtf.clips > 0:
        lines.append(f"task rtf: 1 task timing {len(spec.systems)} systems one after another on one worker, {need}")
    files = None if clip_count is None else clip_count * 2 * len(spec.systems)  # at most: mixes + their references
    lines += [f"task embed/{embedder}: {count(files, EMBED_FILES_PER_TASK)} task(s) of <= {EMBED_FILES_PER_TASK} "
              f"mix files, each {need}" for embedder in spec.evaluation.embedders]
    return lines
