"""Trained systems against RandSong, and learning curves over a run's snapshots (structure and numbers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sag_bench.evaluation import learning
from tests.chorale_fixture import build_chorale_fixture
from tests.fastsag_helpers import random_checkpoint


@pytest.fixture(scope="module")
def chorales(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_chorale_fixture(tmp_path_factory.mktemp("chorales"), songs=2, clips_per_song=2, seconds=4.0,
                                 reference_songs=4)


def test_learning_curve_compares_every_snapshot_with_randsong(tmp_path: Path, chorales: Path) -> None:
    run = tmp_path / "run"
    for step in (20, 10):
        random_checkpoint(run / "snapshots" / f"fastsag_step{step:06d}.pt", seed=step)
    (run / "losses.csv").write_text("step,loss,diffusion\n0,2.0,1.0\n1,1.5,0.8\n2,1.2,0.7\n")
    cache = tmp_path / "scores"
    curve = learning.learning_curve(run, "fastsag", chorales, "test", {"steps": 2}, cache, coherence_boot=100,
                                    set_boot=20)
    assert len(list(cache.glob("fastsag_step*_test_*.csv"))) == 2
    # a second call reads each snapshot's scores back (no dataset needed: nothing is generated again)
    again = learning.learning_curve(run, "fastsag", tmp_path / "absent", "test", {"steps": 2}, cache,
                                    coherence_boot=100, set_boot=20)
    pd.testing.assert_frame_equal(again, curve, check_dtype=False)
    measures = {"fastsag: harmonic_fit", "fastsag: chroma_harmonic_fit", "fastsag: apa/dsp-interval"}
    assert set(curve["measure"]) == measures and sorted(set(curve["step"])) == [10, 20]
    assert len(curve) == 2 * len(measures) and set(curve["perturbation"]) == {"randsong"}
    np.testing.assert_allclose(curve["difference"], curve["truth"] - curve["perturbed"], atol=1e-9)
    assert (curve["passes"] == (curve["ci_low"] > 0)).all()
    apa = curve[curve["measure"] == "fastsag: apa/dsp-interval"]
    assert apa["truth"].between(0, 1).all() and apa["perturbed"].between(0, 1).all()
    assert apa["perturbed"].nunique() == 1  # the baseline does not change with the snapshot
    png = learning.plot_learning_curve(curve, run / "losses.csv", tmp_path / "curve.png")
    assert png.stat().st_size > 10_000
    with pytest.raises(FileNotFoundError, match="snapshot_every"):
        learning.snapshots(tmp_path, "fastsag")


def test_command_line_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = learning.main(["curve", "--run", str(tmp_path), "--system", "fastsag", "--data", str(tmp_path),
                          "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and f"{tmp_path}/snapshots" in err and "snapshot_every" in err


def test_versus_options_are_key_value_json(capsys: pytest.CaptureFixture) -> None:
    parser = learning.argparse.ArgumentParser()
    assert learning._parse_options(["output=prior", "steps=4", 'sampler="heun"'], parser) == {
        "output": "prior", "steps": 4, "sampler": "heun"}
    with pytest.raises(SystemExit):
        learning._parse_options(["output"], parser)
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_versus_options_reach_trained_systems_and_a_trained_baseline_only() -> None:
    chosen, baseline = learning.versus_systems("tiny", "fastsag-mel", ["fastsag"], {"output": "prior"})
    assert [name for name, _ in chosen] == ["fastsag"] and chosen[0][1]["output"] == "prior"
    assert baseline[0] == "fastsag-mel" and baseline[1]["output"] == "prior"
    chosen, baseline = learning.versus_systems("tiny", "randsong", None, {"output": "prior"})
    assert "output" not in baseline[1] and {"fastsag", "singsong-sc"} <= {name for name, _ in chosen}


def test_versus_names_each_spec_system_with_its_checkpoint() -> None:
    systems = dict(learning.trained_systems("tiny"))
    assert {"fastsag", "fastsag-mel", "singsong-sc", "singsong-scf"} <= set(systems)
    assert "randsong" not in systems and "groundtruth" not in systems
    assert systems["fastsag"]["steps"] == 10 and Path(systems["fastsag"]["checkpoint"]).is_file()
