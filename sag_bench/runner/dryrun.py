"""``sag-bench run SPEC --dry-run``: what a spec would run and which weights and data it needs, checked.

Each missing weight is printed once, naming every row that needs it (the list of :func:`sag_bench.commands.weights.
spec_needs`), with the command that fetches it; nothing is loaded or downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sag_bench.datasets.manifest import DATASET_MANIFEST, ClipDataset
from sag_bench.runner.run import OFFLINE_BUILDERS
from sag_bench.runner.spec import Spec


@dataclass
class Check:
    """One line of a plan: what, whether it is ready, and what to do if not."""

    what: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"[{'ok' if self.ok else 'MISSING'}] {self.what}: {self.detail}"


def _data_check(spec: Spec) -> Check:
    data_dir = Path(spec.data.dir)
    what = f"data {spec.data.name} ({spec.data.split} split)"
    if (data_dir / DATASET_MANIFEST).is_file():
        count = len(ClipDataset(data_dir).records(spec.data.split))
        return Check(what, count > 0, f"{data_dir}: {count} clips" + ("" if count else " - none in this split"))
    if spec.data.name in OFFLINE_BUILDERS:
        return Check(what, True, f"{data_dir}: not built yet; will be built offline")
    from sag_bench.commands.weights import data_needs

    return Check(what, False, f"{data_dir} has no {DATASET_MANIFEST}; run `{data_needs(spec)[0].command}`")


def _weight_checks(spec: Spec) -> list[Check]:
    """One check per pretrained weight (backbones, embedders), each once with its users."""
    from sag_bench.commands.weights import checkpoint_need, data_needs, spec_needs

    covered = {need.location for need in data_needs(spec)}
    covered |= {need.location for system in spec.systems if (need := checkpoint_need(system))}
    return [Check(f"{need.what} (for {', '.join(need.users)})", need.present,
                  need.location if need.present else f"not in {need.location}; get: {need.command}")
            for need in spec_needs(spec) if need.location not in covered]


def plan(spec: Spec) -> list[Check]:
    """Every prerequisite of a spec, checked without generating anything."""
    checks = [_data_check(spec)]
    for system in spec.systems:
        path = system.checkpoint_path()
        if path is None:
            checks.append(Check(f"system {system.key}", True, f"{system.name}, no checkpoint needed"))
        else:
            checks.append(Check(f"system {system.key}", path.exists(),
                                f"{system.name}, checkpoint {path}" + ("" if path.exists() else " not found")))
    return checks + _weight_checks(spec)
