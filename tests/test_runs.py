"""Run store: every path of a run folder comes from RunStore; the run manifest records provenance and reads back."""

from __future__ import annotations

import json

from sag_bench.runs import REFERENCE, RunManifest, RunStore, default_run_dir, write_provenance


def test_provenance_records_spec_seeds_packages_and_machine(tmp_path):
    path = tmp_path / "run" / "manifest.json"
    manifest = write_provenance(path, {"name": "t"}, seeds={"generate": 3}, backbones={"vocoder": "griffin-lim"})
    saved = json.loads(path.read_text())
    assert saved == json.loads(json.dumps(manifest, default=str))
    assert saved["seeds"] == {"generate": 3} and saved["packages"]["torch"] == "2.11.0"
    assert saved["device"]["threads"] >= 1 and saved["backbones"]["vocoder"] == "griffin-lim"
    assert saved["git_commit"] is None or len(saved["git_commit"]) >= 40


def test_run_manifest_round_trips_and_keeps_provenance(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.read_manifest() is None
    written = store.write_manifest(RunManifest(spec={"seed": 7}, seeds={"run": 7}, data_dir="/data", dataset="d",
                                               clips=["a", "b"]))
    again = store.read_manifest()
    assert again == written and again.clips == ["a", "b"] and again.spec == {"seed": 7}
    assert again.packages["numpy"] and again.device["threads"] >= 1 and again.updated


def test_paths_of_a_run_folder(tmp_path):
    store = RunStore(tmp_path)
    assert store.generated("fastsag", "c1") == tmp_path / "generated" / "fastsag" / "c1.wav"
    assert store.mix(REFERENCE, "c1") == store.mixes_dir("reference") / "c1.wav"
    assert store.fad_path("vggish", "fastsag") == tmp_path / "fad" / "vggish" / "fastsag.json"
    assert store.table("table1_paper", "tex") == tmp_path / "tables" / "table1_paper.tex"
    assert default_run_dir("tiny").parts == ("results", "tiny")
    store.write_status("fastsag", state="running")
    store.write_status("fastsag", clips=3)
    assert store.status("fastsag") == {"state": "running", "clips": 3} and store.status("other") == {}
