"""PGD (Madry et al., 2018): BIM from a uniformly random start inside the ball."""

from __future__ import annotations

import torch

from .bim import BIM


class PGD(BIM):
    name = "pgd"

    def _init(self, x, start):
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        n = x[0].numel()
        if self.norm == "linf":
            d = (torch.rand(x.shape, generator=gen) * 2 - 1) * self.eps
        else:  # uniform in the l2 ball (direction × radius^(1/n)); l1 uses the same start, projected
            d = torch.randn(x.shape, generator=gen)
            d = d / d.reshape(len(d), -1).norm(dim=1).view(-1, 1, 1, 1)
            d = d * (torch.rand(len(d), generator=gen) ** (1.0 / n) * self.eps).view(-1, 1, 1, 1)
        return self.project(start + d.to(x.device, x.dtype), x)
