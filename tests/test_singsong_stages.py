"""SingSong stages: token layout, loss on targets only, KV-cached decoding, per-codebook vocabulary ranges."""

from __future__ import annotations

import pytest
import torch

from sag_bench.systems.singsong.config import N_COARSE, N_FINE, StageConfig, load_preset
from sag_bench.systems.singsong.decoding import KVCacheDecoder
from sag_bench.systems.singsong.sampling import sample_in_range, sample_tokens
from sag_bench.systems.singsong.stages import StageLM, stage_layout

SEMANTIC_VOCAB, CODEBOOK = 16, 32
SMALL = StageConfig(dim=32, depth=2, heads=2, temperature=1.0, top_k_fraction=0.5)


pytestmark = pytest.mark.usefixtures("one_thread")  # token-by-token decoding: one torch thread


def _model(stage: str, frames: int = 6, seed: int = 0) -> StageLM:
    torch.manual_seed(seed)
    return StageLM(stage_layout(stage, SEMANTIC_VOCAB, CODEBOOK), SMALL, max_frames=frames).eval()


def test_layout_sizes_and_round_trip():
    layout = stage_layout("fine", SEMANTIC_VOCAB, CODEBOOK)
    assert layout.vocab_size == (N_COARSE + N_FINE) * CODEBOOK
    assert layout.seq_len(750) == 750 * 8  # paper: 2250 coarse + 3750 fine tokens per 10 s
    codes = torch.randint(0, CODEBOOK, (2, N_FINE, 7))
    tokens = layout.target_tokens(codes)
    assert tokens.shape == (2, 7 * N_FINE)
    # time-major: frame 0 codebooks 0..4, then frame 1 ...; codebook q shifted by q * CODEBOOK after the condition
    assert tokens[0, 1].item() == N_COARSE * CODEBOOK + CODEBOOK + codes[0, 1, 0].item()
    assert tokens[0, N_FINE].item() == N_COARSE * CODEBOOK + codes[0, 0, 1].item()
    assert torch.equal(layout.target_codes(tokens), codes)
    ranges = layout.target_ranges(7)
    assert ((tokens[0] >= ranges[:, 0]) & (tokens[0] < ranges[:, 1])).all()


def test_layout_rejects_codes_out_of_range():
    layout = stage_layout("coarse", SEMANTIC_VOCAB, CODEBOOK)
    with pytest.raises(ValueError, match="outside"):
        layout.condition_tokens(torch.full((1, 1, 4), SEMANTIC_VOCAB))


def test_loss_covers_target_tokens_only():
    model = _model("coarse")
    cond = torch.randint(0, SEMANTIC_VOCAB, (2, 1, 6))
    target = torch.randint(0, CODEBOOK, (2, N_COARSE, 6))
    loss = model.loss(cond, target)
    seq, prefix = model.sequence(cond, target)
    assert prefix == 6 and seq.shape == (2, 6 + 18)
    logits = model.net(seq[:, :-1])[:, prefix - 1:]
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), seq[:, prefix:].reshape(-1))
    torch.testing.assert_close(loss, expected)
    # untrained: close to uniform over the whole vocabulary
    assert abs(loss.item() - torch.log(torch.tensor(float(model.layout.vocab_size))).item()) < 1.0
    loss.backward()
    assert model.net.token_emb.emb.weight.grad.abs().sum() > 0


def test_kv_cached_and_uncached_logits_match():
    model = _model("fine", frames=5)
    seq = torch.randint(0, model.layout.vocab_size, (2, model.layout.seq_len(5)))
    prefix = model.layout.seq_len(5) // 2
    decoder = KVCacheDecoder(model.net, batch=2, max_len=seq.shape[1])
    vocab = model.layout.vocab_size
    with torch.inference_mode():
        full = model.net(seq)
        hidden = decoder.feed(seq[:, :prefix])  # the prefix in one call (causal inside it)
        torch.testing.assert_close(decoder.logits(hidden, 0, vocab), full[:, prefix - 1], atol=1e-4, rtol=1e-4)
        for step in range(prefix, seq.shape[1] - 3):
            hidden = decoder.feed(seq[:, step:step + 1])
            torch.testing.assert_close(decoder.logits(hidden, 0, vocab), full[:, step], atol=1e-4, rtol=1e-4)
        hidden = decoder.feed(seq[:, -3:])  # several tokens after a cache: causal mask offset by the cache
        torch.testing.assert_close(decoder.logits(hidden, 5, 40), full[:, -1, 5:40], atol=1e-4, rtol=1e-4)
    assert decoder.length == seq.shape[1]
    with pytest.raises(ValueError, match="exceeds"):
        decoder.feed(seq[:, :1])


