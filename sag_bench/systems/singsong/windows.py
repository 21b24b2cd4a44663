"""Frame alignment and fixed-length windows over code streams ``[B, Q, F]`` at the codec frame rate.

Each stage is trained on windows of one fixed length (its ``window_seconds``). Longer inputs are covered by windows
``hop`` frames apart, the last one aligned to the end. With ``hop == window`` the windows are independent: they are
generated as one batch and stitched back, each frame taken from the first window that covers it. With a smaller hop
each window is prompted with the frames its predecessors already generated (see ``StageLM.generate_windows``).
"""

from __future__ import annotations

import torch


def align_frames(codes: torch.Tensor, frames: int) -> torch.Tensor:
    """Crop or pad ``[..., F]`` to ``frames`` along the last axis, padding by repeating the last frame.

    MERT and the stand-in give 749 frames per 10 s where Encodec gives 750: semantic ids are always padded (or
    cropped) to the codec's frame count, so every stream of a clip shares one 75 Hz frame grid.
    """
    have = codes.shape[-1]
    if have == 0:
        raise ValueError("cannot align an empty code sequence")
    if have >= frames:
        return codes[..., :frames]
    return torch.cat([codes, codes[..., -1:].expand(*codes.shape[:-1], frames - have)], dim=-1)


def window_starts(frames: int, window: int, hop: int | None = None) -> list[int]:
    """Start frames of the windows covering ``frames``: every ``hop`` (default ``window``), the last one ending at
    ``frames``."""
    hop = window if hop is None else hop
    if not 0 < hop <= window:
        raise ValueError(f"window hop must be in (0, {window}], not {hop}")
    if frames <= window:
        return [0]
    starts = list(range(0, frames - window, hop))
    return starts + [frames - window]


def split_windows(codes: torch.Tensor, starts: list[int], window: int) -> torch.Tensor:
    """``[B, Q, F]`` -> ``[B * n, Q, w]`` (window-major within each item), ``w = min(window, F)``."""
    width = min(window, codes.shape[-1])
    pieces = torch.stack([codes[..., s : s + width] for s in starts], dim=1)
    return pieces.reshape(-1, *pieces.shape[2:])


def stitch_windows(windows: torch.Tensor, starts: list[int], frames: int) -> torch.Tensor:
    """Inverse of :func:`split_windows`: ``[B * n, Q, w]`` -> ``[B, Q, frames]``, first cover wins."""
    n, width = len(starts), windows.shape[-1]
    windows = windows.reshape(-1, n, *windows.shape[1:])
    out = windows.new_zeros(windows.shape[0], windows.shape[2], frames)
    filled = 0
    for index, start in enumerate(starts):
        end = start + width
        out[..., filled:end] = windows[:, index, :, filled - start : width]
        filled = end
    return out
