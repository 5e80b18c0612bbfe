"""APGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks"): PGD with momentum and a step size halved at checkpoints where progress stalls.

The losses are written in the guard's margin, so the attack is reject-aware where the reject option
judges (`reject_aware`): with z_l = f_l − thr_l and a "rejected" logit 0,

* `loss="ce"`: the cross-entropy of "true class or rejected" — log Σ_{l≠y} e^{z_l} − log(e^{z_y} + e^0 +
  Σ_{l≠y} e^{z_l}) is maximised, so probability mass moves to wrong classes that would be accepted
  (reject-blind: plain cross-entropy on the scores); targeted: log-softmax of the target;
* `loss="dlr"`: the difference of logits ratio — the attacker's gain (`Attack.gain`: the accept margin
  of the best wrong class, or of the target) over the spread of the sorted scores, z_π1 − z_π3
  (targeted: z_π1 − (z_π3 + z_π4)/2), so the step size does not depend on the scores' scale.

`APGDT` is the targeted attack over the `n_targets` best-scoring wrong classes (AutoAttack's APGD-T; reject-aware:
ranked by score minus threshold),
each tried on the samples not yet broken. Every sample stops once it is broken (the first success is
kept). l∞ and l2 steps are the paper's; l1 takes the steepest l1 step over the top 1 % of coordinates
(`steepest_direction`) under the same schedule, a simplification of APGD-l1 (Croce & Hein 2021).
"""

from __future__ import annotations

import math

import torch

from .base import Attack, check_steps, steepest_direction

LOSSES = ("ce", "dlr")


