"""Study builder: loudness matching (BS.1770), gold items, balanced per-rater assignment, study.json, errors, CLI."""

from __future__ import annotations

import json
import sys
from collections import Counter

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sag_bench import cli
from sag_bench.audio import load_audio, mix
from sag_bench.listening_test import stimuli
from sag_bench.listening_test.build import AUDIO_MTIME, build_study
from sag_bench.listening_test.loudness import integrated_loudness, matching_gains
from sag_bench.listening_test.server import create_app
from sag_bench.listening_test.study import Study, StudyError
from tests.listen_synthetic import make_synthetic_run

SYSTEMS = ["groundtruth", "fastsag", "randsong"]
RATE = 24_000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_synthetic_run(tmp_path_factory.mktemp("run"), SYSTEMS, clips=6, seconds=1.5)


@pytest.fixture(scope="module")
def study(run_dir, tmp_path_factory):
    build_study(run_dir, tmp_path_factory.mktemp("study") / "s", clips=5, per_rater=2, seed=4, audio_format="wav")
    return Study.open(tmp_path_factory.getbasetemp() / "study0" / "s")


def _sine(freq, seconds=3.0, amplitude=1.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_bs1770_loudness_of_reference_sines():
    # BS.1770-4: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS; halving the amplitude is -6.02 LU.
    assert integrated_loudness(_sine(997), RATE) == pytest.approx(-3.01, abs=0.05)
    assert integrated_loudness(_sine(997, amplitude=0.5), RATE) == pytest.approx(-9.03, abs=0.05)
    assert integrated_loudness(np.zeros(RATE), RATE) == -120.0
    # K-weighting: 100 Hz is attenuated (~-1.8 dB incl. the -3 dB of a sine), highs get the shelf boost.
    assert integrated_loudness(_sine(100), RATE) < -4.5 < -2.0 < integrated_loudness(_sine(5000), RATE)


def test_matching_lowers_the_common_target_instead_of_clipping():
    clips = {"quiet": _sine(997, amplitude=0.01), "dense": np.sign(_sine(997)) * 0.9}
    gains, common, measured = matching_gains(clips, RATE, target_lufs=-3.0, peak_limit=0.99)
    assert common < -3.0
    assert max(np.abs(clips[k] * gains[k]).max() for k in clips) == pytest.approx(0.99, abs=1e-6)
    levels = [integrated_loudness(clips[k] * gains[k], RATE) for k in clips]
    assert levels == pytest.approx([common, common], abs=0.01)


def test_every_stimulus_is_loudness_matched_after_encoding(study):
    target = study.spec["loudness"]["matched_lufs"]
    levels = [integrated_loudness(load_audio(study.root / item.audio), RATE) for item in study.items.values()]
    assert len(levels) == 5 * 3 + 4
    assert max(abs(level - target) for level in levels) < 0.3
    raw = [item_["source_lufs"] for item_ in study.spec["items"]]
    assert min(abs(level - target) for level in raw) > 10.0  # the sources were far louder than the target


def test_study_json_describes_systems_clips_gold_and_hides_nothing_needed(study):
    spec = study.spec
    assert spec["systems"] == sorted(SYSTEMS) and len(spec["clips"]) == 5 and spec["per_rater"] == 2
    assert spec["scale"] == {"5": "Excellent", "4": "Good", "3": "Fair", "2": "Poor", "1": "Bad"}
    kinds = Counter(item.kind for item in study.items.values())
    assert kinds == {"test": 15, "anchor": 2, "reference": 1, "trap": 1}
    gold = {item.kind: item.expected for item in study.gold_items()}
    assert gold == {"anchor": (1, 2), "reference": (3, 5), "trap": (2, 2)}
    names = [item.audio for item in study.items.values()]
    assert len(set(names)) == len(names)
    assert not any(system in name or "clip" in name for system in SYSTEMS for name in names)
    assert len(spec["headphone_check"]["trials"]) == 3


def test_runner_reference_mix_is_no_condition_and_gold_uses_unevaluated_clips(tmp_path):
    run = make_synthetic_run(tmp_path / "run", SYSTEMS, clips=4, seconds=1.0)
    for source in (run / "mixes" / "groundtruth").iterdir():  # the runner writes its ground-truth mix here too
        (run / "mixes" / "reference").mkdir(exist_ok=True)
        (run / "mixes" / "reference" / source.name).write_bytes(source.read_bytes())
    build_study(run, tmp_path / "s", per_rater=2, seed=1, audio_format="wav")
    study = Study.open(tmp_path / "s")
    assert study.systems == sorted(SYSTEMS)
    gold_clips = {item.clip for item in study.gold_items()}
    assert len(study.clips) == 3 and not gold_clips & set(study.clips)  # one clip held out for gold items
    files = sorted((tmp_path / "s" / "audio").iterdir())
    contents = [f.read_bytes() for f in files]
    assert len(set(contents)) == len(contents) == 3 * 3 + 4 + 1 + 3  # tests, gold, volume example, headphone
    assert {f.stat().st_mtime for f in files} == {AUDIO_MTIME}
    with pytest.raises(StudyError, match="'reference' is the runner's ground-truth mix"):
        build_study(run, tmp_path / "t", systems=["reference", "fastsag"])


def test_assignment_is_balanced_randomised_and_within_rater(study):
    counts, orders = Counter(), set()
    for rater in range(10):
        sequence = study.assignment(rater)
        assert len(sequence) == 2 * 3 + 4 and len(set(sequence)) == len(sequence)
        assert not any(study.items[i].is_gold for i in sequence[:2])  # gold never first
        tests = [study.items[i] for i in sequence if not study.items[i].is_gold]
        clips = Counter(item.clip for item in tests)
        assert len(clips) == 2 and set(clips.values()) == {3}  # every system on each of the rater's clips
        counts.update(clips.keys())
        orders.add(tuple(sequence))
    assert set(counts.values()) == {4}  # 10 raters x 2 clips over 5 clips
    assert len(orders) == 10
    assert study.assignment(3) == study.assignment(3)


def test_anchor_is_a_tritone_up_reversed_and_differs_from_the_reference(run_dir):
    broken = stimuli.broken_anchor(_sine(220.0, seconds=2.0).astype(np.float32))
    assert broken.shape == (2 * RATE,)
    frequency = np.argmax(np.abs(np.fft.rfft(broken))) * RATE / len(broken)
    assert frequency == pytest.approx(220.0 * 2 ** (6 / 12), abs=1.0)  # 311.1 Hz: a tritone up
    vocals = load_audio(run_dir / "data" / "clips" / "clip000.vocals.wav")
    accompaniment = load_audio(run_dir / "data" / "clips" / "clip000.acc.wav")
    onset = _sine(220.0, seconds=2.0).astype(np.float32)
    onset[len(onset) // 5:] = 0.0  # sound only at the start...
    reversed_ = stimuli.broken_anchor(onset)
    tenth = len(onset) // 10
    assert np.abs(reversed_[-tenth:]).mean() > 0.5 and np.abs(reversed_[:tenth]).max() == 0.0  # ...ends up at the end
    assert not np.allclose(mix(vocals, stimuli.broken_anchor(accompaniment))[0], mix(vocals, accompaniment)[0])


def test_headphone_trial_has_one_soft_and_one_antiphase_tone():
    trial = stimuli.headphone_trial(soft_position=2, antiphase_position=0, sample_rate=RATE)
    tone, gap = int(stimuli.HEADPHONE_TONE_SECONDS * RATE), int(stimuli.HEADPHONE_GAP_SECONDS * RATE)
    segments = [trial[k * (tone + gap): k * (tone + gap) + tone] for k in range(3)]
    levels = [20 * np.log10(np.sqrt(np.mean(s[:, 0] ** 2))) for s in segments]
    assert levels[2] - levels[1] == pytest.approx(-6.0, abs=0.01) and levels[0] == pytest.approx(levels[1])
    np.testing.assert_allclose(segments[0][:, 1], -segments[0][:, 0])
    np.testing.assert_allclose(segments[1][:, 1], segments[1][:, 0])
    with pytest.raises(ValueError):
        stimuli.headphone_trial(1, 1, RATE)


def test_mp3_encoding_is_compact_and_decodes_to_the_same_length():
    audio = (0.3 * _sine(440, seconds=2.0)).astype(np.float32)
    encoded = stimuli.encode(audio, RATE, "mp3", "128k")
    assert encoded[:3] == b"ID3" or encoded[0] == 0xFF
    assert len(encoded) < len(stimuli.encode(audio, RATE, "wav", "128k")) / 2


def test_bad_inputs_give_one_line_errors(run_dir, tmp_path):
    with pytest.raises(StudyError, match="no run manifest"):
        build_study(tmp_path / "nowhere", tmp_path / "s")
    with pytest.raises(StudyError, match="no outputs for systems"):
        build_study(run_dir, tmp_path / "s", systems=["nosuch"])
    with pytest.raises(StudyError, match="--clips must be between 1 and 6"):
        build_study(run_dir, tmp_path / "s", clips=9)
    (tmp_path / "bad.toml").write_text("title = ")
    with pytest.raises(StudyError, match="bad.toml: not valid TOML"):
        build_study(run_dir, tmp_path / "s", preset_path=tmp_path / "bad.toml")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "ratings.sqlite").write_bytes(b"")
    with pytest.raises(StudyError, match="already holds ratings"):
        build_study(run_dir, tmp_path / "used")
    with pytest.raises(StudyError, match="no study here"):
        Study.open(tmp_path)


def test_cli_build_then_analyze_end_to_end(run_dir, tmp_path, capsys):
    out = tmp_path / "cli-study"
    assert cli.main(["listen", "build", str(run_dir), "--out", str(out), "--per-rater", "9", "--seed", "1",
                     "--format", "wav"]) == 0
    study = Study.open(out)
    with TestClient(create_app(out)) as client:
        for rater in range(6):
            session = client.post("/api/sessions", json={}).json()
            headers = {"Authorization": f"Bearer {session['token']}"}
            for public in session["items"]:
                item = study.items[public["id"]]
                # The synthetic systems are ordered by quality: groundtruth > fastsag > randsong.
                score = {"groundtruth": 5, "fastsag": 3 + rater % 2, "randsong": 1 + rater % 2}.get(item.system)
                score = score or item.expected[0]
                client.post(f"/api/sessions/{session['rater_id']}/ratings",
                            json={"item_id": item.id, "score": score, "plays": 1},
                            headers=headers)
    assert cli.main(["listen", "analyze", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| groundtruth | 4.15 (Human-composed) | 5.00 |" in printed
    assert "| fastsag | 3.13 (FastSAG) | 3.50 |" in printed
    table = json.loads((out / "analysis" / "summary.json").read_text())
    assert [row["system"] for row in table["mos"]] == ["groundtruth", "randsong", "fastsag"]
    assert {p.name for p in (out / "analysis").iterdir()} >= {"table3.csv", "table3.md", "table3.tex", "table3.png",
                                                              "pairwise.csv", "raters.csv", "ratings.csv"}
    assert cli.main(["listen", "analyze", str(tmp_path / "none")]) == 2


def test_study_mixes_by_the_runs_recorded_levels_and_gains(tmp_path):
    from sag_bench.evaluation.protocol import level
    from sag_bench.listening_test.build import RunLevels
    from sag_bench.runs import RunManifest, RunStore

    store = RunStore(tmp_path / "run")
    store.write_manifest(RunManifest(spec={"protocol": {"gain": 0.7, "levels": "authors"}}, seeds={"run": 0}))
    levels = RunLevels.of(store)
    assert levels == RunLevels("authors", 0.7)
    vocals, accompaniment = _sine(220.0, 0.5, 0.1), _sine(330.0, 0.5, 0.05)
    def as_mixed(summed):  # peaks above full scale are rescaled to 0.99, as in the run's mixes
        return summed * min(1.0, 0.99 / np.abs(summed).max())

    human = level(vocals, "authors") + level(accompaniment, "authors")  # no gain on the human accompaniment
    np.testing.assert_allclose(levels.human(vocals, accompaniment), as_mixed(human), atol=1e-6)
    generated = level(vocals, "authors") + 0.7 * level(accompaniment, "authors")
    np.testing.assert_allclose(levels.generated(vocals, accompaniment), as_mixed(generated), atol=1e-6)
    old = RunStore(tmp_path / "old")  # a run made before levels were recorded: raw stems, as it was mixed
    old.write_manifest(RunManifest(spec={"protocol": {"gain": 0.9}}, seeds={"run": 0}))
    np.testing.assert_allclose(RunLevels.of(old).generated(vocals, accompaniment), vocals + 0.9 * accompaniment,
                               atol=1e-7)


def test_default_study_fits_about_fifteen_minutes_and_per_rater_counts_ratings(run_dir, tmp_path, capsys):
    from sag_bench.listening_test.build import clips_per_rater, session_minutes

    assert clips_per_rater(None, systems=9, gold=4, clip_seconds=10.0) == 5  # 45 ratings: 13.7 minutes
    assert 13 < session_minutes(45, 4, 10.0) <= 15 < session_minutes(54, 4, 10.0)
    assert clips_per_rater(140, systems=7, gold=4, clip_seconds=10.0) == 20  # the FastSAG paper's 20 clips
    out = tmp_path / "by-ratings"
    assert cli.main(["listen", "build", str(run_dir), "--out", str(out), "--per-rater", "7", "--format", "wav"]) == 0
    spec = json.loads((out / "study.json").read_text())
    assert spec["per_rater"] == 7 // len(spec["systems"]) and "about" in capsys.readouterr().out
    assert Study.open(out).public()["estimated_minutes"] == spec["estimated_minutes"] >= 2


def test_serve_without_the_listen_extra_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert cli.main(["listen", "serve", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "pip install 'sag-bench[listen]'" in error
