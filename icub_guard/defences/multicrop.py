"""Multi-crop (Günther et al., Table 2): the four corner crops and the centre crop, each resized back, 5 views.

The views' scores are averaged (`combine="mean"`) or each view votes for the class it accepts
(`"vote"`: a class needs a majority of the five). Deterministic and differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import InputTransform, check_range


class MultiCrop(InputTransform):
    name = "multicrop"
    views = 5

    def __init__(self, fraction: float = 0.875, combine: str = "mean", seed: int = 0):
        super().__init__(seed)
        self.fraction = check_range("fraction", fraction, 0.5, 0.99)
        if combine not in ("mean", "vote"):
            raise ValueError(f"combine must be 'mean' or 'vote', got {combine!r}")
        self.combine = combine

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1:3]
        ch, cw = max(1, round(self.fraction * h)), max(1, round(self.fraction * w))
        z = x.permute(0, 3, 1, 2)
        tops = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]
        crops = [F.interpolate(z[:, :, t : t + ch, s : s + cw], size=(h, w), mode="bilinear", align_corners=False)
                 for t, s in tops]
        return torch.cat(crops).permute(0, 2, 3, 1)
