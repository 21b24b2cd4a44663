"""SingSong training as the paper describes it: vocal noise drawn at every step, real gradient accumulation."""

from __future__ import annotations

import pytest
import torch

from sag_bench.systems.singsong.config import StageConfig, load_preset
from sag_bench.systems.singsong.stages import StageLM, stage_layout
from sag_bench.systems.singsong.train import NoisyVocalIds, WindowDataset, stage_loss
from sag_bench.training import LoopSettings, seed_everything, step_seed, train_loop

SEMANTIC_VOCAB, CODEBOOK, FRAMES, WINDOW = 16, 32, 12, 6


class _FakeTokenizer:
    """What NoisyVocalIds uses of a tokenizer: hop, frame count, and ids (here: 1 where a frame's mean is > 0)."""

    hop = 4
    centroids = torch.zeros(1)

    def num_frames(self, samples: int) -> int:
        return -(-samples // self.hop)

    def semantic_ids(self, audio: torch.Tensor, frames: int) -> torch.Tensor:
        return (audio.view(1, 1, frames, self.hop).mean(-1) > 0).long()


def _noisy_vocals(step: int, clip: int, seed: int = 0) -> torch.Tensor:
    ids = NoisyVocalIds(_FakeTokenizer(), [torch.zeros(40), torch.zeros(40)], sigma=0.01, context_frames=2)
    seed_everything(step_seed(seed, step))  # what the training loop does before each step
    return ids.noisy_audio(clip, 0, 10)


def test_vocal_noise_is_fresh_each_step_and_seeded_by_seed_step_and_clip():
    first = _noisy_vocals(step=0, clip=0)
    assert first.shape == (1, 40) and 0.005 < float(first.std()) < 0.02  # sigma 0.01 on silent vocals
    assert torch.equal(first, _noisy_vocals(step=0, clip=0))  # reproducible
    assert not torch.equal(first, _noisy_vocals(step=1, clip=0))  # new noise at the next step
    assert not torch.equal(first, _noisy_vocals(step=0, clip=1))  # independent per clip
    assert not torch.equal(first, _noisy_vocals(step=0, clip=0, seed=1))  # and per run seed


def test_vocal_ids_of_a_window_come_from_its_noisy_audio_with_context():
    vocals = torch.cat([-torch.ones(20), torch.ones(20)])  # frames 0-4 negative, 5-9 positive (hop 4)
    ids = NoisyVocalIds(_FakeTokenizer(), [vocals], sigma=0.01, context_frames=2)
    seed_everything(step_seed(0, 0))
    assert ids(0, 3, 4).tolist() == [[0, 0, 1, 1]]
    assert ids(0, 8, 2).tolist() == [[1, 1]]  # context clipped at the clip's end


def _fine_windows() -> WindowDataset:
    generator = torch.Generator().manual_seed(3)
    tokens = {"semantic": [], "coarse": [torch.randint(CODEBOOK, (3, FRAMES), generator=generator) for _ in range(8)],
              "fine": [torch.randint(CODEBOOK, (5, FRAMES), generator=generator) for _ in range(8)]}
    return WindowDataset(tokens, "fine", WINDOW, stage_layout("fine", SEMANTIC_VOCAB, CODEBOOK))


def _train(tmp_path, batch_size: int, accumulate: int, steps: int) -> StageLM:
    torch.manual_seed(0)
    model = StageLM(stage_layout("fine", SEMANTIC_VOCAB, CODEBOOK),
                    StageConfig(dim=32, depth=1, heads=2, temperature=1.0), max_frames=WINDOW)
    settings = LoopSettings(steps=steps, batch_size=batch_size, accumulate=accumulate, lr=1e-3, seed=5,
                            checkpoint_every=100, device="cpu", optimizer="adamw", weight_decay=0.01)
    train_loop(model, _fine_windows(), stage_loss, settings, tmp_path / f"b{batch_size}a{accumulate}s{steps}")
    return model


@pytest.mark.parametrize("batch_size, accumulate", [(2, 2), (1, 4)])
def test_accumulated_micro_batches_give_the_gradient_and_update_of_one_big_batch(tmp_path, batch_size, accumulate):
    whole = _train(tmp_path, 4, 1, steps=1)
    accumulated = _train(tmp_path, batch_size, accumulate, steps=1)
    for (name, a), b in zip(whole.named_parameters(), accumulated.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-6, rtol=1e-4, msg=name)  # the gradient of step 0
    whole, accumulated = _train(tmp_path, 4, 1, steps=3), _train(tmp_path, batch_size, accumulate, steps=3)
    for a, b in zip(whole.parameters(), accumulated.parameters()):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)  # and the weights after three updates


def test_paper_preset_uses_the_re_implementations_batches_and_accumulation():
    paper = load_preset("paper")
    assert [(paper.stage(s).batch_size, paper.stage(s).accumulate) for s in ("semantic", "coarse", "fine")] == \
        [(24, 1), (12, 4), (4, 4)]
    with pytest.raises(ValueError, match="accumulate"):
        LoopSettings(steps=1, batch_size=1, lr=1e-3, accumulate=0)
