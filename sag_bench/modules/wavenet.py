"""Non-causal WaveNet used by FastSAG's semantic projection and prior encoder (paper section 4.2).

Structure (reference facts): a kernel-3 input conv, ``stacks`` parallel stacks of ``layers`` gated residual blocks
with dilations 1, 2, ..., 2^(layers-1), where block i of stack s reads the output of block i of stack s-1 (every
block of the first stack reads the input conv), the skip outputs of the last stack summed, and a final 1x1 conv.
"""

from __future__ import annotations

import torch
from torch import nn


class GatedResidualBlock(nn.Module):
    """Dilated kernel-3 conv with symmetric padding, ``tanh(h) * sigmoid(h)`` on the same ``h``, plus a 1x1
    residual conv of the block input; optionally a 1x1 skip conv of the output."""

    def __init__(self, dim: int, dilation: int, skip: bool) -> None:
        super().__init__()
        self.dilated = nn.Conv1d(dim, dim, kernel_size=3, dilation=dilation, padding=dilation)
        self.residual = nn.Conv1d(dim, dim, kernel_size=1)
        self.skip = nn.Conv1d(dim, dim, kernel_size=1) if skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, dim, T] -> [B, dim, T]``."""
        h = self.dilated(x)
        return torch.tanh(h) * torch.sigmoid(h) + self.residual(x)


class WaveNet(nn.Module):
    """``[B, in_dim, T] -> [B, out_dim, T]``; with ``in_dim == hidden == out_dim`` (the paper) all convs are square.

    FastSAG sizes: semantic projection ``WaveNet(768, stacks=8, layers=8)`` (158.2M parameters), prior encoder
    ``WaveNet(100, stacks=4, layers=8)`` (1.41M).
    """

    def __init__(self, in_dim: int, stacks: int, layers: int, hidden: int | None = None,
                 out_dim: int | None = None) -> None:
        super().__init__()
        hidden = hidden or in_dim
        self.input_conv = nn.Conv1d(in_dim, hidden, kernel_size=3, padding=1)
        self.stacks = nn.ModuleList(
            nn.ModuleList(GatedResidualBlock(hidden, 2**i, skip=s == stacks - 1) for i in range(layers))
            for s in range(stacks))
        self.output_conv = nn.Conv1d(hidden, out_dim or in_dim, kernel_size=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the network; ``mask`` ``[B, 1, T]`` zeroes padded frames at input and output."""
        if mask is not None:
            x = x * mask
        start = self.input_conv(x)
        paths = [start] * len(self.stacks[0])
        for stack in self.stacks:
            paths = [block(path) for block, path in zip(stack, paths)]
        skips = sum(block.skip(path) for block, path in zip(self.stacks[-1], paths))
        out = self.output_conv(skips)
        return out * mask if mask is not None else out
