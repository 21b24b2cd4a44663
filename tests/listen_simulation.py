"""Simulated listening studies with known truth: crossed raters x clips, planted honest and careless raters.

Latent score of rater r on clip c for system s:
    mu_s + rater_r + clip_c + (system x clip)_sc + (system x rater)_sr + noise,
all effects normal with mean 0, rounded and clipped to the 1-5 scale. The true MOS of a system is the expected
score over the populations of raters and clips, computed exactly (the latent score is normal). Gold items follow
the preset: anchors (broken accompaniment, expected 1-2), references (human accompaniment, expected 3-5), traps
(answer exactly 2). Careless raters pass gold items but not the test items: ``clicker`` answers uniformly at
random, ``straightliner`` answers 3 or 4 at random, ``constant`` answers 3 everywhere (gold items too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from sag_bench.listening_test.analysis import analyze_ratings
from sag_bench.listening_test.screening import ScreeningRules

CARELESS_KINDS = ("clicker", "straightliner", "constant")
TRAP_SCORE = 2


@dataclass(frozen=True)
class Design:
    """A simulated study: panel, clip assignment, systems' latent means and effect sizes (the issue 19 check:
    rater sd 0.5, clip sd 0.3, noise sd 0.7, system x clip sd 0.3)."""

    raters: int = 15
    clips: int = 100
    per_rater: int = 20
    systems: dict[str, float] = field(default_factory=lambda: {
        "groundtruth": 4.15, "singsong-sc": 2.36, "randsong": 1.48, "fastsag-interpolate": 2.78, "fastsag": 3.13})
    rater_sd: float = 0.5
    clip_sd: float = 0.3
    system_clip_sd: float = 0.3
    system_rater_sd: float = 0.0
    noise_sd: float = 0.7
    anchors: int = 2
    references: int = 1
    traps: int = 1
    anchor_mean: float = 1.3
    reference_mean: float = 4.15
    careless: tuple[str, ...] = ()

    def total_sd(self) -> float:
        """Standard deviation of one latent score around its system's mean."""
        return float(np.sqrt(self.rater_sd ** 2 + self.clip_sd ** 2 + self.system_clip_sd ** 2 +
                             self.system_rater_sd ** 2 + self.noise_sd ** 2))

    def true_mos(self, system: str) -> float:
        """E[score] of ``system`` over raters, clips and noise: 1 + sum_k P(latent > k + 0.5), k = 1..4."""
        thresholds = np.arange(1, 5) + 0.5
        return float(1 + stats.norm.sf(thresholds, self.systems[system], self.total_sd()).sum())


def _score(latent: np.ndarray) -> np.ndarray:
    return np.clip(np.round(latent), 1, 5).astype(np.int64)


