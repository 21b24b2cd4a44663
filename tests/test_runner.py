"""The experiment runner end to end on a small spec, its resumability after kill -9, and spec validation."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sag_bench.runner.spec import SpecError, load_spec

SAG_BENCH = str(Path(sys.executable).parent / "sag-bench")

SPEC = """
name = "small"
table = "table1"
seed = 7
batch_size = {batch_size}
[data]
name = "chorales"
dir = "{data}"
split = "test"
[evaluation]
embedders = ["dsp-spectral"]
coherence = true
apa = true
bootstrap = 20
[rtf]
clips = 1
warmup = 0
[[systems]]
name = "groundtruth"
[[systems]]
name = "randsong"
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, dataset_builder):
    return dataset_builder(tmp_path_factory.mktemp("data"), songs=6, clips_per_song=2)


def _spec(tmp_path, data_dir, batch_size=2) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SPEC.format(data=data_dir, batch_size=batch_size))
    return path


def test_small_spec_end_to_end_writes_every_output(tmp_path, data_dir):
    out = tmp_path / "run"
    done = subprocess.run([SAG_BENCH, "run", str(_spec(tmp_path, data_dir)), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    clips = ["song1-0", "song1-1", "song3-0", "song3-1", "song5-0", "song5-1"]
    for system in ("groundtruth", "randsong"):
        assert sorted(p.stem for p in (out / "generated" / system).glob("*.wav")) == clips
        assert sorted(p.stem for p in (out / "mixes" / system).glob("*.wav")) == clips
        assert (out / "rtf" / f"{system}.json").is_file()
    assert sorted(p.stem for p in (out / "mixes" / "reference").glob("*.wav")) == clips
    manifest = pd.read_json(out / "manifest.json", typ="series")
    assert manifest["clips"] == clips and manifest["seeds"]["run"] == 7 and manifest["git_commit"] != ""
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["system"]) == {"groundtruth", "randsong"} and set(metrics["embedder"]) == {"dsp-spectral"}
    by_system = metrics.set_index("system")
    # the ground truth's mixes are the reference (FAD 0): its row is the split-half floor, a real positive FAD
    assert by_system.loc["groundtruth", "kind"] == "floor" and by_system.loc["groundtruth", "score"] > 1e-3
    assert by_system.loc["randsong", "kind"] == "fad" and by_system.loc["randsong", "score"] > 1e-3
    assert (metrics["ci_low"] <= metrics["score"]).all() and (metrics["score"] <= metrics["ci_high"]).all(), metrics
    timings = pd.read_csv(out / "timings.csv")
    assert (timings["rtf_mean"] > 0).all() and list(timings["system"]) == ["groundtruth", "randsong"]
    coherence = pd.read_csv(out / "coherence.csv")
    assert set(coherence["system"]) == {"groundtruth", "randsong"}
    apa = coherence[coherence["measure"] == "apa/dsp-spectral"].set_index("system")
    assert ((apa["mean"] >= 0) & (apa["mean"] <= 1)).all() and (apa["ci_low"] <= apa["ci_high"]).all()
    assert apa.loc["groundtruth", "mean"] > apa.loc["randsong", "mean"]  # R from the train songs, not these clips
    for suffix in ("csv", "md", "tex"):
        assert (out / "tables" / f"table1.{suffix}").is_file() and (out / "tables" / f"table1_paper.{suffix}").is_file()
    table = (out / "tables" / "table1.md").read_text()
    assert "groundtruth" in table and "FAD_dsp-spectral" in table and "RTF" in table and "APA_dsp-spectral" in table
    assert "split-half floor" in table and "not validated on this dataset" in table
    assert "FastSAG" in (out / "tables" / "table1_paper.md").read_text()
    assert {p.name for p in (out / "plots").glob("*.png")} == {"fad_per_embedder.png", "fad_vs_rtf.png", "coherence.png"}
    assert "groundtruth" in done.stdout


def test_killed_run_resumes_without_regenerating_and_gives_identical_results(tmp_path, data_dir):
    spec = _spec(tmp_path, data_dir, batch_size=1)
    reference = tmp_path / "uninterrupted"
    subprocess.run([SAG_BENCH, "run", str(spec), "--out", str(reference)], check=True, capture_output=True)

    out = tmp_path / "interrupted"
    proc = subprocess.Popen([SAG_BENCH, "run", str(spec), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    target = out / "generated" / "randsong"
    deadline = time.monotonic() + 120
    while not (target.is_dir() and any(target.glob("*.wav"))) and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.csv").exists(), "the run finished before it could be killed"
    finished = {p: p.stat().st_mtime_ns for p in (out / "generated").rglob("*.wav")}
    assert finished

    again = subprocess.run([SAG_BENCH, "run", str(spec), "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr  # never silently overwrites a run
    resumed = subprocess.run([SAG_BENCH, "run", str(spec), "--out", str(out), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in finished.items())  # not regenerated
    differing = [str(path.relative_to(reference)) for path in sorted((reference / "generated").rglob("*.wav"))
                 if path.read_bytes() != (out / path.relative_to(reference)).read_bytes()]
    assert differing == []
    columns = ["system", "embedder", "score"]
    pd.testing.assert_frame_equal(pd.read_csv(reference / "metrics.csv")[columns], pd.read_csv(out / "metrics.csv")[columns])


def test_spec_errors_name_the_file_and_the_problem(tmp_path, data_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text(SPEC.format(data=data_dir, batch_size=1).replace("coherence = true", "coherense = true"))
    with pytest.raises(SpecError, match=r"bad\.toml: unknown key\(s\) coherense in \[evaluation\]"):
        load_spec(bad)
    bad.write_text(SPEC.format(data=data_dir, batch_size=1).replace('name = "randsong"', 'name = "randsongg"'))
    with pytest.raises(SpecError, match="unknown system 'randsongg'"):
        load_spec(bad)
    bad.write_text("name = 'x'\n[data\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    done = subprocess.run([SAG_BENCH, "run", str(tmp_path / "missing.toml")], capture_output=True, text=True)
    assert done.returncode == 2 and "missing.toml: no such spec file" in done.stderr and "Traceback" not in done.stderr


def test_builtin_specs_are_complete():
    table1 = load_spec("table1")
    assert [s.name for s in table1.systems] == ["singsong-sc", "singsong-scf", "fastsag-no-norm",
                                                "fastsag-semantic-mel", "fastsag-mel", "fastsag-interpolate", "fastsag"]
    assert table1.evaluation.embedders == ["vggish", "MERT-v1-95M", "MERT-v1-95M-4", "MERT-v1-95M-7",
                                           "MERT-v1-95M-11", "clap-laion-music"]
    assert table1.rtf.clips > 0 and table1.rtf.batch_size == 1
    assert [s.name for s in load_spec("table2").systems] == ["singsong-sc", "fastsag-interpolate", "fastsag"]
    tiny = load_spec("tiny")
    assert {"groundtruth", "randsong", "fastsag", "singsong-scf"} <= {s.name for s in tiny.systems}
    assert tiny.evaluation.coherence


def test_dry_run_lists_needs_and_fails_on_missing(tmp_path):
    done = subprocess.run([SAG_BENCH, "run", "table1", "--dry-run"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert "[MISSING] data musdb18" in done.stdout and "sag-bench data build musdb18" in done.stdout
    assert "[MISSING] system fastsag: fastsag, checkpoint checkpoints/paper/fastsag.pt not found" in done.stdout
    assert "[MISSING] embedder vggish" in done.stdout and "[MISSING] backbone mert-v1-95m" in done.stdout
    assert "prerequisite(s) missing" in done.stderr


def test_a_failing_system_is_reported_and_the_others_are_kept(tmp_path, data_dir):
    spec = _spec(tmp_path, data_dir)
    spec.write_text(spec.read_text().replace("[rtf]\nclips = 1", "[rtf]\nclips = 0") +
                    '\n[[systems]]\nname = "fastsag"\ncheckpoint = "missing/fastsag.pt"\n')
    out = tmp_path / "run"
    done = subprocess.run([SAG_BENCH, "run", str(spec), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 1  # a failed system makes the run exit non-zero ...
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["system"]) == {"groundtruth", "randsong"}  # ... without losing the others' results
    table = pd.read_csv(out / "tables" / "table1.csv", index_col="system")
    assert table.loc["fastsag", "note"].startswith("FAILED: FileNotFoundError: checkpoint of fastsag not found")
    assert pd.isna(table.loc["fastsag", "FAD_dsp-spectral"]) and table.loc["randsong", "FAD_dsp-spectral"] > 0
    assert "fastsag failed" in done.stderr