def test_cached_and_uncached_sampling_agree_and_are_seeded():
    model = _model("semantic", frames=8)
    cond = torch.randint(0, SEMANTIC_VOCAB, (2, 1, 8))
    runs = [model.generate(cond, torch.Generator().manual_seed(3), cache_kv=cache) for cache in (True, False, True)]
    assert runs[0].shape == (2, 1, 8)
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])
    other = model.generate(cond, torch.Generator().manual_seed(4))
    assert not torch.equal(runs[0], other)


@pytest.mark.parametrize("stage, n_q, size", [("semantic", 1, SEMANTIC_VOCAB), ("coarse", N_COARSE, CODEBOOK),
                                               ("fine", N_FINE, CODEBOOK)])
def test_sampled_tokens_stay_in_their_codebook_range(stage, n_q, size):
    model = _model(stage, frames=6)
    # push all probability mass onto the wrong codebooks: sampling must still stay in range
    with torch.no_grad():
        model.net.to_logits.bias = None
        model.net.to_logits.weight[: model.layout.target_offset] += 10.0
    cond_q = model.layout.condition.n_codebooks
    cond = torch.randint(0, model.layout.condition.codebook_size, (3, cond_q, 6))
    codes = model.generate(cond, torch.Generator().manual_seed(0), temperature=2.0)
    assert codes.shape == (3, n_q, 6)
    assert codes.min() >= 0 and codes.max() < size


def test_sample_in_range_top_k_and_greedy():
    logits = torch.tensor([[0.0, 5.0, 1.0, 3.0, 2.0, 2.5]])
    assert sample_in_range(logits[:, 0:3], 0, 0.0, 0.1, None).item() == 1  # greedy inside [0, 3)
    gen = torch.Generator().manual_seed(0)
    picks = {sample_in_range(logits[:, 2:6], 2, 1.0, 0.5, gen).item() for _ in range(50)}
    assert picks == {3, 5}  # top-2 of [1, 3, 2, 2.5] inside [2, 6)


def test_presets_load():
    tiny, paper = load_preset("tiny"), load_preset("paper")
    assert paper.semantic_vocab == 1024 and paper.noise_sigma == 0.01 and paper.window_seconds == 10.0
    assert (paper.stage("coarse").dim, paper.stage("coarse").depth, paper.stage("coarse").heads) == (1024, 6, 8)
    assert [paper.stage(s).temperature for s in ("semantic", "coarse", "fine")] == [1.0, 0.95, 0.4]
    assert tiny.codec == "mel-rvq" and tiny.semantic_backbone == "dsp-semantic"


@pytest.mark.parametrize("stage, window, hop", [("semantic", 6, 3), ("coarse", 4, 2), ("fine", 3, 3)])
def test_windowed_cached_and_uncached_tokens_are_identical(stage, window, hop):
    """Per-stage windows (prompted when the hop is below the window): the KV cache changes no sampled token."""
    model = _model(stage, frames=window, seed=1)
    cond = torch.randint(0, model.layout.condition.codebook_size, (2, model.layout.condition.n_codebooks, 11))
    cached, uncached = (model.generate_windows(cond, hop, torch.Generator().manual_seed(5), cache_kv=cache)
                        for cache in (True, False))
    assert cached.shape == (2, model.layout.target.n_codebooks, 11)
    assert torch.equal(cached, uncached)


def test_prompted_window_continues_its_prompt():
    model = _model("coarse", frames=6)
    cond = torch.randint(0, SEMANTIC_VOCAB, (1, 1, 6))
    prompt = torch.randint(0, CODEBOOK, (1, N_COARSE, 4))
    new = model.generate(cond, torch.Generator().manual_seed(0), prompt=prompt)
    assert new.shape == (1, N_COARSE, 2)
    # the same as feeding the prompt's tokens as a prefix by hand
    prefix = torch.cat([model.layout.condition_tokens(cond), model.layout.target_tokens(prompt)], dim=1)
    by_hand = model.layout.target_codes(sample_tokens(model.net, prefix, model.layout.target_ranges(6)[12:], 1.0,
                                                      0.5, torch.Generator().manual_seed(0)))
    assert torch.equal(new, by_hand)
