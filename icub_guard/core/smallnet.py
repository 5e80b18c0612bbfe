"""SimNet: the compact backbone the project pre-trains itself (`icub-guard pretrain`, issue 21).

A 5×5 stride-2 stem (32 channels) and three 3×3 conv stages (64-128-256 channels, batch norm,
ReLU, 2×2 max-pool), a 4×4 adaptive average pool (any input size works, as AlexNet's does) and
one fully connected layer of `FEATURE_DIM` units after a ReLU: the fc7-style feature the guard's
SVMs take. About 61 M multiply-adds at its training size of 64 px, 1/12 of AlexNet's at 224 px.
"""

from __future__ import annotations

import torch
from torch import nn

FEATURE_DIM = 512
WIDTHS = (32, 64, 128, 256)
INPUT_SIZE = 64  # the crops SimWorld and the pre-training renders give


def simnet_trunk(widths: tuple[int, ...] = WIDTHS, dim: int = FEATURE_DIM) -> nn.Sequential:
    """pixels (N×3×S×S, ImageNet-normalised) → N×dim features (after the ReLU, as fc7)."""
    layers: list[nn.Module] = []
    c_in = 3
    for i, c in enumerate(widths):
        if i == 0:  # a strided stem, as AlexNet's: the full-resolution stage is most of a CPU's time
            layers += [nn.Conv2d(c_in, c, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        else:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(4), nn.Flatten(1), nn.Linear(c_in * 16, dim), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SimNetTrainer(nn.Module):
    """The trunk and the two pre-training heads (shape class, palette colour); only the trunk is shipped."""

    def __init__(self, n_shapes: int, n_colours: int, widths: tuple[int, ...] = WIDTHS, dim: int = FEATURE_DIM,
                 dropout: float = 0.3):
        super().__init__()
        self.trunk = simnet_trunk(widths, dim)
        self.drop = nn.Dropout(dropout)
        self.shape_head = nn.Linear(dim, n_shapes)
        self.colour_head = nn.Linear(dim, n_colours)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.drop(self.trunk(x))
        return self.shape_head(f), self.colour_head(f)
