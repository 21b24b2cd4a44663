"""DemucsSeparator: the demucs.api code path with a small random HTDemucs, and the offline weights check."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sag_bench.audio import peak_rms_db, resample
from sag_bench.backbones.base import Separator, WeightsMissingError
from sag_bench.backbones.separator import DemucsSeparator, check_weights
from tests.separator_helpers import hide_pretrained_weights, small_htdemucs, small_separator



@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the torch hub and Hugging Face caches at empty folders."""
    return hide_pretrained_weights(tmp_path, monkeypatch)


def test_separate_returns_mono_24k_stems_of_the_input_duration(one_thread: None) -> None:
    separator = small_separator()
    assert isinstance(separator, Separator) and separator.model_sample_rate == 44_100
    rng = np.random.default_rng(0)
    stereo = torch.from_numpy(rng.standard_normal((2, 3 * 44_100)).astype(np.float32) * 0.1)
    vocals, accompaniment = separator.separate(stereo, 44_100)
    assert vocals.shape == accompaniment.shape == (3 * 24_000,)
    assert vocals.dtype == torch.float32 and torch.isfinite(vocals).all()
    mono = torch.from_numpy(rng.standard_normal(int(2.5 * 24_000)).astype(np.float32) * 0.1)
    assert separator.separate(mono, 24_000)[0].shape == (60_000,)
    assert separator.describe() == {"name": "htdemucs", "offline": False, "model": "small-random-htdemucs",
                                    "pretrained": False, "model_sample_rate": 44_100}


def test_separation_is_seeded_and_accompaniment_is_the_other_stems(one_thread: None) -> None:
    separator = small_separator(seed=3)
    mixture = torch.from_numpy(np.random.default_rng(1).standard_normal((2, 88_200)).astype(np.float32) * 0.1)
    vocals, accompaniment = separator.separate(mixture, 44_100)
    again = separator.separate(mixture, 44_100)
    assert torch.equal(vocals, again[0]) and torch.equal(accompaniment, again[1])
    random.seed(3)  # the separator's seed drives demucs's random shift
    _, stems = separator._api.separate_tensor(mixture, 44_100)
    expected = {"vocals": stems["vocals"], "accompaniment": stems["drums"] + stems["bass"] + stems["other"]}
    for name, got in (("vocals", vocals), ("accompaniment", accompaniment)):
        mono = resample(expected[name].mean(dim=0).numpy(), 44_100, 24_000)
        np.testing.assert_allclose(got.numpy(), mono, atol=1e-6)


def test_missing_weights_raise_naming_the_checkpoint(empty_caches: Path) -> None:
    with pytest.raises(WeightsMissingError, match="955717e8-8726e21a.th"):
        DemucsSeparator("htdemucs")


def test_cached_legacy_checkpoint_passes_the_check(empty_caches: Path) -> None:
    checkpoint = empty_caches / "checkpoints" / "955717e8-8726e21a.th"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    check_weights("htdemucs")  # does not raise: demucs would load it from here


def test_model_without_vocals_is_refused() -> None:
    from demucs.htdemucs import HTDemucs

    model = HTDemucs(sources=["drums", "bass"], channels=4, depth=2, t_layers=1, t_heads=1)
    with pytest.raises(ValueError, match="no 'vocals' source"):
        DemucsSeparator(model_obj=model)


def test_output_gain_of_the_test_model_lifts_stems_by_20_db(one_thread: None) -> None:
    mixture = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 44_100)).astype(np.float32) * 0.1)
    quiet = DemucsSeparator(model_obj=small_htdemucs(0, output_gain=1.0)).separate(mixture, 44_100)[0]
    loud = DemucsSeparator(model_obj=small_htdemucs(0, output_gain=10.0)).separate(mixture, 44_100)[0]
    # not exactly x10: HTDemucs adds the input mean back after its last layers
    assert peak_rms_db(loud.numpy()) - peak_rms_db(quiet.numpy()) == pytest.approx(20.0, abs=1.0)
