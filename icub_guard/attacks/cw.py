"""Carlini & Wagner (2017) l2: Adam in tanh space, binary search on the trade-off c.

minimise ‖x' − x‖²/255² + c · max(κ − gain(x'), 0), with x' in the box by
construction; keeps the smallest successful perturbation per sample. With
`reject_aware=True` the gain is the acceptance margin, so the attack seeks
points the reject option lets through.
"""

from __future__ import annotations

import torch

from .base import Attack, check_steps


class CarliniWagner(Attack):
    name = "cw"
    norms = ("l2",)

    def __init__(self, model, eps: float | None = None, steps: int = 100, search_steps: int = 4,
                 c: float = 1.0, kappa: float = 0.0, lr: float = 0.05, **kw):
        super().__init__(model, eps, **kw)
        self.steps, self.search_steps = check_steps(steps), check_steps(search_steps)
        self.c0, self.kappa, self.lr = c, kappa, lr

    def _run(self, x, y, target, start):
        lo, hi = self.box
        n = x.shape[0]

        def to_w(v):
            return torch.atanh(((v - lo) / (hi - lo) * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))

        def from_w(w):
            v = (torch.tanh(w) + 1) / 2 * (hi - lo) + lo
            return v if self.mask is None else x + self.mask * (v - x)

        c = torch.full((n,), self.c0, device=x.device)
        c_lo = torch.zeros(n, device=x.device)
        c_hi = torch.full((n,), float("inf"), device=x.device)
        best = start.clone()
        best_d = torch.full((n,), float("inf"), device=x.device)
        for _ in range(self.search_steps):
            w = to_w(start).detach().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=self.lr)
            ok_any = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(self.steps):
                with torch.enable_grad():
                    xa = from_w(w)
                    s = self.scores(xa)
                    d = ((xa - x) / (hi - lo)).pow(2).flatten(1).sum(1)
                    g = self.gain(s, y, target)
                    loss = (d + c * (self.kappa - g).clamp_min(0)).sum()
                    opt.zero_grad()
                    loss.backward()
                opt.step()
                self.gradient_evals += 1
                with torch.no_grad():
                    ok = self.success(s, y, target) & (g >= self.kappa)
                    if self.eps is not None:
                        ok &= (xa - x).flatten(1).norm(dim=1) <= self.eps
                    take = ok & (d < best_d)
                    best = torch.where(take.view(-1, 1, 1, 1), xa.detach(), best)
                    best_d = torch.where(take, d, best_d)
                    ok_any |= ok
            # binary search: succeeded → smaller c; failed → larger c
            c_hi = torch.where(ok_any, torch.minimum(c_hi, c), c_hi)
            c_lo = torch.where(ok_any, c_lo, torch.maximum(c_lo, c))
            c = torch.where(torch.isinf(c_hi), c * 10, (c_lo + c_hi) / 2)
        return best
