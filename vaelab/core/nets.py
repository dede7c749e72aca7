"""Small network builders shared by the chapters.

* ``mlp``: fully connected ReLU networks (HEBAE App. B.1: encoder 784-784-800-2k,
  decoder k-800-800-784);
* ``GatedDense`` / ``gated_mlp``: the gated dense layers of the VampPrior paper
  (Tomczak & Welling 2018, Sec. 5; h = (W1 x + b1) * sigmoid(W2 x + b2), Dauphin et al. 2017).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["mlp", "GatedDense", "gated_mlp"]


def _check_sizes(sizes: Sequence[int]) -> list[int]:
    sizes = list(sizes)
    if len(sizes) < 2 or any((not isinstance(s, int)) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least two positive integers (input, ..., output), got {sizes}")
    return sizes


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between them (none after the last)."""
    sizes = _check_sizes(sizes)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class GatedDense(nn.Module):
    """h = (W1 x + b1) * sigmoid(W2 x + b2), computed with one matmul of width 2 * out_features."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.out_features = out_features
        self.linear = nn.Linear(in_features, 2 * out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        if y.dtype in (torch.float16, torch.bfloat16):  # (autocast) there the two ops are the faster on a CPU
            h, g = y.split(self.out_features, dim=-1)
            return h * torch.sigmoid(g)
        return F.glu(y, dim=-1)  # h * sigmoid(g) of the two halves in one kernel: the same numbers, ~1.5x faster


def gated_mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Gated dense layers ``sizes[0] -> ... -> sizes[-1]``; the last layer is a plain linear output layer."""
    sizes = _check_sizes(sizes)
    layers: list[nn.Module] = [GatedDense(a, b) for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)
