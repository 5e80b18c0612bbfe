"""Universal adversarial perturbation (Moosavi-Dezfooli et al., 2017).

One perturbation v for all inputs: while the fooling rate is below 1 − δ, add
the DeepFool minimal perturbation of every not-yet-fooled x_i + v and project v
onto the ball. The original visits samples one by one, adding each step to v;
this variant computes the steps of all not-yet-fooled samples at the current v
in one batch and adds their sum before projecting (batched on the device).
`fit` learns v; calling the attack applies it (fitting first if needed).
"""

from __future__ import annotations

import torch

from .base import Attack
from .constraints import project
from .deepfool import DeepFool


class UniversalPerturbation(Attack):
    name = "universal"
    supports_targeted = False

    def __init__(self, model, eps: float = 1000.0, norm: str = "l2", passes: int = 20, delta: float = 0.2,
                 overshoot: float = 0.02, **kw):
        super().__init__(model, eps, norm, **kw)
        self.passes, self.delta, self.overshoot = passes, delta, overshoot
        self.perturbation: torch.Tensor | None = None

    def fit(self, x, y) -> torch.Tensor:
        x, y, _ = self._prepare(x, y, None)
        df = DeepFool(self.model, steps=1, overshoot=self.overshoot, mask=self.mask, box=self.box)
        df.should_stop = self.should_stop
        v = torch.zeros_like(x[:1])
        for _ in range(self.passes):
            xa = self.project(x + v, x)
            r, fooled = df.minimal_step(xa, y, None)
            self.gradient_evals += df.gradient_evals
            df.gradient_evals = 0
            if fooled.float().mean() >= 1 - self.delta:
                break
            step = r[~fooled].sum(0, keepdim=True) * (1 + self.overshoot)
            # v lives in the ball around 0 (no box: only x + v must be in the box)
            v = project(v + step, torch.zeros_like(v), self.eps, self.norm, self.mask, (-float("inf"), float("inf")))
        self.perturbation = v.detach()
        return self.perturbation

    def _run(self, x, y, target, start):
        if self.perturbation is None or self.perturbation.shape[1:] != x.shape[1:]:
            self.fit(x, y)
        return start + self.perturbation.to(x.device)