def simulate(design: Design, seed: int) -> pd.DataFrame:
    """A ratings table with the export's columns used by the analysis (rater_id, item_id, kind, system, clip,
    expected_min, expected_max, score, plays). Honest raters are ``r00``.., careless ones ``<kind>NN``."""
    rng = np.random.default_rng(seed)
    systems = list(design.systems)
    means = np.array([design.systems[name] for name in systems])
    clip_effect = rng.normal(0, design.clip_sd, design.clips)
    system_clip = rng.normal(0, design.system_clip_sd, (len(systems), design.clips))
    people = [f"r{k:02d}" for k in range(design.raters)] + \
        [f"{kind}{k:02d}" for k, kind in enumerate(design.careless)]
    gold = [("anchor", (1, 2))] * design.anchors + [("reference", (3, 5))] * design.references + \
        [("trap", (TRAP_SCORE, TRAP_SCORE))] * design.traps
    frames = []
    for k, rater in enumerate(people):
        kind = rater.rstrip("0123456789") if k >= design.raters else "honest"
        chosen = (k * design.per_rater + np.arange(design.per_rater)) % design.clips
        bias = rng.normal(0, design.rater_sd)
        latent = (means[:, None] + bias + clip_effect[chosen][None, :] + system_clip[:, chosen] +
                  rng.normal(0, design.system_rater_sd, (len(systems), 1)) +
                  rng.normal(0, design.noise_sd, (len(systems), chosen.size)))
        if kind == "honest":
            scores = _score(latent)
        elif kind == "clicker":
            scores = rng.integers(1, 6, latent.shape)
        elif kind == "straightliner":
            scores = rng.integers(3, 5, latent.shape)
        else:
            scores = np.full(latent.shape, 3)
        clip_names = np.array([f"c{c:03d}" for c in chosen])
        frames.append(pd.DataFrame({
            "rater_id": rater, "kind": "test", "system": np.repeat(systems, chosen.size),
            "clip": np.tile(clip_names, len(systems)), "expected_min": np.nan, "expected_max": np.nan,
            "score": scores.ravel()}))
        gold_rows = []
        for index, (gold_kind, (low, high)) in enumerate(gold):
            clip = int(chosen[index % chosen.size])
            if kind == "constant":
                score = 3
            elif gold_kind == "trap":
                score = TRAP_SCORE
            elif kind != "honest":
                score = low if gold_kind == "anchor" else 4
            else:
                center = design.anchor_mean if gold_kind == "anchor" else design.reference_mean
                score = int(_score(np.array(center + bias + clip_effect[clip] + rng.normal(0, design.noise_sd))))
            gold_rows.append({"rater_id": rater, "kind": gold_kind, "system": None, "clip": f"c{clip:03d}",
                              "expected_min": low, "expected_max": high, "score": score})
        frames.append(pd.DataFrame(gold_rows))
    ratings = pd.concat(frames, ignore_index=True)
    ratings["item_id"] = ratings["kind"] + "/" + ratings["system"].fillna("gold") + "/" + ratings["clip"]
    ratings["plays"] = 1
    return ratings


@dataclass
class Calibration:
    """What :func:`run_studies` measured over many simulated studies."""

    studies: int
    coverage: dict[str, float]          # interval name -> share of (study, system) intervals covering the truth
    rejection: dict[str, float]         # p column -> share of null pairs with p < 0.05 (unadjusted)
    null_pairs: int
    honest_excluded: float              # share of honest raters excluded
    careless_excluded: float            # share of careless raters excluded (NaN without careless raters)
    mos_bias: float                     # mean (MOS - true MOS) over studies and systems, after screening


INTERVALS = {"crossed": ("ci_low", "ci_high"), "rater_means": ("ci_rater_means_low", "ci_rater_means_high"),
             "naive": ("ci_naive_low", "ci_naive_high")}
P_COLUMNS = ("p", "p_rater", "p_crossed")


def run_studies(design: Design, seeds: range, rules: ScreeningRules | None = None) -> Calibration:
    """Simulate one study per seed, analyse it with ``analyze_ratings`` and score intervals, tests and screening
    against the planted truth. Null pairs are pairs of systems with equal latent means."""
    covered: dict[str, list[bool]] = {name: [] for name in INTERVALS}
    rejected: dict[str, list[bool]] = {name: [] for name in P_COLUMNS}
    honest, careless, errors = [], [], []
    for seed in seeds:
        report = analyze_ratings(simulate(design, seed), rules)
        for row in report.mos.itertuples():
            truth = design.true_mos(row.system)
            errors.append(row.mos - truth)
            for name, (low, high) in INTERVALS.items():
                covered[name].append(bool(getattr(row, low) < truth < getattr(row, high)))
        for row in report.pairwise.itertuples():
            if design.systems[row.a] == design.systems[row.b]:
                for name in P_COLUMNS:
                    rejected[name].append(bool(getattr(row, name) < 0.05))
        excluded = report.raters.set_index("rater_id")["excluded"]
        honest += [bool(excluded[rater]) for rater in excluded.index if rater.startswith("r")]
        careless += [bool(excluded[rater]) for rater in excluded.index if not rater.startswith("r")]
    return Calibration(studies=len(seeds), coverage={k: float(np.mean(v)) for k, v in covered.items()},
                       rejection={k: float(np.mean(v)) if v else float("nan") for k, v in rejected.items()},
                       null_pairs=len(rejected["p"]), honest_excluded=float(np.mean(honest)),
                       careless_excluded=float(np.mean(careless)) if careless else float("nan"),
                       mos_bias=float(np.mean(errors)))
