"""Generic long-input windowing: coverage, crossfade, padding of short inputs, batch-independence of seeds."""

from __future__ import annotations

import pytest
import torch

from sag_bench.systems.windowing import generate_windowed, window_starts


def test_window_starts_cover_and_end_at_the_input_end():
    assert window_starts(50, 100, 10) == [0]
    assert window_starts(100, 100, 10) == [0]
    assert window_starts(250, 100, 20) == [0, 80, 150]
    with pytest.raises(ValueError, match="overlap"):
        window_starts(250, 100, 100)


def test_identity_function_is_reconstructed_exactly_for_any_length():
    identity = lambda windows, seeds: windows.clone()  # noqa: E731
    for length in (37, 100, 101, 333, 1000):
        audio = torch.randn(2, length)
        out = generate_windowed(identity, audio, window=100, overlap=30, seed=0, batch_size=3)
        assert out.shape == (2, length)
        assert torch.allclose(out, audio, atol=1e-6)


def test_crossfade_blends_linearly_between_windows():
    ones_then_zeros = lambda windows, seeds: torch.stack(  # noqa: E731
        [torch.full((windows.shape[1],), 1.0 if i == 0 else 0.0) for i in range(len(seeds))])
    out = generate_windowed(ones_then_zeros, torch.zeros(1, 180), window=100, overlap=20, seed=0, batch_size=8)
    assert torch.all(out[0, :80] == 1.0) and torch.all(out[0, 100:] == 0.0)
    fade = out[0, 80:100]
    assert torch.all(fade[1:] < fade[:-1])  # monotonic crossfade from the first window to the second
    assert fade[0].item() == pytest.approx(20 / 21) and fade[-1].item() == pytest.approx(1 / 21)


def test_seeds_do_not_depend_on_batching_and_short_inputs_are_padded():
    seen = {}

    def record(windows, seeds):
        for w, s in zip(windows, seeds):
            seen.setdefault(s, w.sum().item())
        return torch.stack([torch.randn(windows.shape[1], generator=torch.Generator().manual_seed(s)) for s in seeds])

    audio = torch.randn(3, 250)
    a = generate_windowed(record, audio, 100, 20, seed=5, batch_size=1)
    b = generate_windowed(record, audio, 100, 20, seed=5, batch_size=7)
    c = generate_windowed(record, audio, 100, 20, seed=6, batch_size=7)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # with clip ids a clip's windows keep their seeds wherever the clip sits in the batch
    ids = ["x", "y", "z"]
    d = generate_windowed(record, audio, 100, 20, seed=5, clip_ids=ids)
    e = generate_windowed(record, audio[[2, 0]], 100, 20, seed=5, clip_ids=["z", "x"])
    assert torch.equal(e, d[[2, 0]]) and not torch.equal(d, a)
    shapes = []
    generate_windowed(lambda w, s: shapes.append(w.shape) or w, torch.ones(2, 40), 100, 20, seed=0)
    assert shapes == [(2, 100)]
