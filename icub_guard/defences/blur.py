"""Gaussian blur of the crop (Günther et al., Table 2): deterministic, differentiable (a depthwise convolution)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import InputTransform, check_range


class GaussianBlur(InputTransform):
    name = "blur"

    def __init__(self, sigma: float = 1.0, seed: int = 0):
        super().__init__(seed)
        self.sigma = check_range("sigma (pixels)", sigma, 0.1, 20.0)
        r = max(1, math.ceil(3 * self.sigma))
        k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float64) ** 2 / (2 * self.sigma**2))
        self._kernel = (k / k.sum()).float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        z = x.permute(0, 3, 1, 2)
        k = self._kernel.to(x.device, x.dtype)
        r = len(k) // 2
        z = F.pad(z, (r, r, r, r), mode="replicate")
        z = F.conv2d(z, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
        z = F.conv2d(z, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
        return z.permute(0, 2, 3, 1)
