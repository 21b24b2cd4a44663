"""Metric validation: does each measure rank the ground truth above accompaniments no musician would accept?

For every measure (each coherence measure, APA and FAD per embedder) and every perturbation
(:mod:`sag_bench.systems.perturbations`), the table holds the paired difference ground truth minus perturbation
(sign-flipped for FAD, where lower is better, so a positive difference always favours the ground truth), its 95 %
paired-bootstrap CI over clips (seeded), the share of clips where the ground truth wins (per-clip measures only), and
``passes``: the CI lies above 0. A measure that fails for any perturbation is ``flagged``.

Per-clip measures are bootstrapped by resampling clips; set-level ones (FAD, APA) are recomputed on each resample
from per-clip embedding moments, both systems under the same resample (paired).

The set-level measures need reference pairs: APA's matched pairs R and mismatched pairs R', and FAD's reference
mixes, are taken from ``reference_split`` (default ``train``), whose songs are disjoint from the validated split's.
Were R the validated clips themselves, the ground truth would be its own reference (APA 1 and FAD 0 by
construction) and could not be compared honestly with a perturbation that also saturates.

    python -m sag_bench.evaluation.validation --data DIR [--split test] [--spec validation.toml] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

if TYPE_CHECKING:
    from sag_bench.runner.spec import Spec
    from sag_bench.runs import RunStore

GROUND_TRUTH = "groundtruth"
LEVEL = 0.95
SPEC = "validation"  # the built-in runner spec sag_bench/experiments/validation.toml
# A set-level statistic: the value for clip weights w (w[i] = how often clip i is in the resample).
SetStatistic = Callable[[np.ndarray], float]


@dataclass
class Comparison:
    """Ground truth vs one perturbation under one measure (difference > 0 favours the ground truth)."""

    measure: str
    kind: str  # "coherence", "apa" or "fad"
    perturbation: str
    n: int
    truth: float
    perturbed: float
    difference: float
    ci_low: float
    ci_high: float
    truth_wins: float  # share of clips where the ground truth scores better; NaN for set-level measures
    passes: bool


def _bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` counts of each clip in ``n_boot`` seeded resamples with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    return np.stack([np.bincount(row, minlength=n) for row in draws]).astype(np.float64)


def interval(boots: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap values."""
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def compare_clips(measure: str, kind: str, perturbation: str, truth: Sequence[float], perturbed: Sequence[float],
                  seed: int = 0, n_boot: int = 2000, higher_is_better: bool = True) -> Comparison:
    """Paired comparison of per-clip scores (same clips in the same order), percentile bootstrap CI."""
    truth_arr, perturbed_arr = np.asarray(truth, np.float64), np.asarray(perturbed, np.float64)
    if truth_arr.shape != perturbed_arr.shape or truth_arr.ndim != 1 or len(truth_arr) == 0:
        raise ValueError(f"{measure}/{perturbation}: paired scores need equal non-empty lengths, got "
                         f"{truth_arr.shape} and {perturbed_arr.shape}")
    sign = 1.0 if higher_is_better else -1.0
    diff = sign * (truth_arr - perturbed_arr)
    weights = _bootstrap_weights(len(diff), n_boot, seed)
    low, high = interval(weights @ diff / len(diff))
    return Comparison(measure, kind, perturbation, len(diff), float(truth_arr.mean()), float(perturbed_arr.mean()),
                      float(diff.mean()), low, high, float((diff > 0).mean()), bool(low > 0))


@dataclass(frozen=True)
class SetBootstrap:
    """A set-level statistic on all clips and on each seeded resample (same seed, n, n_boot: same resamples)."""

    point: float
    boots: np.ndarray


def set_bootstrap(statistic: SetStatistic, n: int, seed: int = 0, n_boot: int = 200) -> SetBootstrap:
    """Evaluate ``statistic`` on all ``n`` clips and on ``n_boot`` seeded resamples of them."""
    return SetBootstrap(statistic(np.ones(n)), np.array([statistic(w) for w in _bootstrap_weights(n, n_boot, seed)]))


def compare_sets(measure: str, kind: str, perturbation: str, n: int, truth: SetBootstrap, perturbed: SetBootstrap,
                 higher_is_better: bool = True) -> Comparison:
    """Paired comparison of a set-level statistic bootstrapped on the same resamples for both systems."""
    if truth.boots.shape != perturbed.boots.shape:
        raise ValueError(f"{measure}/{perturbation}: the two bootstraps differ in size; use the same seed and n_boot")
    sign = 1.0 if higher_is_better else -1.0
    low, high = interval(sign * (truth.boots - perturbed.boots))
    return Comparison(measure, kind, perturbation, n, truth.point, perturbed.point,
                      sign * (truth.point - perturbed.point), low, high, float("nan"), bool(low > 0))


