"""Metric validation: the paired statistics on known values, the built-in spec, and on a CI-sized rendered chorale
set the ground truth beats a copy of the vocals and a static chord on every default measure and on APA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sag_bench.evaluation import validation
from sag_bench.evaluation.validation import (ValidationSpec, compare_clips, compare_sets, flag_failures, load_spec,
                                             to_markdown, validated_measures)
from tests.chorale_fixture import build_chorale_fixture


def test_compare_clips_known_values_and_direction() -> None:
    truth, perturbed = [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 5.0]
    row = compare_clips("m", "coherence", "p", truth, perturbed, seed=0, n_boot=500)
    assert row.difference == pytest.approx(1.0) and row.truth_wins == 0.75 and row.n == 4
    assert row.ci_low <= 1.0 <= row.ci_high
    assert row == compare_clips("m", "coherence", "p", truth, perturbed, seed=0, n_boot=500)  # seeded
    lower = compare_clips("fad", "fad", "p", [1.0, 1.0], [3.0, 2.0], n_boot=100, higher_is_better=False)
    assert lower.difference == pytest.approx(1.5) and lower.passes and lower.truth_wins == 1.0
    with pytest.raises(ValueError, match="equal non-empty"):
        compare_clips("m", "coherence", "p", [1.0], [1.0, 2.0])


def test_compare_sets_resamples_both_systems_together() -> None:
    values = np.array([1.0, 2.0, 3.0, 10.0])
    mean = lambda w: float(w @ values / w.sum())  # noqa: E731
    truth = validation.set_bootstrap(mean, 4, seed=0, n_boot=50)
    shifted = validation.set_bootstrap(lambda w: mean(w) - 1.0, 4, seed=0, n_boot=50)
    assert truth.point == pytest.approx(4.0) and truth.boots.std() > 0.5
    row = compare_sets("apa/x", "apa", "p", 4, truth, shifted)
    assert row.difference == pytest.approx(1.0)
    assert row.ci_low == pytest.approx(1.0) and row.ci_high == pytest.approx(1.0)  # paired: the spread cancels
    assert np.isnan(row.truth_wins) and row.passes
    with pytest.raises(ValueError, match="same seed"):
        compare_sets("apa/x", "apa", "p", 4, truth, validation.set_bootstrap(mean, 4, seed=0, n_boot=10))


def test_flags_markdown_and_validated_measures(tmp_path: Path) -> None:
    rows = [compare_clips("good", "coherence", p, [1.0, 2.0, 3.0], [0.0, 1.0, 2.0], n_boot=100) for p in "ab"]
    rows.append(compare_clips("bad", "coherence", "a", [1.0, 2.0, 3.0], [0.0, 1.0, 2.0], n_boot=100))
    rows.append(compare_clips("bad", "coherence", "b", [1.0, 2.0, 3.0], [2.0, 3.0, 4.0], n_boot=100))
    table = flag_failures(pd.DataFrame([vars(r) for r in rows]))
    assert table.groupby("measure")["flagged"].all().to_dict() == {"bad": True, "good": False}
    assert validated_measures(table) == ["good"]
    markdown = to_markdown(table)
    assert "| bad (FLAGGED) | b |" in markdown and "| NO |" in markdown and "| good | a |" in markdown
    csv, md = validation.write_table(table, tmp_path)
    assert pd.read_csv(csv)["passes"].tolist() == table["passes"].tolist() and md.read_text() == markdown


def test_builtin_specs_run_ground_truth_and_every_perturbation(tmp_path: Path) -> None:
    from sag_bench.systems.perturbations import PERTURBATIONS

    for name, split in (("validation", "test"), ("validation-zeroshot", "zeroshot")):
        spec = load_spec(name)
        names = [system for system, _ in spec.systems]
        assert names[0] == "groundtruth" and sorted(names[1:]) == sorted(e.name for e in PERTURBATIONS)
        assert spec.split == split and spec.reference_split == "train" and spec.embedders
        assert dict(spec.systems)["perturb-other-song"]["pool_split"] == split  # another song of the same split
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ntable = "validation"\n[data]\nname = "chorales"\ndir = "x"\n'
                   '[[systems]]\nname = "perturb-silence"\n')
    with pytest.raises(ValueError, match="bad.toml: the first"):
        load_spec(bad)


@pytest.fixture(scope="module")
def chorale_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_chorale_fixture(tmp_path_factory.mktemp("chorales"), songs=3, clips_per_song=2, seconds=6.0,
                                 reference_songs=8)  # APA's R' needs a few songs to mismatch


def test_copies_and_static_chords_score_below_ground_truth(chorale_fixture: Path) -> None:
    from sag_bench.evaluation.coherence import DEFAULT_MEASURES

    spec = ValidationSpec([("groundtruth", {}), ("perturb-copied-vocals", {}), ("perturb-static-chord", {})],
                          embedders=["dsp-spectral", "dsp-interval"], coherence_boot=200, set_boot=20,
                          measures=[*DEFAULT_MEASURES, "rhythmic_fit", "onset_agreement"])
    table = validation.validate(chorale_fixture, spec)
    kept = table[table["measure"].isin([*DEFAULT_MEASURES, "rhythmic_fit"])]
    assert len(kept) == 2 * (len(DEFAULT_MEASURES) + 1)
    assert (kept["difference"] > 0).all(), kept
    assert (kept["truth"] > kept["perturbed"]).all()
    # R and the FAD reference are the train songs' pairs: the ground truth is measured, not the reference itself
    fad = table[table["measure"] == "fad/dsp-spectral"]
    assert (fad["truth"] > 1e-3).all()
    assert (table.loc[table["measure"] == "apa/dsp-spectral", "truth"] <= 1.0).all()
    # APA over the embedder the demo table uses ranks the ground truth above both cheats
    apa = table[table["measure"] == "apa/dsp-interval"]
    assert len(apa) == 2 and (apa["difference"] > 0).all() and (apa["truth"] > apa["perturbed"]).all(), apa
    # the unrepaired onset agreement rewards the copy (its Pearson correlation is maximal for an echo)
    legacy = table[(table["measure"] == "onset_agreement") & (table["perturbation"] == "perturb-copied-vocals")]
    assert legacy["difference"].item() < 0


def test_run_tables_leave_out_or_mark_measures_that_failed_validation(tmp_path: Path) -> None:
    import dataclasses

    from sag_bench.reporting.tables import column_name, gate_columns, validation_source
    from sag_bench.runner.spec import load_spec as load_run_spec

    good, bad = [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]
    rows = [compare_clips("harmonic_fit", "coherence", "p", good, [0.0, 1.0, 2.0], n_boot=100),
            compare_clips("rhythmic_fit", "coherence", "p", good, bad, n_boot=100),
            compare_clips("apa/crepe-tiny", "apa", "p", good, bad, n_boot=100),
            compare_clips("fad/dsp-spectral", "fad", "p", good, bad, n_boot=100)]
    csv, _ = validation.write_table(flag_failures(pd.DataFrame([vars(r) for r in rows])), tmp_path)
    tiny = load_run_spec("tiny")
    assert validation_source(tiny).name == "chorales-tiny-test.csv"  # the committed reference of the demo's data
    spec = dataclasses.replace(tiny, evaluation=dataclasses.replace(tiny.evaluation, validation=str(csv)))
    fad = column_name("dsp-spectral")
    table = pd.DataFrame({"coh_harmonic_fit": [0.1], "coh_rhythmic_fit": [0.5], "APA_crepe-tiny": [0.9], fad: [3.0],
                          "note": [""]}, index=["groundtruth"])
    gated, notes = gate_columns(table, spec)
    assert list(gated.columns) == ["coh_harmonic_fit", f"{fad}*", "note"]
    assert "rhythmic_fit, apa/crepe-tiny" in notes[0] and notes[1].startswith("* failed")
    missing = dataclasses.replace(tiny, evaluation=dataclasses.replace(tiny.evaluation,
                                                                       validation=str(tmp_path / "none.csv")))
    assert gate_columns(table, missing)[0].equals(table)
