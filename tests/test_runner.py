"""The experiment runner end to end on a small spec, its resumability after kill -9, and spec validation."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sag_bench.listening_test.study import SECRET_FILE
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
        assert (out / "rtf" / "end-to-end" / f"{system}.json").is_file()
        assert (out / "rtf" / "model-only" / f"{system}.json").is_file()
    assert sorted(p.stem for p in (out / "mixes" / "reference").glob("*.wav")) == clips
    manifest = pd.read_json(out / "manifest.json", typ="series")
    assert manifest["clips"] == clips and manifest["seeds"]["run"] == 7 and manifest["git_commit"] != ""
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics["system"]) == {"groundtruth", "randsong"} and set(metrics["embedder"]) == {"dsp-spectral"}
    by_system = metrics.set_index("system")
    # the ground truth's row is the split-half floor of the reference, a real positive FAD
    assert by_system.loc["groundtruth", "kind"] == "floor" and by_system.loc["groundtruth", "score"] > 1e-3
    assert by_system.loc["randsong", "kind"] == "fad" and by_system.loc["randsong", "score"] > 1e-3
    assert (metrics["ci_low"] <= metrics["score"]).all() and (metrics["score"] <= metrics["ci_high"]).all(), metrics
    timings = pd.read_csv(out / "timings.csv")
    assert (timings["rtf_mean"] > 0).all()
    assert list(zip(timings["system"], timings["scope"])) == [("groundtruth", "end-to-end"), ("groundtruth", "model-only"),
                                                              ("randsong", "end-to-end"), ("randsong", "model-only")]
    coherence = pd.read_csv(out / "coherence.csv")
    assert set(coherence["system"]) == {"groundtruth", "randsong"}
    apa = coherence[coherence["measure"] == "apa/dsp-spectral"].set_index("system")
    assert ((apa["mean"] >= 0) & (apa["mean"] <= 1)).all() and (apa["ci_low"] <= apa["ci_high"]).all()
    assert apa.loc["groundtruth", "mean"] > apa.loc["randsong", "mean"]  # R from the train songs, not these clips
    for suffix in ("csv", "md", "tex"):
        assert (out / "tables" / f"table1.{suffix}").is_file() and (out / "tables" / f"table1_paper.{suffix}").is_file()
    table = (out / "tables" / "table1.md").read_text()
    assert "groundtruth" in table and "FAD dsp-spectral ↓" in table and "APA dsp-spectral ↑" in table
    assert "RTF end-to-end ↓" in table and "RTF model-only ↓" in table
    assert "split-half floor" in table and "not validated on this dataset" in table
    assert (out / "tables" / "table1_ci.tex").is_file()  # randsong and groundtruth have bootstrap CIs
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
    assert "--root $MUSDB_PATH --protocol fastsag" in done.stdout
    assert "[MISSING] torch.hub harritaylor/torchvggish (for FAD vggish)" in done.stdout
    mert = [line for line in done.stdout.splitlines() if "m-a-p/MERT-v1-95M" in line]
    assert len(mert) == 1 and "fastsag-mel" not in mert[0] and "FAD MERT-v1-95M-7" in mert[0]  # once, with its users
    assert "hf download m-a-p/MERT-v1-95M" in mert[0] and "huggingface-cli" not in done.stdout
    assert "prerequisite(s) missing" in done.stderr


@pytest.mark.parametrize("table, systems", [
    ("table1", {"singsong-sc": "codec:3", "singsong-scf": "codec:8", "fastsag-no-norm": "vocoder",
                "fastsag-semantic-mel": "vocoder", "fastsag-mel": "vocoder", "fastsag-interpolate": "vocoder",
                "fastsag": "vocoder"}),
    ("table2", {"singsong-sc": "codec:3", "fastsag-interpolate": "vocoder", "fastsag": "vocoder"}),
])
def test_dry_run_lists_how_each_system_is_measured(tmp_path, table, systems):
    done = subprocess.run([SAG_BENCH, "run", table, "--dry-run"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout  # missing weights and data only
    lines = {line.split(":")[0].removeprefix("[ok] protocol "): line for line in done.stdout.splitlines()
             if line.startswith("[ok] protocol ")}
    assert set(lines) == set(systems)
    for system, role in systems.items():
        line = lines[system]
        assert f"reference path {role}:" in line and "levels authors" in line and "0.9 x accompaniment" in line
        assert "clip filter fastsag (vocals and accompaniment whole-clip RMS" in line
        calls = "network calls 51 per model window (paper preset)" if role == "vocoder" else "network calls -"
        assert calls in line


FAMILIES = """
[[systems]]
name = "fastsag"
checkpoint = "builtin:fastsag.pt"
options = { steps = 2 }
[[systems]]
name = "singsong-sc"
checkpoint = "builtin:singsong"
"""


def test_each_system_family_is_scored_against_its_own_reference_path(tmp_path, dataset_builder):
    data = dataset_builder(tmp_path / "data", songs=2, clips_per_song=1, seconds=3.0)
    spec = tmp_path / "paths.toml"
    spec.write_text(SPEC.format(data=data, batch_size=2).replace("coherence = true", "coherence = false")
                    .replace("apa = true", "apa = false")  # APA needs reference pairs from other songs
                    .replace('[[systems]]\nname = "randsong"\n', FAMILIES))
    out = tmp_path / "run"
    done = subprocess.run([SAG_BENCH, "run", str(spec), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    mixing = pd.read_json(out / "manifest.json", typ="series")["mixing"]
    roles = {key: record["degradation"]["role"] for key, record in mixing.items()}
    assert roles == {"groundtruth": "none", "fastsag": "vocoder", "singsong-sc": "codec:3"}
    paths = {key: record["reference_path"] for key, record in mixing.items()}
    assert paths["groundtruth"] == "none" and len(set(paths.values())) == 3
    assert paths["fastsag"].startswith("vocoder-") and paths["singsong-sc"].startswith("codec3-")
    assert mixing["singsong-sc"]["degradation"]["codebooks"] == 3
    assert {record["levels"] for record in mixing.values()} == {"authors"}
    clip = "song1-0"
    from sag_bench.audio import load_audio
    from sag_bench.runs import RunStore

    store = RunStore(out)
    references = {key: load_audio(store.reference_mix(key, clip)) for key in paths}
    assert store.reference_mix("groundtruth", clip) == out / "mixes" / "reference" / f"{clip}.wav"
    assert not np.allclose(references["fastsag"], references["groundtruth"], atol=1e-3)  # resynthesised ...
    assert not np.allclose(references["singsong-sc"], references["fastsag"], atol=1e-3)  # ... each its own way
    assert np.abs(references["groundtruth"]).max() <= 1.0
    timings = pd.read_csv(out / "timings.csv")
    assert set(zip(timings["system"], timings["scope"])) == {(key, scope) for key in paths
                                                             for scope in ("end-to-end", "model-only")}
    assert (timings["rtf"] > 0).all()
    calls = timings.set_index(["system", "scope"])["network_calls"]
    assert calls[("fastsag", "end-to-end")] == calls[("fastsag", "model-only")] > 0
    assert calls[("groundtruth", "end-to-end")] != calls[("groundtruth", "end-to-end")]  # NaN: none reported
    table = pd.read_csv(out / "tables" / "table1.csv", index_col="system")
    assert table.columns.get_loc("paper RTF (end-to-end, A100)") == table.columns.get_loc("RTF end-to-end") + 1
    assert table.loc["fastsag", "paper RTF (end-to-end, A100)"] == pytest.approx(0.3247)
    assert table.loc["fastsag", "network calls"] == calls[("fastsag", "model-only")]


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


def _dry_run(spec: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([SAG_BENCH, "run", str(spec), "--dry-run", *options], capture_output=True, text=True)


@pytest.mark.parametrize("change, message", [
    (('name = "randsong"', 'name = "randsong"\noptions = { pool_sise = 3 }'),
     "[[systems]] #2 (randsong) options.pool_sise = 3: randsong takes no option 'pool_sise'; did you mean pool_size"),
    (('name = "randsong"', 'name = "randsong"\noptions = { pool_size = "two" }'),
     "[[systems]] #2 (randsong) options.pool_size = 'two': expected int"),
    (("clips = 1", 'clips = "two"'), "[rtf] clips = 'two': expected int"),
    (("coherence = true", "coherence = 1"), "[evaluation] coherence = 1: expected bool"),
])
def test_a_misspelt_option_or_a_wrong_type_fails_the_dry_run_in_one_line(tmp_path, data_dir, change, message):
    spec = _spec(tmp_path, data_dir)
    spec.write_text(spec.read_text().replace(*change))
    done = _dry_run(spec)
    error = done.stderr.strip()
    assert done.returncode == 2 and len(error.splitlines()) == 1, done.stderr
    assert error.startswith(f"sag-bench: error: {spec}: {message}")


def test_singsong_temperatures_are_accepted_options(tmp_path, data_dir):
    spec = _spec(tmp_path, data_dir)
    spec.write_text(spec.read_text() + '[[systems]]\nname = "singsong-sc"\noptions = { coarse_temperature = 0.8 }\n')
    assert load_spec(spec).systems[-1].options == {"coarse_temperature": 0.8}


def test_set_overrides_data_options_and_device(tmp_path, data_dir):
    spec = _spec(tmp_path, data_dir)
    spec.write_text(spec.read_text() + '[[systems]]\nname = "fastsag"\ncheckpoint = "builtin:fastsag.pt"\n')
    loaded = load_spec(spec, ["data.dir=elsewhere/data", "systems.fastsag.options.steps=20", "device=cuda",
                              'evaluation.embedders=["dsp-spectral", "crepe-tiny"]'])
    assert loaded.data.dir == "elsewhere/data" and loaded.device == "cuda"  # --set paths: the current folder's
    assert loaded.systems[-1].options == {"steps": 20}
    assert loaded.evaluation.embedders == ["dsp-spectral", "crepe-tiny"]
    with pytest.raises(SpecError, match="options.steps = 'many': expected int"):
        load_spec(spec, ["systems.fastsag.options.steps=many"])
    with pytest.raises(SpecError, match="no system 'fastsg' in the spec"):
        load_spec(spec, ["systems.fastsg.options.steps=2"])
    done = _dry_run(spec, "--set", f"data.dir={tmp_path / 'nowhere'}", "--device", "cuda")
    assert done.returncode == 0 and f"{tmp_path / 'nowhere'}: not built yet" in done.stdout


def test_spec_paths_resolve_against_the_spec_file(tmp_path, data_dir, monkeypatch):
    folder = tmp_path / "specs"
    folder.mkdir()
    spec = folder / "rel.toml"
    spec.write_text(SPEC.format(data="../data", batch_size=1) + 'checkpoint = "ckpt/x.pt"\n')
    monkeypatch.chdir(data_dir)
    loaded = load_spec(spec)
    assert loaded.data.dir == str(tmp_path / "data") and loaded.systems[-1].checkpoint == str(folder / "ckpt/x.pt")
    assert load_spec("tiny").data.dir == "results/data/chorales-tiny"  # built-in specs: the current folder


@pytest.mark.parametrize("builtin", ["table1", "tiny"])
def test_export_spec_round_trips(tmp_path, builtin, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mine" / "my.toml"
    done = subprocess.run([SAG_BENCH, "run", builtin, "--export-spec", str(out), "--set", "seed=3"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    original, exported = load_spec(builtin, ["seed=3"]), load_spec(out)
    assert exported.seed == 3
    for spec in (original, exported):
        spec.source = ""
        spec.data.dir = str(Path(spec.data.dir).resolve())
        for system in spec.systems:
            if system.checkpoint and not system.checkpoint.startswith("builtin:"):
                system.checkpoint = str(Path(system.checkpoint).resolve())
    assert exported == original


def test_demo_writes_a_report_and_every_file_is_readable_by_others(tmp_path, data_dir):
    spec = _spec(tmp_path, data_dir)
    out = tmp_path / "run"
    done = subprocess.run([SAG_BENCH, "demo", "--spec", str(spec), "--out", str(out)], capture_output=True,
                          text=True, preexec_fn=lambda: os.umask(0o022))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "report.html").is_file() and "report.html" in done.stdout
    modes = {path.relative_to(out): stat.S_IMODE(path.stat().st_mode) for path in [out, *out.rglob("*")]}
    secret = [path for path in modes if path.name == SECRET_FILE]
    assert len(secret) == 1 and modes.pop(secret[0]) == 0o600  # the study's signing key stays private
    wrong = {str(path): oct(mode) for path, mode in modes.items()
             if mode != (0o755 if (out / path).is_dir() else 0o644)}
    assert len(modes) > 50 and wrong == {}
