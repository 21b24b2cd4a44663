"""SingSong system end to end on tiny parts: windows, stages, timer, seeds; training writes a usable checkpoint."""

from __future__ import annotations

import csv
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from sag_bench.errors import UserError
from sag_bench.systems.singsong.checkpoint import SingSongBundle, build_stage, load_bundle
from sag_bench.systems.singsong.config import STAGES, StageConfig, load_preset
from sag_bench.systems.singsong.system import SingSongSystem
from sag_bench.systems.singsong.tokenizer import fit_tokenizer
from sag_bench.timing import StageTimer

pytestmark = pytest.mark.usefixtures("one_thread")  # token-by-token decoding: one torch thread

SR = 24_000
SMALL = StageConfig(dim=16, depth=1, heads=2, temperature=1.0, batch_size=2, steps=3, checkpoint_every=2)


def _tone(seconds: float, freq: float, seed: int) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    noise = torch.randn(t.shape, generator=torch.Generator().manual_seed(seed))
    return 0.4 * torch.sin(2 * math.pi * freq * t) + 0.01 * noise


def _tiny_config():
    config = load_preset("tiny")
    return replace(config, semantic_vocab=8, kmeans_max_frames=1000, window_seconds=0.2,
                   codec_options={"codebook_size": 16, "kmeans_iters": 3, "griffin_lim_iters": 2},
                   stages={s: SMALL for s in STAGES})


@pytest.fixture(scope="module")
def bundle() -> SingSongBundle:
    config = _tiny_config()
    torch.manual_seed(0)
    tokenizer = fit_tokenizer(config, [_tone(1.0, 220, 0)], [_tone(1.0, 330, 1)], seed=0)
    return SingSongBundle(config, tokenizer, {s: build_stage(config, tokenizer, s).eval() for s in STAGES})


def test_generate_shapes_seeds_and_timer(bundle):
    vocals = torch.stack([_tone(0.5, 440, 2), _tone(0.5, 262, 3)])  # 38 frames: windows of 15 at 0.2 s
    system = SingSongSystem.from_bundle(bundle, stages="scf")
    system.load("cpu")
    system.timer = StageTimer()
    out = system.generate(vocals, seed=7)
    assert out.shape == vocals.shape and torch.isfinite(out).all() and out.abs().max() > 0
    assert set(system.timer.seconds) == {"semantic", "semantic-stage", "coarse-stage", "fine-stage", "codec-decode"}
    assert torch.equal(system.generate(vocals, seed=7), out)
    assert not torch.equal(system.generate(vocals, seed=8), out)
    sc = SingSongSystem.from_bundle(bundle, stages="sc")
    sc.load("cpu")
    sc.timer = StageTimer()
    assert sc.generate(vocals, seed=7).shape == vocals.shape
    assert "fine-stage" not in sc.timer.seconds


def test_uncached_decoding_generates_the_same_audio(bundle):
    vocals = _tone(0.3, 440, 4)[None]
    cached = SingSongSystem.from_bundle(bundle, stages="sc", cache_kv=True)
    uncached = SingSongSystem.from_bundle(bundle, stages="sc", cache_kv=False)
    for system in (cached, uncached):
        system.load("cpu")
    torch.testing.assert_close(cached.generate(vocals, seed=1), uncached.generate(vocals, seed=1))


def test_a_clips_output_does_not_depend_on_its_batch(bundle):
    vocals = torch.stack([_tone(0.3, 440, 4), _tone(0.3, 330, 4), _tone(0.3, 262, 4)])
    system = SingSongSystem.from_bundle(bundle, stages="scf")
    system.load("cpu")
    together = system.generate(vocals, seed=3, clip_ids=["a", "b", "c"])
    alone = system.generate(vocals[[2]], seed=3, clip_ids=["c"])
    torch.testing.assert_close(alone[0], together[2], atol=1e-5, rtol=0)
    assert not torch.allclose(system.generate(vocals[[2]], seed=3, clip_ids=["d"]), alone, atol=1e-3)


