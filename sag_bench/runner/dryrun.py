"""``sag-bench run SPEC --dry-run``: what a spec would run and which weights and data it needs, checked; and, per
system, how it would be measured (reference path, levels, clip filter, sampler network calls).

Each missing weight is printed once, naming every row that needs it (the list of :func:`sag_bench.commands.weights.
spec_needs`), with the command that fetches it; nothing is loaded or downloaded.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from sag_bench import registry
from sag_bench.datasets.clips import FILTERS
from sag_bench.datasets.manifest import DATASET_MANIFEST, ClipDataset
from sag_bench.evaluation.degradation import describe_role, role_for
from sag_bench.runner.run import OFFLINE_BUILDERS
from sag_bench.runner.spec import Spec, SystemSpec


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


def clip_filter(spec: Spec) -> str:
    """The clip filter of the spec's data: ``[data] build.protocol``, else its builder's default protocol."""
    name = spec.data.build.get("protocol")
    if name is None:
        parameter = inspect.signature(registry.entry("datasets", spec.data.name).resolve()).parameters.get("protocol")
        name = parameter.default if parameter is not None else None
    if name is None:
        return f"the {spec.data.name} builder's own"
    return f"{name} ({FILTERS[name].rule})" if name in FILTERS else str(name)


def network_calls(system: SystemSpec) -> str:
    """Sampler network calls per clip of a system that reports them (its checkpoint's settings when the checkpoint
    exists, else its ``paper`` preset with the spec's options); ``-`` for systems without a count."""
    cls = registry.entry("systems", system.name).resolve()
    if not callable(getattr(cls, "network_calls", None)):
        return "-"
    path = system.checkpoint_path()
    try:
        built = registry.build("systems", system.name, checkpoint=path, **system.options) \
            if path is not None and path.exists() else \
            registry.build("systems", system.name, preset="paper", **system.options)
        source = "checkpoint" if path is not None and path.exists() else "paper preset"
        return f"{built.network_calls()} per model window ({source})"
    except Exception as error:  # a listing line, never a crash: say why the count is unknown
        return f"unknown ({type(error).__name__}: {error})"


def measurement(spec: Spec, system: SystemSpec) -> Check:
    """How one system would be measured: reference path, levels and gains, clip filter, network calls."""
    role = role_for(spec.protocol.degrade, system.name)
    return Check(f"protocol {system.key}", True,
                 f"reference path {role}: {describe_role(role)}; levels {spec.protocol.levels}, generated mix = "
                 f"vocals + {spec.protocol.gain} x accompaniment, reference mix no gain; clip filter "
                 f"{clip_filter(spec)}; network calls {network_calls(system)}")


def plan(spec: Spec) -> list[Check]:
    """Every prerequisite of a spec, checked without generating anything, and how each system is measured."""
    checks = [_data_check(spec)]
    for system in spec.systems:
        path = system.checkpoint_path()
        if path is None:
            checks.append(Check(f"system {system.key}", True, f"{system.name}, no checkpoint needed"))
        else:
            checks.append(Check(f"system {system.key}", path.exists(),
                                f"{system.name}, checkpoint {path}" + ("" if path.exists() else " not found")))
        checks.append(measurement(spec, system))
    return checks + _weight_checks(spec)