def checkpoints(steps: int) -> list[int]:
    """The iterations where APGD checks progress: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03,
    0.06), as fractions of `steps`."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(q * steps - 1e-9) for q in p if 0 < q < 1})  # 0.57 · 100 is 57.000…01 in floats


class APGD(Attack):
    name = "apgd"
    norms = ("l2", "linf", "l1")

    def __init__(self, model, eps: float | None = None, norm: str | None = None, steps: int = 100,
                 restarts: int = 1, loss: str = "ce", rho: float = 0.75, momentum: float = 0.75, **kw):
        super().__init__(model, eps, norm, **kw)
        if self.eps is None or self.eps <= 0:
            raise ValueError(f"{self.name} needs a budget eps > 0")
        self.steps = check_steps(steps)
        self.restarts = check_steps(restarts)
        if loss not in LOSSES:
            raise ValueError(f"{self.name} loss must be one of {', '.join(LOSSES)}, not {loss!r}")
        if not 0 < rho < 1 or not 0 < momentum <= 1:
            raise ValueError("rho must be in (0, 1) and momentum in (0, 1]")
        self.loss, self.rho, self.momentum = loss, float(rho), float(momentum)

    # ------------------------------------------------------------ losses
    def objective(self, scores: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """The loss to maximise, per sample (see the module docstring)."""
        if self.loss == "dlr":
            top = scores.sort(1, descending=True).values
            k = top.shape[1]
            third = top[:, min(2, k - 1)]
            if target is not None:
                third = (third + top[:, min(3, k - 1)]) / 2
            return self.gain(scores, y, target) / (top[:, 0] - third + 1e-12)
        z = self.relative(scores)
        if z is not scores:  # reject-aware: a "rejected" logit 0 beside the classes
            z = torch.cat([z, z.new_zeros(len(z), 1)], 1)
        logp = torch.log_softmax(z, 1)
        if target is not None:
            return logp.gather(1, target[:, None])[:, 0]
        wrong = logp[:, : scores.shape[1]].scatter(1, y[:, None], float("-inf"))
        return torch.logsumexp(wrong, 1)

    def relative(self, scores: torch.Tensor) -> torch.Tensor:
        """The scores as the reject option reads them: minus each class's threshold when reject-aware (z_l), else
        the scores themselves."""
        if self.reject_aware and self.thresholds is not None:
            return scores - self.thresholds.to(scores.dtype)[None]
        return scores

    def _grad(self, x, y, target):
        return self.gain_and_grad(x, y, target, self.objective)

    def _step(self, grad: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        return eta.view(-1, 1, 1, 1) * steepest_direction(grad, self.norm)

    def _init(self, x: torch.Tensor, start: torch.Tensor, restart: int) -> torch.Tensor:
        """The first restart from `start` (a warm start, or the clean crop), later ones from a random point."""
        if restart == 0:
            return start
        gen = torch.Generator(device="cpu").manual_seed(self.seed + restart)
        d = torch.randn(x.shape, generator=gen) if self.norm != "linf" else torch.rand(x.shape, generator=gen) * 2 - 1
        if self.norm != "linf":
            d = d / d.reshape(len(d), -1).norm(dim=1).view(-1, 1, 1, 1)
        return self.project(x + 0.5 * self.eps * d.to(x.device, x.dtype), x)

    # --------------------------------------------------------------- run
    def _run(self, x, y, target, start):
        best = start.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        best_f = torch.full((len(x),), -float("inf"), device=x.device, dtype=torch.float64)
        for restart in range(self.restarts):
            todo = torch.nonzero(~done).flatten()
            if len(todo) == 0:
                break
            xr, fr, ok = self._apgd(x[todo], y[todo], None if target is None else target[todo],
                                    self._init(x[todo], start[todo], restart))
            better = ok | ((fr > best_f[todo]) & ~done[todo])
            best[todo[better]] = xr[better]
            best_f[todo[better]] = fr[better].to(best_f.dtype)
            done[todo[ok]] = True
        return best

    def _apgd(self, x, y, target, x0):
        """One APGD run: the broken crop where a sample was broken (first success), else its best point."""
        n, steps = len(x), self.steps
        eta = torch.full((n,), 2.0 * self.eps, device=x.device)
        checks = set(checkpoints(steps))
        cur = self.project(x0, x)
        f, g, s = self._grad(cur, y, target)
        best_x, best_f, best_g = cur.clone(), f.clone(), g.clone()  # the gradient at the best point, kept as
        # AutoAttack keeps it: a halving restarts there without another backward pass
        ok = self.success(s, y, target)
        active = ~ok
        prev = cur.clone()
        last_check, rises = 0, torch.zeros(n, device=x.device)
        f_at_check, eta_at_check = best_f.clone(), eta.clone()
        for k in range(steps):
            idx = torch.nonzero(active).flatten()
            if len(idx) == 0:
                break
            xi, pi = cur[idx], prev[idx]
            z = self.project(xi + self._step(g[idx], eta[idx]), x[idx])
            a = self.momentum if k > 0 else 1.0
            nxt = self.project(xi + a * (z - xi) + (1 - a) * (xi - pi), x[idx])
            prev[idx], cur[idx] = xi, nxt
            fi, gi, si = self._grad(nxt, y[idx], None if target is None else target[idx])
            g[idx] = gi
            rises[idx] += (fi > f[idx]).float()
            f[idx] = fi
            up = fi > best_f[idx]
            best_x[idx[up]], best_f[idx[up]], best_g[idx[up]] = nxt[up], fi[up], gi[up]
            won = self.success(si, y[idx], None if target is None else target[idx])
            best_x[idx[won]] = nxt[won]  # a broken crop is kept as it is, and the sample stops
            ok[idx[won]] = True
            active[idx[won]] = False
            if k + 1 in checks:
                span = k + 1 - last_check
                stalled = (rises < self.rho * span) | ((eta == eta_at_check) & (best_f <= f_at_check))
                stalled &= active
                eta[stalled] /= 2
                cur[stalled], prev[stalled] = best_x[stalled], best_x[stalled]
                f[stalled], g[stalled] = best_f[stalled], best_g[stalled]  # restart from the best point
                last_check, rises = k + 1, torch.zeros_like(rises)
                f_at_check, eta_at_check = best_f.clone(), eta.clone()
        return best_x, best_f, ok


class APGDT(APGD):
    """Targeted APGD over the `n_targets` best-scoring wrong classes (AutoAttack's APGD-T, DLR-T loss by
    default): a sample counts as broken when any of them is accepted; with a `target`, only that one."""

    name = "apgd-t"

    def __init__(self, model, eps: float | None = None, norm: str | None = None, n_targets: int = 3,
                 loss: str = "dlr", **kw):
        super().__init__(model, eps, norm, loss=loss, **kw)
        self.n_targets = check_steps(n_targets)

    def target_order(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The wrong classes per sample, most promising first: by score, or — reject-aware — by score minus the
        class's threshold (the class nearest to being accepted; a high-scoring class with a high threshold is
        further from acceptance than its score says)."""
        return self.relative(scores).scatter(1, y[:, None], -float("inf")).argsort(1, descending=True)

    def _run(self, x, y, target, start):
        if target is not None:
            return super()._run(x, y, target, start)
        with torch.no_grad():
            s = self.scores(x)
        order = self.target_order(s, y)
        best = start.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for j in range(min(self.n_targets, s.shape[1] - 1)):
            todo = torch.nonzero(~done).flatten()
            if len(todo) == 0:
                break
            t = order[todo, j]
            xr = super()._run(x[todo], y[todo], t, start[todo])
            with torch.no_grad():
                won = self.success(self.scores(xr), y[todo], None)  # any wrong class accepted
            best[todo[won]] = xr[won]
            done[todo[won]] = True
        return best
