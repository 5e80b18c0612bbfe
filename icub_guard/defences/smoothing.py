"""Certified abstain by randomised smoothing (Cohen et al. 2019), in pixel units.

The smoothed guard predicts the class the base guard (argmax with its reject option) gives most
often under Gaussian noise N(0, σ²) on the crop — `n0` samples choose it, `n` others estimate its
probability — only if the one-sided Clopper–Pearson lower bound p_A at confidence 1 − α exceeds
1/2; then no l2 perturbation smaller than R = σ·Φ⁻¹(p_A) can change that prediction. Otherwise it
abstains (`not_certified`). A chosen class that is the base's "unknown" is an honest rejection
(`below_threshold`). Samples are batched (`batch` noisy crops per forward).

The noise comes from one stream per instance, seeded at construction and never restarted: every
decision draws fresh noise (a stream restarted per decision gives every frame the same draws, which an
attacker who knows the seed can optimise against), and the same seed with the same calls repeats a run.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import beta, norm

from ..core.rules import REJECTED, Reason, decide
from .base import Defence, check_range


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided lower confidence bound of a binomial proportion (k of n) at level 1 − alpha."""
    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


class RandomizedSmoothing(Defence):
    name = "smoothing"
    stage = "certify"
    randomized = True
    reason = Reason.NOT_CERTIFIED

    def __init__(self, sigma: float = 25.0, n0: int = 16, n: int = 128, alpha: float = 0.001, batch: int = 64,
                 seed: int = 0):
        super().__init__(seed)
        self.sigma = check_range("sigma (pixel values 0..255)", sigma, 1e-3, 255.0)
        self.n0 = check_range("n0", n0, 1, 100_000, integer=True)
        self.n = check_range("n", n, 1, 1_000_000, integer=True)
        self.alpha = check_range("alpha", alpha, 1e-9, 0.5)
        self.batch = check_range("batch", batch, 1, 100_000, integer=True)
        if clopper_pearson_lower(self.n, self.n, self.alpha) <= 0.5:
            need = math.ceil(math.log(self.alpha) / math.log(0.5))
            raise ValueError(f"n={self.n} samples cannot certify anything at confidence 1 − {self.alpha:g}: "
                             f"even {self.n} of {self.n} votes bound p_A only to "
                             f"{clopper_pearson_lower(self.n, self.n, self.alpha):.3f} ≤ 0.5; use n ≥ {need + 1}")
        self._gen = torch.Generator(device="cpu").manual_seed(seed)

    def reseed(self) -> None:
        """Start the noise stream again (a pipeline judging with common random numbers does, before each
        decision; the online guard does not: fresh noise for every frame)."""
        self._gen.manual_seed(self.seed)

    def _counts(self, model, x: torch.Tensor, num: int) -> np.ndarray:
        """Per sample, how often the base guard gives each class (column K: rejected) under noise."""
        k = len(model.classes)
        counts = np.zeros((x.shape[0], k + 1), np.int64)
        per = max(1, self.batch // max(1, x.shape[0]))
        left = num
        with torch.no_grad():
            while left > 0:
                m = min(per, left)
                rep = x.repeat(m, 1, 1, 1)
                noisy = (rep + self.sigma * torch.randn(rep.shape, generator=self._gen).to(x.device, x.dtype))
                s = model(noisy.clamp(0, 255))
                top, ok = decide(s, model.thresholds if getattr(model, "reject", False) else None)
                top = torch.where(ok, top, k)
                idx = top.view(m, x.shape[0]).cpu().numpy()
                for j in range(m):
                    counts[np.arange(x.shape[0]), idx[j]] += 1
                left -= m
        return counts

    def certify(self, model, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, list[Reason]]:
        """(class index per sample, REJECTED where none; certified l2 radius, 0 where none; reason)."""
        k = len(model.classes)
        choice = self._counts(model, x, self.n0).argmax(1)
        counts = self._counts(model, x, self.n)
        label = np.full(x.shape[0], REJECTED)
        radius = np.zeros(x.shape[0])
        reasons = []
        for i, c in enumerate(choice):
            p = clopper_pearson_lower(int(counts[i, c]), self.n, self.alpha)
            if p <= 0.5:
                reasons.append(self.reason)
            elif c == k:
                reasons.append(Reason.BELOW_THRESHOLD)
            else:
                label[i], radius[i] = c, self.sigma * float(norm.ppf(p))
                reasons.append(Reason.ACCEPTED)
        return label, radius, reasons
