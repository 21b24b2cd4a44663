"""SingSong frame alignment (MERT 749 vs codec 750) and window split/stitch."""

from __future__ import annotations

import pytest
import torch

from sag_bench.systems.singsong.windows import align_frames, split_windows, stitch_windows, window_starts


def test_align_pads_749_semantic_frames_to_750_by_repeating_the_last():
    ids = torch.arange(749)[None, None]
    aligned = align_frames(ids, 750)
    assert aligned.shape == (1, 1, 750)
    assert torch.equal(aligned[..., :749], ids) and aligned[0, 0, -1].item() == 748
    assert torch.equal(align_frames(torch.arange(751)[None], 750), torch.arange(750)[None])
    with pytest.raises(ValueError):
        align_frames(torch.zeros(1, 0), 5)


@pytest.mark.parametrize("frames, window, starts", [(750, 750, [0]), (100, 150, [0]), (750, 150, [0, 150, 300, 450, 600]),
                                                    (760, 150, [0, 150, 300, 450, 600, 610])])
def test_window_starts(frames, window, starts):
    assert window_starts(frames, window) == starts


@pytest.mark.parametrize("frames, window", [(760, 150), (750, 150), (40, 150), (151, 150)])
def test_split_then_stitch_is_identity(frames, window):
    codes = torch.randint(0, 1000, (2, 3, frames))
    starts = window_starts(frames, window)
    pieces = split_windows(codes, starts, window)
    assert pieces.shape == (2 * len(starts), 3, min(window, frames))
    width = min(window, frames)
    assert torch.equal(pieces[-1], codes[1, :, starts[-1]: starts[-1] + width])  # item 1, last window
    assert torch.equal(stitch_windows(pieces, starts, frames), codes)


def test_stitch_takes_each_frame_from_the_first_window_covering_it():
    starts = window_starts(7, 4)  # [0, 3]: frame 3 is covered twice
    pieces = torch.stack([torch.full((1, 4), 1), torch.full((1, 4), 2)])
    assert stitch_windows(pieces, starts, 7).tolist() == [[[1, 1, 1, 1, 2, 2, 2]]]
