"""Random noise of a given norm: the baseline every real attack must beat."""

from __future__ import annotations

import torch

from .base import Attack


class GaussianNoise(Attack):
    name = "noise"
    supports_targeted = False

    def _run(self, x, y, target, start):
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        d = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
        if self.mask is not None:
            d = d * self.mask
        if self.eps is not None:  # exactly on the sphere of radius eps (before the box clip)
            flat = d.flatten(1)
            if self.norm == "linf":
                d = d.sign() * self.eps
            else:
                p = 2 if self.norm == "l2" else 1
                d = d * (self.eps / flat.norm(p=p, dim=1).clamp_min(1e-12)).view(-1, 1, 1, 1)
        return start + d
