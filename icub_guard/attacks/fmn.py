"""Fast minimum-norm attack (Pintor et al. 2021), l2: each sample's smallest successful perturbation, once.

Instead of one attack per d_max, FMN adapts a per-sample radius ε: a normalised gradient step on
the attacker's gain (the base class's objective: reject-aware with `reject_aware`), a projection
onto the ε-ball and the box; ε shrinks (×(1 − γ)) while the sample is adversarial and grows
(×(1 + γ)) while it is not — before the first success, to the linearised distance to the
boundary. Step size α and γ anneal by cosine. The smallest adversarial perturbation seen is kept.
Samples are batched; one whose best norm has not improved by `rtol` (relative) for `patience`
steps stops (no more forward or backward passes for it), as does one whose best norm is at most
`stop_below` (a curve over a d_max grid learns nothing from refining it below the smallest d_max).
`min_norm_images` turns one run into the crops of every d_max.
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


def grid_stop(d_grid) -> float | None:
    """FMN's `stop_below` for a curve over `d_grid`: below 75% of the smallest positive d_max, refining is moot."""
    smallest = min((float(d) for d in d_grid if d > 0), default=None)
    return None if smallest is None else 0.75 * smallest


def min_norm_images(model, x: torch.Tensor, y: torch.Tensor, d_grid, failed, target: torch.Tensor | None = None,
                    steps: int = 30, patience: int = 6, reject_aware: bool = False, fallback=None,
                    near_miss: float = 1.2, precision: str = "float32",
                    deep: bool = True, polish=None, polish_needed=None) -> tuple[list[np.ndarray], dict]:
    """Per d_max, the crops a camera would publish under one minimum-norm attack: what a d_max sweep gives.

    `failed(images uint8, idx) -> bool per sample` says where the attack has not yet succeeded
    (error-generic: still correct under the evaluation's rule; error-specific: not accepted as the
    target). Per sample and d_max, of the crops that succeed the published one has the highest
    attacker's gain, as a warm-started Algorithm 1 sweep's gain never falls with d_max (what a
    reject option sees of a blind attacker): FMN's direction scaled out to d_max, and the crop
    published at the smaller d_max (inside this budget too). Where neither succeeds: the minimum-
    norm point pushed a little past the boundary (by what rounding to whole pixels can undo, 64),
    then `fallback(x, y, target, d_max, start) -> uint8 crops` (Algorithm 1 from the scaled point)
    for samples FMN found nothing for, or whose minimum norm is within `near_miss` × d_max: there
    one budget's attack may succeed where the minimum-norm search stopped short. Where nothing
    succeeds, the scaled crop. `precision` is the gradient passes' (judging and gains: float32).
    `deep=False` when only the attacked classifier judges the crops: a crop that succeeded at a
    smaller d_max is then kept without judging the scaled one (fewer forward passes). `polish`
    (same signature as `fallback`): run from every published success, its crop replaces the
    published one where it still succeeds with a higher gain — for crops that other classifiers
    judge (a reject option sees how deep a blind attacker went, not whether it crossed).
    `polish_needed(images uint8, idx) -> bool per sample`: which published successes it runs from (e.g.
    those the strictest judge still does not count as fooled: deeper steps change nothing for the others);
    default all.
    """
    attack = FastMinimumNorm(model, steps=steps, patience=patience, reject_aware=reject_aware,
                             stop_below=grid_stop(d_grid), precision=precision)
    res = attack(x, y, target)
    norms = attack.best_norms.detach().cpu().numpy()
    delta = (res.x_adv - x).detach()
    length = lp_norm(delta, "l2").clamp_min(1e-6)
    everyone = np.arange(len(norms))
    clean = x.round().clamp(0, 255).to(torch.uint8).cpu().numpy()

    def at(idx, radius):  # delta's direction at l2 length `radius`, as whole pixels within it
        r = torch.as_tensor(radius, dtype=x.dtype, device=x.device)
        xa = (x[idx] + delta[idx] * (r / length[idx]).view(-1, 1, 1, 1)).clamp(*attack.box)
        return quantize(xa, x[idx], float(r.max()), "l2").to(torch.uint8).cpu().numpy()

    def gain(images, idx):
        with torch.no_grad():
            xi = torch.from_numpy(images).to(x.device, x.dtype)
            return attack.gain(attack.scores(xi), y[idx], None if target is None else target[idx]).cpu().numpy()

    def take(out, ok, idx, cand) -> int:  # where `cand` succeeds, it replaces a crop that did not
        won = ~failed(cand, idx)
        out[idx[won]], ok[idx[won]] = cand[won], False
        return int(won.sum())

    images: list[np.ndarray] = []
    broken = ~failed(clean, everyone)  # d_max 0
    last = clean.copy()
    fallback_runs = fallback_wins = polish_wins = 0
    for d in (float(v) for v in d_grid):
        if d <= 0:
            images.append(clean.copy())
            continue
        judged = everyone if deep else np.flatnonzero(~broken)  # not deep: a success so far is kept unjudged
        out, ok = last.copy(), np.ones(len(norms), bool)
        if len(judged):
            out[judged] = at(judged, torch.full((len(judged),), d))
            ok[judged] = failed(out[judged], judged)
        keep = broken & ok
        both = np.flatnonzero(broken & ~ok)  # both succeed: the higher gain is published
        if len(both):
            g = gain(np.concatenate([out[both], last[both]]), np.concatenate([both, both]))
            keep[both[g[len(both):] > g[: len(both)]]] = True
        out[keep], ok[keep] = last[keep], False
        near = np.flatnonzero(ok & (norms <= d + 1e-6))
        if len(near):
            r = torch.clamp(torch.as_tensor(norms[near], dtype=x.dtype, device=x.device) + 64.0, max=d)
            take(out, ok, near, at(near, r))
        short = np.flatnonzero(ok & ((norms <= near_miss * d) | ~np.isfinite(norms)))
        if fallback is not None and len(short):
            start = torch.from_numpy(out[short]).to(x.device, x.dtype)
            fb = fallback(x[short], y[short], None if target is None else target[short], d, start)
            fallback_runs += len(short)
            fallback_wins += take(out, ok, short, fb)
        won = np.flatnonzero(~ok)
        if polish is not None and polish_needed is not None and len(won):
            won = won[polish_needed(out[won], won)]
        if polish is not None and len(won):
            cand = polish(x[won], y[won], None if target is None else target[won], d,
                          torch.from_numpy(out[won]).to(x.device, x.dtype))
            still = won[~failed(cand, won)]
            if len(still):
                pos = np.searchsorted(won, still)
                g = gain(np.concatenate([cand[pos], out[still]]), np.concatenate([still, still]))
                up = g[: len(still)] > g[len(still):]
                out[still[up]] = cand[pos[up]]
                polish_wins += int(up.sum())
        broken = broken | ~ok
        last[~ok] = out[~ok]
        images.append(out)
    info = {"norms": norms.tolist(), "gradient_evals": res.gradient_evals, "fallback_runs": fallback_runs,
            "fallback_wins": fallback_wins, "polish_wins": polish_wins, "x_adv": res.x_adv.detach()}
    return images, info


def min_norm_curve(model, x: torch.Tensor, y: torch.Tensor, d_grid, judge, steps: int = 30, patience: int = 6,
                   reject_aware: bool = False, fallback=None) -> tuple[list[float], dict]:
    """Accuracy at every d_max from one minimum-norm attack (`min_norm_images`, error-generic).

    `judge(images uint8, idx) -> bool per sample`: still correct under the evaluation's rule.
    """
    images, info = min_norm_images(model, x, y, d_grid, judge, steps=steps, patience=patience,
                                   reject_aware=reject_aware, fallback=fallback)
    everyone = np.arange(x.shape[0])
    return [float(np.mean(judge(im, everyone))) for im in images], info