def test_bad_options_and_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="stages"):
        SingSongSystem(stages="cf")
    with pytest.raises(UserError, match="unknown singsong option"):
        SingSongSystem(stages="sc", top_p=0.9)
    with pytest.raises(UserError, match="checkpoint"):
        SingSongSystem(stages="sc").load("cpu")
    with pytest.raises(UserError, match="config.json"):
        SingSongSystem(checkpoint=tmp_path, stages="sc").load("cpu")


def test_train_three_stages_then_generate(tmp_path, monkeypatch, dataset_builder):
    from sag_bench.systems.singsong import train as train_module

    monkeypatch.setattr(train_module, "load_preset", lambda name: _tiny_config())
    data, ckpt = tmp_path / "data", tmp_path / "ckpt"
    dataset_builder(data, songs=2, clips_per_song=1, seconds=1.0, all_train=True)
    for stage in STAGES:
        assert train_module.train(data, ckpt, "tiny", stage, steps=3, seed=0, device="cpu") == ckpt
        with open(ckpt / "runs" / stage / "losses.csv") as handle:
            rows = list(csv.DictReader(handle))
        assert [int(r["step"]) for r in rows] == [0, 1, 2] and all(np.isfinite(float(r["loss"])) for r in rows)
    with pytest.raises(UserError, match="--resume"):
        train_module.train(data, ckpt, "tiny", "fine", steps=3, seed=0, device="cpu")
    with pytest.raises(UserError, match="preset"):
        train_module.train(data, ckpt, "paper", "fine", steps=3, seed=0, device="cpu")
    loaded = load_bundle(ckpt, STAGES)
    trained = torch.load(ckpt / "runs" / "fine" / "checkpoint.pt", weights_only=False)["model"]
    for name, value in loaded.models["fine"].state_dict().items():
        torch.testing.assert_close(value, trained[name].float(), atol=1e-2, rtol=1e-3)  # float16 export
    system = SingSongSystem(checkpoint=ckpt, stages="scf")
    system.load("cpu")
    vocals = _tone(0.5, 392, 9)[None]
    assert system.generate(vocals, seed=0).shape == vocals.shape


def test_committed_tiny_checkpoint_generates_for_both_systems():
    """The demo checkpoint in the package serves singsong-sc and singsong-scf through the registry, offline."""
    from pathlib import Path

    from sag_bench import registry
    import sag_bench

    ckpt = Path(sag_bench.__file__).parent / "checkpoints" / "singsong"
    size = sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())
    assert size <= 8 * 2**20
    vocals = _tone(1.0, 392, 11)[None]
    outputs = {}
    for name in ("singsong-sc", "singsong-scf"):
        system = registry.build("systems", name, checkpoint=ckpt)
        system.load("cpu")
        outputs[name] = system.generate(vocals, seed=0)
        assert outputs[name].shape == vocals.shape and torch.isfinite(outputs[name]).all()
        assert outputs[name].abs().max() > 1e-3
    assert not torch.equal(outputs["singsong-sc"], outputs["singsong-scf"])


