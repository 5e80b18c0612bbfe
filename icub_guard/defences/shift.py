"""Small random shifts of the crop (Günther et al., Table 2): randomised, differentiable (bilinear resampling)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import InputTransform, check_range


class RandomShift(InputTransform):
    name = "shift"
    randomized = True

    def __init__(self, max_shift: float = 4.0, seed: int = 0):
        super().__init__(seed)
        self.max_shift = check_range("max_shift (pixels)", max_shift, 0.0, 64.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = x.shape
        d = (torch.rand((n, 2), generator=self._gen) * 2 - 1) * self.max_shift  # pixels, per sample
        theta = torch.zeros((n, 2, 3))
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2], theta[:, 1, 2] = 2 * d[:, 0] / w, 2 * d[:, 1] / h
        grid = F.affine_grid(theta.to(x.device, x.dtype), (n, 3, h, w), align_corners=False)
        z = F.grid_sample(x.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return z.permute(0, 2, 3, 1)
