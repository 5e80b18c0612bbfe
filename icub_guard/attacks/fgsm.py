"""FGSM (Goodfellow et al., 2015): one signed-gradient step of size eps in l∞."""

from __future__ import annotations

from .base import Attack


class FGSM(Attack):
    name = "fgsm"
    norms = ("linf",)

    def __init__(self, model, eps: float = 8.0, **kw):
        super().__init__(model, eps, **kw)

    def _run(self, x, y, target, start):
        _, grad, _ = self.gain_and_grad(start, y, target)
        return start + self.eps * grad.sign()
