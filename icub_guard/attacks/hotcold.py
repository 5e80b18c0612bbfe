"""Hot/cold (Rozsa et al., 2016): move towards a "hot" class and away from the "cold" one.

For each sample the hot class is the target (error-specific) or the strongest
wrong class (error-generic); the cold class is the true one. One l2 step along
∇(f_hot − f_cold), repeated with a line search over the step length.
"""

from __future__ import annotations

import torch

from .base import Attack, steepest_direction


class HotCold(Attack):
    name = "hotcold"
    norms = ("l2",)

    def __init__(self, model, eps: float = 500.0, scales: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0), **kw):
        super().__init__(model, eps, **kw)
        self.scales = scales

    def _run(self, x, y, target, start):
        with torch.no_grad():
            s = self.scores(start)
        hot = target if target is not None else s.scatter(1, y[:, None], float("-inf")).argmax(1)
        x_ = start.detach().requires_grad_(True)
        with torch.enable_grad():
            sc = self.scores(x_)
            obj = sc.gather(1, hot[:, None])[:, 0] - sc.gather(1, y[:, None])[:, 0]
            (grad,) = torch.autograd.grad(obj.sum(), x_)
        self.gradient_evals += 1
        if self.mask is not None:
            grad = grad * self.mask
        d = steepest_direction(grad, "l2")
        best, best_gain = start, torch.full((x.shape[0],), float("-inf"), device=x.device)
        for a in self.scales:  # the smallest step that works, else the best one
            cand = self.project(start + a * self.eps * d, x)
            with torch.no_grad():
                g = self.gain(self.scores(cand), y, target)
            take = (g > best_gain) & ~(best_gain > 0)
            best = torch.where(take.view(-1, 1, 1, 1), cand, best)
            best_gain = torch.where(take, g, best_gain)
        return best
