"""Fast minimum-norm attack (Pintor et al. 2021), l2: each sample's smallest successful perturbation, once.

Instead of one attack per d_max, FMN adapts a per-sample radius ε: a normalised gradient step on
the attacker's gain (the base class's objective: reject-aware with `reject_aware`), a projection
onto the ε-ball and the box; ε shrinks (×(1 − γ)) while the sample is adversarial and grows
(×(1 + γ)) while it is not — before the first success, to the linearised distance to the
boundary. Step size α and γ anneal by cosine. The smallest adversarial perturbation seen is kept.
Samples are batched; one whose best norm has not improved by `rtol` (relative) for `patience`
steps stops (no more forward or backward passes for it), as does one whose best norm is at most
`stop_below` (a curve over a d_max grid learns nothing from refining it below the smallest d_max).
`evaluation.curves.min_norm_images` turns one run into the crops of every d_max.
"""

from __future__ import annotations

import math

import torch

from .base import Attack, check_steps
from .constraints import lp_norm


class FastMinimumNorm(Attack):
    name = "fmn"
    norms = ("l2",)

    def __init__(self, model, steps: int = 60, alpha0: float = 200.0, alpha_final: float | None = None,
                 gamma0: float = 0.05, gamma_final: float = 0.001, patience: int = 12, rtol: float = 0.005,
                 stop_below: float | None = None, eps: float | None = None, **kw):
        super().__init__(model, eps, **kw)
        self.stop_below = None if stop_below is None else float(stop_below)
        self.steps, self.patience = check_steps(steps), check_steps(patience)
        if not 0 <= rtol < 1:
            raise ValueError("fmn needs 0 <= rtol < 1")
        self.rtol = float(rtol)
        if not alpha0 > 0 or not 0 < gamma0 < 1 or not 0 < gamma_final <= gamma0:
            raise ValueError("fmn needs alpha0 > 0 and 0 < gamma_final <= gamma0 < 1")
        self.alpha0, self.alpha_final = float(alpha0), float(alpha_final or alpha0 / 100)
        self.gamma0, self.gamma_final = float(gamma0), float(gamma_final)
        self.best_norms: torch.Tensor | None = None  # per sample, inf where no adversarial was found

    def _run(self, x, y, target, start):
        n = x.shape[0]
        delta = (start - x).clone()
        eps = torch.zeros(n, device=x.device, dtype=x.dtype)
        best = torch.full((n,), math.inf, device=x.device, dtype=x.dtype)
        anchor = best.clone()
        best_delta = delta.clone()
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        stale = torch.zeros(n, dtype=torch.long, device=x.device)
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        for k in range(self.steps):
            idx = active.nonzero()[:, 0]
            if len(idx) == 0:
                break
            c = (1 + math.cos(math.pi * k / self.steps)) / 2
            alpha = self.alpha_final + (self.alpha0 - self.alpha_final) * c
            gamma = self.gamma_final + (self.gamma0 - self.gamma_final) * c
            d = delta[idx]
            gain, grad, _ = self.gain_and_grad(x[idx] + d, y[idx], None if target is None else target[idx])
            gain = gain.to(x.dtype)
            norm = lp_norm(d, "l2")
            adv = gain > 0
            better = adv & (norm < best[idx])
            best[idx] = torch.where(better, norm, best[idx])
            best_delta[idx] = torch.where(better.view(-1, 1, 1, 1), d, best_delta[idx])
            progress = better & (norm < anchor[idx] * (1 - self.rtol))  # a real improvement resets patience
            anchor[idx] = torch.where(progress, norm, anchor[idx])
            stale[idx] = torch.where(progress, 0, stale[idx] + 1)
            found[idx] |= adv
            gnorm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
            e = eps[idx]
            # before the first success the radius grows at least geometrically: the linear estimate alone
            # undershoots on a curved boundary and can leave a sample circling inside it
            e = torch.where(adv, torch.minimum(torch.where(e > 0, e, norm), norm) * (1 - gamma),
                            torch.where(found[idx], e * (1 + gamma),
                                        torch.maximum(norm + (-gain).clamp_min(0) / gnorm, e * (1 + gamma))))
            eps[idx] = e
            d = d + alpha * grad / gnorm.view(-1, 1, 1, 1)
            d = d * torch.clamp(e / lp_norm(d, "l2").clamp_min(1e-12), max=1.0).view(-1, 1, 1, 1)
            d = (x[idx] + d).clamp(*self.box) - x[idx]
            if self.mask is not None:
                d = d * self.mask
            delta[idx] = d
            active[idx] = ~(found[idx] & (stale[idx] >= self.patience))
            if self.stop_below is not None:  # small enough for every budget the caller asks about
                active[idx] &= ~(best[idx] <= self.stop_below)
        self.best_norms = best
        return x + torch.where(found.view(-1, 1, 1, 1), best_delta, delta)

