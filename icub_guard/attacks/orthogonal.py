"""Orthogonal PGD (Bryniarski et al., 2022): the adaptive attack on a classifier guarded by detectors.

A penalty on the detectors' scores (the joint objective a defended model's forward pass gives)
folds two goals into one landscape, and ascent on it stalls where being misclassified and staying
undetected pull apart: from a clean crop it broke fewer crops than the attack that ignores the
detectors (SimWorld7, kde, bu, mahalanobis, open_set). Bryniarski et al. pursue the goals one at
a time. While the classifier is not fooled, a step follows the classifier's gain with the part
that would raise a detector's score projected out; once the classifier is fooled but a detector
fires, a step lowers the detectors' scores with the part that would undo the misclassification
projected out. Steps have PGD's fixed, decaying size, so the path can cross what a monotone ascent
cannot. The crop kept is, of those that fooled both, the one furthest below the detectors'
thresholds; where none did, the last iterate (a d_max sweep starts from it). Randomised defences:
each step averages `eot` draws (EOT).

The model must expose `parts(x) → (features, scores, {detector: score})` and `detectors` with
their thresholds, as `defences.DefendedModel` does; a detector counts as firing within `margin`
(relative) of its threshold, the margin the defended model's own penalty uses.
"""

from __future__ import annotations

import torch

from .base import Attack, check_steps, steepest_direction


class OrthogonalPGD(Attack):
    name = "orthogonal"
    norms = ("l2", "linf", "l1")

    def __init__(self, model, eps: float | None = 1000.0, norm: str = "l2", steps: int = 50, eot: int = 1,
                 step_size: float | None = None, orthogonal: bool = True, **kw):
        if not callable(getattr(model, "parts", None)) or not hasattr(model, "detectors"):
            raise ValueError("orthogonal attacks a model guarded by detectors: one with parts(x) → (features, "
                             "scores, detector scores) and detectors, as defences.DefendedModel")
        super().__init__(model, eps, norm, **kw)
        self.steps = check_steps(steps)
        if isinstance(eot, bool) or not isinstance(eot, int) or eot < 1:
            raise ValueError(f"eot must be a whole number >= 1, got {eot!r}")
        if step_size is not None and not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size!r}")
        self.eot, self.step_size, self.orthogonal = eot, step_size, bool(orthogonal)

    def past_firing(self, det: dict[str, torch.Tensor]) -> torch.Tensor:
        """N×D: how far past firing each detector is, relative to its threshold (margin included; > 0: fires)."""
        margin = float(getattr(self.model, "margin", 0.0))
        cols = [(det[d.name].float() - d.threshold) / max(abs(d.threshold), 1e-6) + margin
                for d in self.model.detectors if d.name in det]
        if not cols:
            raise ValueError("orthogonal needs a fitted detector in the model")
        return torch.stack(cols, 1)

    def _grads(self, x, y, target):
        """(classifier gain, each detector's relative distance past firing, the gradients of the gain and of the
        detectors' excess), averaged over `eot` draws. Where only detectors are randomised: one pass through the
        network, `eot` draws of their scores."""
        x = x.detach().requires_grad_(True)
        gain = past = g_c = g_d = 0.0
        passes = self.eot if any(t.randomized for t in getattr(self.model, "transforms", ())) else 1
        for _ in range(passes):
            self.check_stop()
            with torch.enable_grad(), torch.autocast(x.device.type, torch.bfloat16,
                                                     enabled=self.precision == "bfloat16"):
                _, s, det = self.model.parts(x, draws=self.eot // passes)
                g = self.gain(s.float(), y, target)
                rel = self.past_firing(det)
                (gc,) = torch.autograd.grad(g.sum(), x, retain_graph=True)
                (gd,) = torch.autograd.grad(torch.relu(rel).sum(), x, allow_unused=True)
                gd = torch.zeros_like(x) if gd is None else gd
            self.gradient_evals += 1
            gain, past = gain + g.detach() / passes, past + rel.detach() / passes
            g_c, g_d = g_c + gc / passes, g_d + gd / passes
        if self.mask is not None:
            g_c, g_d = g_c * self.mask, g_d * self.mask
        return gain, past, g_c, g_d

    def _direction(self, fooled, rel, g_c, g_d):
        """Ascent on the classifier's gain until it is fooled, then descent on the detectors' excess; each with
        the other goal's gradient projected out (`orthogonal`)."""
        n = g_c.shape[0]
        c, d = g_c.reshape(n, -1), -g_d.reshape(n, -1)
        if self.orthogonal:
            c_hat = c / c.norm(dim=1, keepdim=True).clamp_min(1e-12)
            d_hat = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
            c = c - (c * d_hat).sum(1, keepdim=True) * d_hat
            d = d - (d * c_hat).sum(1, keepdim=True) * c_hat
        detected = (rel > 0).any(1)
        return torch.where((fooled & detected)[:, None], d, c).reshape(g_c.shape)

    def _run(self, x, y, target, start):
        eta0 = self.step_size or (0.5 * self.eps if self.eps else 50.0)  # half the budget, decaying
        cur, best = start.clone(), start.clone()
        slack = torch.full((x.shape[0],), float("-inf"), device=x.device)  # of the best success so far
        for t in range(self.steps):
            gain, rel, g_c, g_d = self._grads(cur, y, target)
            fooled = gain > 0
            # of the crops that fool both, the one furthest below the detectors' thresholds: a randomised
            # detector's single draw at decision time is least likely to fire on it
            s_t = -rel.amax(1)
            ok = fooled & (s_t > 0) & (s_t > slack)
            best = torch.where(ok.view(-1, 1, 1, 1), cur, best)
            slack = torch.where(ok, s_t, slack)
            if t == self.steps - 1:
                break
            eta = eta0 * (1.0 - 0.9 * t / max(self.steps - 1, 1))  # decaying: large moves first, then settle
            cur = self.project(cur + eta * steepest_direction(self._direction(fooled, rel, g_c, g_d), self.norm), x)
        return torch.where(torch.isfinite(slack).view(-1, 1, 1, 1), best, cur)
