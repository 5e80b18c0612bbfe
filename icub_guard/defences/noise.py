"""Additive Gaussian noise on the crop (Günther et al., Table 2): randomised, differentiable."""

from __future__ import annotations

import torch

from .base import InputTransform, check_range


class GaussianNoise(InputTransform):
    name = "noise"
    randomized = True

    def __init__(self, sigma: float = 8.0, seed: int = 0):
        super().__init__(seed)
        self.sigma = check_range("sigma (pixel values 0..255)", sigma, 1e-6, 255.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.sigma * self.noise_like(x)).clamp(0.0, 255.0)
