"""Fast minimum-norm attack (Pintor et al. 2021), l2: each sample's smallest successful perturbation, once.

Instead of one attack per d_max, FMN adapts a per-sample radius ε: a normalised gradient step on
the attacker's gain (the base class's objective: reject-aware with `reject_aware`), a projection
onto the ε-ball and the box; ε shrinks (×(1 − γ)) while the sample is adversarial and grows
(×(1 + γ)) while it is not — before the first success, to the linearised distance to the
boundary. Step size α and γ anneal by cosine. The smallest adversarial perturbation seen is kept.
Samples are batched; one whose best norm has not improved for `patience` steps stops (no more
forward or backward passes for it). `min_norm_curve` turns the norms into accuracy at every d_max.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import Attack, check_steps
from .constraints import lp_norm, quantize


class FastMinimumNorm(Attack):
    name = "fmn"
    norms = ("l2",)

    def __init__(self, model, steps: int = 60, alpha0: float = 400.0, alpha_final: float | None = None,
                 gamma0: float = 0.05, gamma_final: float = 0.001, patience: int = 12, eps: float | None = None,
                 **kw):
        super().__init__(model, eps, **kw)
        self.steps, self.patience = check_steps(steps), check_steps(patience)
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
            stale[idx] = torch.where(better, 0, stale[idx] + 1)
            found[idx] |= adv
            gnorm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
            e = eps[idx]
            e = torch.where(adv, torch.minimum(torch.where(e > 0, e, norm), norm) * (1 - gamma),
                            torch.where(found[idx], e * (1 + gamma), norm + (-gain).clamp_min(0) / gnorm))
            eps[idx] = e
            d = d + alpha * grad / gnorm.view(-1, 1, 1, 1)
            d = d * torch.clamp(e / lp_norm(d, "l2").clamp_min(1e-12), max=1.0).view(-1, 1, 1, 1)
            d = (x[idx] + d).clamp(*self.box) - x[idx]
            if self.mask is not None:
                d = d * self.mask
            delta[idx] = d
            active[idx] = ~(found[idx] & (stale[idx] >= self.patience))
        self.best_norms = best
        return x + torch.where(found.view(-1, 1, 1, 1), best_delta, delta)


def min_norm_curve(model, x: torch.Tensor, y: torch.Tensor, d_grid, judge, steps: int = 30, patience: int = 6,
                   reject_aware: bool = False, fallback=None) -> tuple[list[float], dict]:
    """Accuracy at every d_max from one minimum-norm attack.

    `judge(images uint8) -> bool per sample` says whether a crop is still "correct" under the
    evaluation's rule. A sample counts as broken at d_max d when FMN's smallest adversarial
    perturbation, quantised to whole pixels within d, is judged wrong. Samples for which FMN found
    nothing go to `fallback(x_subset, y_subset, d_grid) -> list[bool array]` (Algorithm 1 per d_max),
    so the fast curve is never weaker there.
    """
    attack = FastMinimumNorm(model, steps=steps, patience=patience, reject_aware=reject_aware)
    res = attack(x, y)
    norms = attack.best_norms.detach().cpu().numpy()
    correct = []
    delta = (res.x_adv - x).detach()
    for d in d_grid:
        ok = np.ones(len(norms), bool)
        reach = norms <= d + 1e-6
        if d > 0 and reach.any():
            # the minimum-norm point sits on the boundary, where rounding to whole pixels can undo it: the
            # same direction a little past it (by what rounding can move, 64), or out to d, whichever breaks it
            idx = np.flatnonzero(reach)
            n = torch.as_tensor(norms[idx], dtype=x.dtype, device=x.device).clamp_min(1e-6)
            for r in (torch.clamp(n + 64.0, max=float(d)), torch.full_like(n, float(d))):
                xa = (x[idx] + delta[idx] * (r / n).view(-1, 1, 1, 1)).clamp(0, 255)
                imgs = quantize(xa, x[idx], float(d), "l2").to(torch.uint8).cpu().numpy()
                ok[idx] &= judge(imgs, idx)
        elif d == 0:
            ok = judge(x.round().to(torch.uint8).cpu().numpy(), np.arange(len(norms)))
        correct.append(ok)
    missing = np.flatnonzero(~np.isfinite(norms))
    if fallback is not None and len(missing):
        extra = fallback(x[missing], y[missing], list(d_grid))
        for ok, ok_fb in zip(correct, extra, strict=True):
            ok[missing] &= ok_fb
    info = {"norms": norms.tolist(), "gradient_evals": res.gradient_evals, "fallback_samples": len(missing)}
    return [float(c.mean()) for c in correct], info
