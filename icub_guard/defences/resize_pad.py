"""Random resize and pad (Xie et al. 2018): shrink the crop by a random factor, pad it back at a random offset.

Randomised and differentiable; the padding is black, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import InputTransform, check_range


class RandomResizePad(InputTransform):
    name = "resize_pad"
    randomized = True

    def __init__(self, min_scale: float = 0.85, seed: int = 0):
        super().__init__(seed)
        self.min_scale = check_range("min_scale", min_scale, 0.3, 0.99)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1:3]
        s = float(self.min_scale + (1 - self.min_scale) * torch.rand((), generator=self._gen))
        rh, rw = max(1, round(s * h)), max(1, round(s * w))
        top = int(torch.randint(0, h - rh + 1, (), generator=self._gen))
        left = int(torch.randint(0, w - rw + 1, (), generator=self._gen))
        z = F.interpolate(x.permute(0, 3, 1, 2), size=(rh, rw), mode="bilinear", align_corners=False)
        z = F.pad(z, (left, w - rw - left, top, h - rh - top))
        return z.permute(0, 2, 3, 1)
