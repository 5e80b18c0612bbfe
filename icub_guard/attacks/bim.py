"""BIM (Kurakin et al., 2017) and PGD (Madry et al., 2018): iterated projected steps.

BIM starts at the clean image; PGD from a uniformly random point of the ball.
l∞ steps are signed gradients; l2 steps are normalised gradients.
"""

from __future__ import annotations

import torch

from .base import Attack, check_steps, steepest_direction


class BIM(Attack):
    name = "bim"
    random_start = False

    norms = ("linf", "l2", "l1")

    def __init__(self, model, eps: float = 8.0, norm: str = "linf", steps: int = 10,
                 step_size: float | None = None, **kw):
        super().__init__(model, eps, norm, **kw)
        self.steps = check_steps(steps)
        self.step_size = step_size or 2.5 * self.eps / steps

    def _init(self, x, start):
        return start

    def _run(self, x, y, target, start):
        cur = self._init(x, start)
        best, best_gain = cur, torch.full((x.shape[0],), float("-inf"), device=x.device)
        for _ in range(self.steps):
            g, grad, _ = self.gain_and_grad(cur, y, target)
            take = g > best_gain
            best = torch.where(take.view(-1, 1, 1, 1), cur, best)
            best_gain = torch.where(take, g, best_gain)
            cur = self.project(cur + self.step_size * steepest_direction(grad, self.norm), x)
        with torch.no_grad():
            g = self.gain(self.scores(cur), y, target)
        return torch.where((g > best_gain).view(-1, 1, 1, 1), cur, best)
