"""Fast gradient value (Rozsa et al., 2016): one step along the l2-normalised gradient."""

from __future__ import annotations

from .base import Attack, steepest_direction


class FGV(Attack):
    name = "fgv"
    norms = ("l2",)

    def __init__(self, model, eps: float = 500.0, **kw):
        super().__init__(model, eps, **kw)

    def _run(self, x, y, target, start):
        _, grad, _ = self.gain_and_grad(start, y, target)
        return start + self.eps * steepest_direction(grad, "l2")
