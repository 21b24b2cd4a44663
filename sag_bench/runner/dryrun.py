"""``sag-bench run SPEC --dry-run``: what a spec would run and which weights and data it needs, checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sag_bench import registry
from sag_bench.backbones.base import WeightsMissingError
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
    return Check(what, False, f"{data_dir} has no {DATASET_MANIFEST}; run `sag-bench data build {spec.data.name} "
                              f"--out {data_dir}`")


def _loads(what: str, build) -> Check:
    try:
        build()
    except WeightsMissingError as error:
        return Check(what, False, str(error))
    return Check(what, True, "weights available")


def plan(spec: Spec) -> list[Check]:
    """Every prerequisite of a spec, checked without generating anything."""
    from sag_bench.evaluation.embedders import load_embedder

    checks = [_data_check(spec)]
    for system in spec.systems:
        path = system.checkpoint_path()
        if path is None:
            checks.append(Check(f"system {system.key}", True, f"{system.name}, no checkpoint needed"))
        else:
            checks.append(Check(f"system {system.key}", path.exists(),
                                f"{system.name}, checkpoint {path}" + ("" if path.exists() else " not found")))
        checks += [_loads(f"backbone {name} (for {system.key})", lambda n=name: registry.build("backbones", n))
                   for name in system.backbones]
    if spec.protocol.degrade != "none":
        checks.append(_loads(f"backbone {spec.protocol.degrade} (degraded reference)",
                             lambda: registry.build("backbones", spec.protocol.degrade)))
    checks += [_loads(f"embedder {name}", lambda n=name: load_embedder(n, device=spec.device))
               for name in spec.evaluation.embedders]
    return checks
