"""RTF harness: warm-up excluded, per-stage breakdown from the installed StageTimer, statistics, seeds; the two
scopes (end-to-end: file in -> file out; model-only: generate on decoded tensors)."""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pytest
import torch

from sag_bench.audio import load_audio, save_audio
from sag_bench.evaluation.rtf import END_TO_END, MODEL_ONLY, UNATTRIBUTED_STAGE, measure_end_to_end_rtf, measure_rtf
from sag_bench.systems.base import System
from sag_bench.timing import NullTimer, StageTimer

SR = 24_000
ENCODE_S, SAMPLE_S, OTHER_S, WARMUP_EXTRA_S = 0.02, 0.04, 0.01, 0.3


class TimedSystem(System):
    """Spends known wall time in two reported stages and some outside any stage; the first call is slow."""

    name = "timed"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int, list[str] | None]] = []

    def generate(self, vocals: torch.Tensor, seed: int, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
        self.calls.append((seed, vocals.shape[0], list(clip_ids) if clip_ids else None))
        if len(self.calls) == 1:
            time.sleep(WARMUP_EXTRA_S)
        with self.timer.stage("encoder"):
            time.sleep(ENCODE_S)
        with self.timer.stage("sampler"):
            time.sleep(SAMPLE_S)
        time.sleep(OTHER_S)
        return torch.zeros_like(vocals)


def test_rtf_excludes_warmup_and_breaks_down_stages() -> None:
    system = TimedSystem()
    clips = [np.zeros(SR // 2, np.float32) for _ in range(4)]  # 0.5 s each
    result = measure_rtf(system, clips, warmup=1, batch_size=2, seed=10, clip_ids=["a", "b", "c", "d"])
    assert [c[0] for c in system.calls] == [10, 10, 11]  # warm-up (seed 10), then batches 0 and 1
    assert [c[2] for c in system.calls] == [["a", "b"], ["a", "b"], ["c", "d"]]
    assert (result.batches, result.batch_size, result.warmup) == (2, 2, 1)
    assert result.audio_seconds == pytest.approx(2.0)
    per_batch = ENCODE_S + SAMPLE_S + OTHER_S
    assert result.rtf == pytest.approx(per_batch / 1.0, rel=0.5)  # a batch generates 2 x 0.5 s
    assert result.rtf < WARMUP_EXTRA_S / 1.0  # the slow warm-up call is not counted
    assert set(result.stage_seconds) == {"encoder", "sampler", UNATTRIBUTED_STAGE}
    assert result.stage_seconds["encoder"] == pytest.approx(ENCODE_S, rel=0.5)
    assert result.stage_seconds["sampler"] == pytest.approx(SAMPLE_S, rel=0.5)
    assert result.stage_seconds["sampler"] > result.stage_seconds["encoder"]
    assert sum(result.stage_rtf.values()) == pytest.approx(result.rtf, rel=1e-6)
    assert result.rtf_median <= result.rtf_p95 and result.rtf_mean > 0
    assert isinstance(system.timer, NullTimer) and not isinstance(system.timer, StageTimer)
    record = result.to_dict()
    assert record["threads"] == torch.get_num_threads() and record["device"] == "cpu" and record["dtype"] == "float32"
    assert record["device_name"]


class LinearSystem(System):
    """A real (tiny) network whose parameters set the reported dtype."""

    name = "linear"

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Conv1d(1, 1, 9, padding=4).double()

    def generate(self, vocals: torch.Tensor, seed: int, clip_ids: Sequence[str] | None = None) -> torch.Tensor:
        with self.timer.stage("net"):
            return self.net(vocals[:, None].double())[:, 0].float()


def test_rtf_records_model_dtype_and_rejects_bad_input() -> None:
    result = measure_rtf(LinearSystem(), [np.zeros(SR, np.float32)] * 3, warmup=0)
    assert result.dtype == "float64" and result.batches == 3 and result.audio_seconds == pytest.approx(3.0)
    with pytest.raises(ValueError, match="at least one clip"):
        measure_rtf(LinearSystem(), [])
    with pytest.raises(ValueError, match="2 clip ids for 1 clips"):
        measure_rtf(LinearSystem(), [np.zeros(10, np.float32)], clip_ids=["a", "b"])


def test_end_to_end_rtf_reads_resamples_generates_and_writes_each_file(tmp_path) -> None:
    rate = 16_000  # not the system's rate: reading includes the resampling, as the paper's RTF does
    files = []
    for index in range(2):
        t = np.arange(rate) / rate
        files.append(save_audio(tmp_path / f"in{index}.wav", (0.3 * np.sin(2 * np.pi * (220 + 110 * index) * t))
                                .astype(np.float32), rate))
    system = LinearSystem()
    result = measure_end_to_end_rtf(system, files, tmp_path / "out", warmup=1, clip_ids=["a", "b"])
    assert (result.scope, result.batches, result.batch_size, result.warmup) == (END_TO_END, 2, 1, 1)
    assert result.audio_seconds == pytest.approx(2.0)
    assert {"read", "net", "write", UNATTRIBUTED_STAGE} == set(result.stage_seconds)
    assert sum(result.stage_rtf.values()) == pytest.approx(result.rtf, rel=1e-6)
    for name, path in zip("ab", files):
        vocals = torch.from_numpy(load_audio(path, SR))[None]
        with torch.inference_mode():
            expected = system.generate(vocals, seed=0)[0].numpy()
        written = load_audio(tmp_path / "out" / f"{name}.wav", SR)
        assert len(written) == SR  # 1 s at 16 kHz in -> 1 s at 24 kHz out
        np.testing.assert_allclose(written, expected, atol=1e-6)
    model_only = measure_rtf(system, [load_audio(path, SR) for path in files], warmup=0)
    assert model_only.scope == MODEL_ONLY and "read" not in model_only.stage_seconds
