"""DeepFool (Moosavi-Dezfooli et al., 2016): minimal l2 steps to the nearest boundary.

Multi-class: each iteration linearises f_k − f_y for the `candidates` highest
scoring classes and steps to the closest linearised boundary, with overshoot.
Targeted: steps towards the target's boundary only. The step is a batched
K-gradient computation (one forward, `candidates` backward passes).
"""

from __future__ import annotations

import torch

from .base import Attack, check_steps


def class_gradients(scores, x: torch.Tensor, classes: torch.Tensor, mask=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (N×K) and ∂f_c/∂x for the N×C class indices `classes` (N×C×H×W×3); `scores` is x ↦ N×K."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        s = scores(x)
        sel = s.gather(1, classes)
        grads = []
        for j in range(classes.shape[1]):
            (g,) = torch.autograd.grad(sel[:, j].sum(), x, retain_graph=j < classes.shape[1] - 1)
            grads.append(g if mask is None else g * mask)
    return s.detach(), torch.stack(grads, 1)


class DeepFool(Attack):
    name = "deepfool"
    norms = ("l2",)

    def __init__(self, model, eps: float | None = None, steps: int = 50, overshoot: float = 0.02,
                 candidates: int = 10, **kw):
        super().__init__(model, eps, **kw)
        self.steps, self.overshoot, self.candidates = check_steps(steps), overshoot, candidates
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 2:
            raise ValueError(f"candidates must be a whole number >= 2, got {candidates!r}")

    def minimal_step(self, cur: torch.Tensor, y: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor]:
        """The linearised minimal perturbation at `cur` and whether each sample is already fooled."""
        with torch.no_grad():
            s0 = self.scores(cur)
        k = s0.shape[1]
        if target is not None:
            cls = torch.stack([y, target], 1)
        else:
            c = min(self.candidates, k)
            others = s0.scatter(1, y[:, None], float("-inf")).topk(c - 1, dim=1).indices
            cls = torch.cat([y[:, None], others], 1)
        s, g = class_gradients(self.scores, cur, cls, self.mask)
        self.gradient_evals += cls.shape[1]  # one backward pass per class
        fs = s.gather(1, cls)
        w = g[:, 1:] - g[:, :1]  # N×(C−1)×...
        f = fs[:, 1:] - fs[:, :1]
        wn = w.reshape(w.shape[0], w.shape[1], -1).norm(dim=2).clamp_min(1e-12)
        dist = f.abs() / wn
        best = dist.argmin(1)
        idx = torch.arange(len(best), device=cur.device)
        r = (((dist[idx, best] + 1e-4) / wn[idx, best]).view(-1, 1, 1, 1) * w[idx, best]).to(cur.dtype)
        top = s.argmax(1)
        fooled = (top == target) if target is not None else (top != y)
        return r, fooled

    def _run(self, x, y, target, start):
        cur = start.clone()
        r_tot = torch.zeros_like(x)
        for _ in range(self.steps):
            r, fooled = self.minimal_step(cur, y, target)
            if fooled.all():
                break
            r_tot = r_tot + torch.where(fooled.view(-1, 1, 1, 1), torch.zeros_like(r), r)
            cur = self.project(start + (1 + self.overshoot) * r_tot, x)
        return cur
