"""A score-based, gradient-free random search in the manner of the Square attack (Andriushchenko et al. 2020).

It reads only the scores: each query changes the perturbation on one random square window (its side
shrinking over the run, as Square's schedule does) by a random pattern, keeps the change where the
attacker's gain rises, and stays inside the budget by projection. Its use is the gradient-masking
check (Carlini et al. 2019): a defence whose gradients mislead an attacker is beaten by a search that
never looks at them, so a gradient-free attack stronger than the gradient ensemble is a red flag.
In l2 the window update is a Gaussian pattern of length `eta`·eps, not the paper's l2 construction.
"""

from __future__ import annotations

import math

import torch

from .base import Attack, check_steps


class SquareSearch(Attack):
    name = "square"
    supports_targeted = True
    norms = ("l2", "linf")

    def __init__(self, model, eps: float | None = None, norm: str | None = None, queries: int = 300,
                 p_init: float = 0.1, eta: float = 0.5, **kw):
        super().__init__(model, eps, norm, **kw)
        if self.eps is None or self.eps <= 0:
            raise ValueError(f"{self.name} needs a budget eps > 0")
        self.queries = check_steps(queries)
        if not 0 < p_init <= 1 or not 0 < eta <= 1:
            raise ValueError("p_init and eta must be in (0, 1]")
        self.p_init, self.eta = float(p_init), float(eta)

    def _side(self, i: int, h: int, w: int) -> int:
        """Square's schedule: the window's share of the crop halves at fixed fractions of the queries."""
        p = self.p_init / 2 ** sum(i > f * self.queries for f in (0.01, 0.05, 0.15, 0.3, 0.5, 0.7, 0.85))
        return max(1, min(h, w, round(math.sqrt(p * h * w))))

    def _run(self, x, y, target, start):
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        _, h, w, c = x.shape
        cur = start.clone()
        with torch.no_grad():
            s = self.scores(cur)
            best = self.gain(s, y, target)
            done = self.success(s, y, target)
            for i in range(self.queries):
                idx = torch.nonzero(~done).flatten()
                if len(idx) == 0:
                    break
                side = self._side(i, h, w)
                r = torch.randint(0, h - side + 1, (len(idx),), generator=gen)
                q = torch.randint(0, w - side + 1, (len(idx),), generator=gen)
                window = torch.zeros((len(idx), h, w, 1), dtype=torch.bool)
                rows, cols = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
                window[..., 0] = ((rows >= r[:, None, None]) & (rows < (r + side)[:, None, None])
                                  & (cols >= q[:, None, None]) & (cols < (q + side)[:, None, None]))
                if self.norm == "linf":  # Square's l∞ update: a window set to ±eps, one sign per channel
                    sign = torch.randint(0, 2, (len(idx), 1, 1, c), generator=gen).to(x.dtype) * 2 - 1
                    delta = cur[idx] - x[idx]
                    cand = x[idx] + torch.where(window.to(x.device), sign.to(x.device) * self.eps, delta)
                else:
                    u = torch.randn((len(idx), h, w, c), generator=gen) * window
                    u = u / u.reshape(len(idx), -1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
                    cand = cur[idx] + self.eta * self.eps * u.to(x.device, x.dtype)
                cand = self.project(cand, x[idx])
                sc = self.scores(cand)
                g = self.gain(sc, y[idx], None if target is None else target[idx])
                better = g > best[idx]
                cur[idx[better]], best[idx[better]] = cand[better], g[better]
                done[idx] |= self.success(sc, y[idx], None if target is None else target[idx]) & better
        return cur
