"""Generation stage of a run: what one batch of one system computes (scheduled as tasks by :mod:`.tasks`).

Batches are fixed over the full clip list (never over what is left), and every batch gets the run seed with its
clip ids, from which the systems seed each clip (a clip's output does not depend on its batch), so a resumed run,
and any executor, produces exactly the files an uninterrupted in-process run would. Finished files are never
rewritten. A system that fails is recorded in its status file and the run goes on with the others.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sag_bench import registry
from sag_bench.datasets.manifest import ClipDataset, ClipRecord
from sag_bench.runner.spec import SystemSpec
from sag_bench.systems.base import System


def build_system(system_spec: SystemSpec, data_dir: Path, device: str) -> System:
    """Construct, prepare and load one system of a spec."""
    checkpoint = system_spec.checkpoint_path()
    if checkpoint is not None and not checkpoint.exists():
        raise FileNotFoundError(f"checkpoint of {system_spec.key} not found: {checkpoint}")
    system: System = registry.build("systems", system_spec.name, checkpoint=checkpoint, **system_spec.options)
    system.prepare(data_dir)
    system.load(device)
    return system


def batches(records: list[ClipRecord], size: int) -> list[list[ClipRecord]]:
    """Fixed batches over the full clip list."""
    return [records[i : i + size] for i in range(0, len(records), size)]


def generate_batch(system: System, dataset: ClipDataset, batch: list[ClipRecord], seed: int) -> np.ndarray:
    """Run one batch through the system; checks shape and finiteness of what comes back."""
    vocals = torch.from_numpy(np.stack([dataset.load_vocals(record) for record in batch]))
    with torch.inference_mode():
        output = system.generate(vocals, seed=seed, clip_ids=[r.id for r in batch])
    output = output.detach().float().cpu().numpy()
    if output.shape != vocals.shape:
        raise ValueError(f"generate returned shape {output.shape} for vocals of shape {tuple(vocals.shape)}")
    if not np.isfinite(output).all():
        raise ValueError("generate returned NaN or infinite samples")
    return output
