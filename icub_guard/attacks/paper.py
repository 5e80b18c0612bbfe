"""Melis et al. (2017), Algorithm 1: gradient attack on the pixels → scores chain.

Ω(x) = f_k(x) − max_{l≠k} f_l(x). Error-generic: k = true class, minimise Ω;
error-specific: k = target, maximise Ω (the base class's `gain` is −Ω resp. Ω).
Projected steepest-ascent steps of size η inside ‖x − x0‖_p ≤ d_max, the box
and the mask; a step that does not raise the gain is refused and η halved for
that sample (a backtracking schedule, so large d_max still converges). A sample
stops when |Ω(x') − Ω(x)| ≤ ε for an accepted step or η has shrunk away.
"""

from __future__ import annotations

import torch

from .base import Attack, check_steps, steepest_direction


class PaperAttack(Attack):
    name = "paper"

    def __init__(self, model, eps: float | None = 1000.0, norm: str = "l2", steps: int = 50,
                 step_size: float | None = None, tol: float = 1e-4, **kw):
        super().__init__(model, eps, norm, **kw)
        self.steps, self.step_size, self.tol = check_steps(steps), step_size, tol

    def _run(self, x, y, target, start):
        eta0 = self.step_size or (0.25 * self.eps if self.eps else 50.0)
        eta = torch.full((x.shape[0],), float(eta0), device=x.device, dtype=x.dtype)
        cur = start.clone()
        gain, grad, _ = self.gain_and_grad(cur, y, target)
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.steps - 1):
            if not active.any():
                break
            d = steepest_direction(grad, self.norm)
            cand = self.project(cur + eta.view(-1, 1, 1, 1) * d, x)
            g_c, grad_c, _ = self.gain_and_grad(cand, y, target)
            better = active & (g_c > gain)
            done = better & ((g_c - gain).abs() <= self.tol)
            cur = torch.where(better.view(-1, 1, 1, 1), cand, cur)
            grad = torch.where(better.view(-1, 1, 1, 1), grad_c, grad)
            gain = torch.where(better, g_c, gain)
            eta = torch.where(better | ~active, eta, eta / 2)
            active &= ~done & (eta > 1e-3 * eta0)
        return cur