def test_long_input_uses_overlapping_prompted_windows(bundle, monkeypatch):
    """30 s through the paper's windows (semantic 10 s at 50 % overlap, coarse 4 s at 50 %, fine 2 s at 100 %):
    each semantic window after the first is prompted with the previous window's last 5 s of generated tokens."""
    from sag_bench.systems.singsong.stages import StageLM

    windows = {"semantic": (10.0, 0.5), "coarse": (4.0, 0.5), "fine": (2.0, 1.0)}
    config = replace(bundle.config, stages={s: replace(SMALL, window_seconds=w, window_hop=h)
                                            for s, (w, h) in windows.items()})
    long = SingSongBundle(config, bundle.tokenizer, {s: build_stage(config, bundle.tokenizer, s).eval()
                                                      for s in STAGES})
    calls = []
    original = StageLM.generate

    def recording(self, condition, *args, prompt=None, **kwargs):
        out = original(self, condition, *args, prompt=prompt, **kwargs)
        calls.append((self.layout.target.name, condition.shape[-1], prompt, out))
        return out

    monkeypatch.setattr(StageLM, "generate", recording)
    system = SingSongSystem.from_bundle(long, stages="scf")
    system.load("cpu")
    vocals = _tone(30.0, 330, 5)[None]
    out = system.generate(vocals, seed=0)
    assert out.shape == (1, 30 * SR) and torch.isfinite(out).all()
    semantic = [c for c in calls if c[0] == "semantic"]
    assert [c[1] for c in semantic] == [750] * 5  # 2250 frames: windows start at 0, 375, 750, 1125, 1500
    assert semantic[0][2] is None and semantic[0][3].shape[-1] == 750
    for previous, current in zip(semantic, semantic[1:]):
        prompt = current[2]
        assert prompt.shape[-1] == 375  # the previous 5 s ...
        assert torch.equal(prompt, previous[3][..., -375:])  # ... of what the previous window generated
        assert current[3].shape[-1] == 375
    coarse = [c for c in calls if c[0] == "coarse"]
    assert len(coarse) == 14 and all(c[2].shape[-1] == 150 for c in coarse[1:])  # 4 s windows, 2 s prompts
    fine = [c for c in calls if c[0] == "fine"]
    assert len(fine) == 1 and fine[0][1] == 150 and fine[0][3].shape[0] == 15  # 15 independent 2 s windows


def test_coarse_stage_conditioned_on_vocal_semantics_too(bundle, monkeypatch):
    """coarse_condition = "semantic+vocal": the coarse stage sees the accompaniment's and the vocals' semantic ids."""
    from sag_bench.systems.singsong.stages import StageLM

    config = replace(bundle.config, coarse_condition="semantic+vocal")
    both = SingSongBundle(config, bundle.tokenizer, {s: build_stage(config, bundle.tokenizer, s).eval() for s in STAGES})
    assert both.models["coarse"].layout.condition.n_codebooks == 2
    assert both.models["coarse"].layout.vocab_size == 2 * 8 + 3 * 16
    seen = {}
    original = StageLM.generate_windows

    def recording(self, condition, *args, **kwargs):
        out = original(self, condition, *args, **kwargs)
        seen[self.layout.target.name] = (condition, out)
        return out

    monkeypatch.setattr(StageLM, "generate_windows", recording)
    system = SingSongSystem.from_bundle(both, stages="sc")
    system.load("cpu")
    vocals = _tone(0.5, 440, 2)[None]
    assert system.generate(vocals, seed=3).shape == vocals.shape
    condition = seen["coarse"][0]
    assert condition.shape[1] == 2
    assert torch.equal(condition[:, :1], seen["semantic"][1])  # generated accompaniment semantics ...
    assert torch.equal(condition[:, 1:], seen["semantic"][0])  # ... and the vocals' semantic ids
    with pytest.raises(UserError, match="coarse_condition"):
        replace(bundle.config, coarse_condition="vocal")


def test_training_windows_carry_the_vocal_semantics_for_the_coarse_option():
    from sag_bench.systems.singsong.stages import stage_layout
    from sag_bench.systems.singsong.train import WindowDataset

    tokens = {"semantic": [torch.full((1, 20), 5)], "coarse": [torch.zeros(3, 20, dtype=torch.long)],
              "fine": [torch.zeros(5, 20, dtype=torch.long)]}
    vocal_ids = lambda clip, start, frames: torch.full((1, frames), 3)  # noqa: E731
    layout = stage_layout("coarse", 8, 16, coarse_condition="semantic+vocal")
    item = WindowDataset(tokens, "coarse", 6, layout, vocal_ids)[0]
    assert item["condition"].tolist() == [[5] * 6, [3] * 6] and item["target"].shape == (3, 6)
    plain = WindowDataset(tokens, "coarse", 6, stage_layout("coarse", 8, 16))[0]
    assert plain["condition"].tolist() == [[5] * 6]
    with pytest.raises(ValueError, match="vocal ids"):
        WindowDataset(tokens, "coarse", 6, layout)