def flag_failures(table: pd.DataFrame) -> pd.DataFrame:
    """The table with ``flagged`` per row: the row's measure fails (CI not above 0) for some perturbation."""
    failing = set(table.loc[~table["passes"], "measure"])
    return table.assign(flagged=table["measure"].isin(failing))


def validated_measures(table: pd.DataFrame) -> list[str]:
    """Measures that rank the ground truth above every perturbation in ``table`` (the ones to report)."""
    return [m for m in dict.fromkeys(table["measure"]) if m not in set(table.loc[~table["passes"], "measure"])]


VALIDATION_HEADER = ("perturbation", "ground truth", "perturbed", "GT wins")


def to_markdown(table: pd.DataFrame, header: tuple[str, str, str, str] = VALIDATION_HEADER) -> str:
    """The validation table as Markdown: one row per (measure, perturbation), failures marked. ``header`` names
    the other system, the anchor, the other's score and the anchor's win share (when comparing systems instead)."""
    other, anchor, score, wins = header
    lines = [f"| measure | {other} | {anchor} | {score} | difference [95 % CI] | {wins} | passes |",
             "|---|---|---:|---:|---|---:|---|"]
    for row in table.itertuples(index=False):
        wins = "-" if np.isnan(row.truth_wins) else f"{row.truth_wins:.0%}"
        name = f"{row.measure} (FLAGGED)" if row.flagged else row.measure
        lines.append(f"| {name} | {row.perturbation} | {row.truth:.3f} | {row.perturbed:.3f} | "
                     f"{row.difference:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}] | {wins} | "
                     f"{'yes' if row.passes else 'NO'} |")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, out_dir: Path, stem: str = "validation",
                header: tuple[str, str, str, str] = VALIDATION_HEADER) -> list[Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` into ``out_dir``; returns the paths."""
    from sag_bench.store import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.csv", out_dir / f"{stem}.md"]
    atomic_write_text(paths[0], table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths[1], to_markdown(table, header))
    return paths


@dataclass
class ValidationSpec:
    """What a validation run scores: systems (ground truth first), embedders, bootstrap sizes, seed, split."""

    systems: list[tuple[str, dict[str, Any]]]
    embedders: list[str]
    split: str = "test"
    reference_split: str = "train"  # APA's R and R' and FAD's reference: song-disjoint from ``split``
    seed: int = 0
    coherence_boot: int = 2000
    set_boot: int = 200
    measures: list[str] | None = None  # coherence measures (None: all, including the unrepaired originals)


def run_validation(spec: "Spec", store: "RunStore") -> tuple[pd.DataFrame, list[Path]]:
    """``sag-bench run validation``: validate on the spec's dataset and split, write ``validation.csv`` and
    ``validation.md`` into the run's tables folder; returns the table and the written paths."""
    table = validate(spec.data.dir, from_run_spec(spec))
    return table, write_table(table, store.tables_dir)


def from_run_spec(spec: "Spec") -> ValidationSpec:
    """The validation settings of a runner spec (``table = "validation"``): its systems (ground truth first), its
    embedders, split, reference split, seed, bootstrap sizes and coherence measures."""
    systems = [(system.name, dict(system.options)) for system in spec.systems]
    if not systems or systems[0][0] != GROUND_TRUTH:
        raise ValueError(f"{spec.source}: the first [[systems]] must be {GROUND_TRUTH!r}, the others its perturbations")
    evaluation = spec.evaluation
    return ValidationSpec(systems, list(evaluation.embedders), spec.data.split, evaluation.reference_split, spec.seed,
                          evaluation.coherence_bootstrap, evaluation.bootstrap, evaluation.measures)


def load_spec(path: str | Path = SPEC) -> ValidationSpec:
    """Read a validation spec (default: the built-in ``sag_bench/experiments/validation.toml``)."""
    from sag_bench.runner.spec import load_spec as load_run_spec

    return from_run_spec(load_run_spec(path))


def build_system(name: str, options: dict[str, Any]) -> Any:
    """A perturbation from :data:`~sag_bench.systems.perturbations.PERTURBATIONS`, or a registered system."""
    from sag_bench import registry
    from sag_bench.systems.perturbations import PERTURBATIONS

    entries = {entry.name: entry for entry in PERTURBATIONS}
    return entries[name].build(**options) if name in entries else registry.build("systems", name, **options)


def generate_all(spec: ValidationSpec, data_dir: Path, vocals: np.ndarray, clip_ids: list[str],
                 batch_size: int = 4) -> dict[str, np.ndarray]:
    """Every spec system's accompaniments ``[clips, T]`` for the vocals ``[clips, T]``."""
    out = {}
    for name, options in tqdm(spec.systems, desc="perturbations", unit="system"):
        system = build_system(name, options)
        system.prepare(data_dir)
        system.load("cpu")
        batches = [system.generate(torch.from_numpy(vocals[i:i + batch_size]), spec.seed, clip_ids[i:i + batch_size])
                   for i in range(0, len(vocals), batch_size)]
        out[name] = torch.cat(batches).numpy()
    return out


def validate(data_dir: str | Path, spec: ValidationSpec | None = None, split: str | None = None) -> pd.DataFrame:
    """Run ground truth and every perturbation of ``spec`` on ``split`` of the dataset in ``data_dir``, score every
    measure, and return the flagged validation table (see :func:`compare_clips`, :func:`compare_sets`).

    The first system is the anchor every other one is compared with (the ground truth in a metric validation; a
    trained system against a baseline in :mod:`sag_bench.evaluation.learning`); options may name a checkpoint."""
    from sag_bench.datasets.manifest import ClipDataset
    from sag_bench.evaluation.apa import apa_reference, pair_embeddings
    from sag_bench.evaluation.coherence import MEASURES, score_pairs
    from sag_bench.evaluation.embedders import load_embedder
    from sag_bench.evaluation.fad import frechet_distance

    spec = spec or load_spec()
    if split and split != spec.split:  # another song's accompaniment comes from the validated split
        systems = [(name, {k: split if k == "pool_split" and v == spec.split else v for k, v in options.items()})
                   for name, options in spec.systems]
        spec = ValidationSpec(**{**asdict(spec), "systems": systems, "split": split})
    data_dir = Path(data_dir)
    dataset = ClipDataset(data_dir)
    records = dataset.records(spec.split)
    if len({r.song for r in records}) < 2:
        raise ValueError(f"{data_dir}: split {spec.split!r} needs clips of at least two songs")
    references = dataset.records(spec.reference_split) if spec.embedders else []
    if spec.embedders and {r.song for r in references} & {r.song for r in records}:
        raise ValueError(f"{data_dir}: reference split {spec.reference_split!r} shares songs with the validated "
                         f"split {spec.split!r}; APA and FAD need song-disjoint reference pairs")
    pairs = [dataset.load(record) for record in records]
    vocals = np.stack([p.vocals for p in pairs])
    outputs = generate_all(spec, data_dir, vocals, [r.id for r in records])
    rate, names = dataset.sample_rate, [name for name, _ in spec.systems]
    rows: list[Comparison] = []

    anchor = names[0]  # the ground truth in a validation; any system when comparing systems (e.g. to RandSong)
    vocal_cache: dict = {}
    measures = spec.measures or list(MEASURES)
    coherence = {name: score_pairs([(v, a, rate) for v, a in zip(vocals, outputs[name])], measures, vocal_cache)
                 for name in names}
    for measure in measures:
        for name in names[1:]:
            rows.append(compare_clips(measure, "coherence", name, coherence[anchor][measure],
                                      coherence[name][measure], seed=spec.seed, n_boot=spec.coherence_boot))

    reference_pairs = [dataset.load(record) for record in references]
    for embedder_name in spec.embedders:
        embedder = load_embedder(embedder_name)
        reference = apa_reference(embedder, [p.vocals for p in reference_pairs],
                                  [p.accompaniment for p in reference_pairs], [p.song for p in reference_pairs],
                                  rate, seed=spec.seed)
        moments = {name: reference.moments(pair_embeddings(embedder, vocals, outputs[name], rate)) for name in names}
        truth_stats = reference.matched_stats  # the FAD reference: the reference split's true mixes

        def fad(name: str) -> SetStatistic:
            def statistic(weights: np.ndarray) -> float:
                stats = moments[name].combine(weights)
                return frechet_distance(truth_stats.mu, truth_stats.cov, stats.mu, stats.cov)

            return statistic

        def apa(name: str) -> SetStatistic:
            return lambda w: reference.score(moments[name], w)

        for kind, statistic, higher in (("apa", apa, True), ("fad", fad, False)):
            boots = {name: set_bootstrap(statistic(name), len(pairs), spec.seed, spec.set_boot) for name in names}
            rows.extend(compare_sets(f"{kind}/{embedder_name}", kind, name, len(pairs), boots[anchor],
                                     boots[name], higher_is_better=higher) for name in names[1:])
    return flag_failures(pd.DataFrame([asdict(row) for row in rows]))


def main(argv: list[str] | None = None) -> int:
    """Command line: validate the measures on a dataset folder and write the table (exit 1 if a measure fails)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a built dataset folder (manifest.json)")
    parser.add_argument("--split", help="split to validate on (default: the spec's)")
    parser.add_argument("--spec", default=SPEC, help="a validation spec (default: the built-in validation.toml)")
    parser.add_argument("--out", type=Path, help="write validation.csv and validation.md here")
    args = parser.parse_args(argv)
    table = validate(args.data, load_spec(args.spec), args.split)
    print(to_markdown(table))
    if args.out:
        for path in write_table(table, args.out):
            print(f"wrote {path}")
    return 0 if table["passes"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
