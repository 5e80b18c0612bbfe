"""Kernel density detector (Feinman et al. 2017): how typical the features are of the predicted class.

Score: −log of a Gaussian kernel density estimate of the sample's features among the training
features of the class it is predicted as (higher: less typical). `bandwidth` 0 takes the median
distance between training features (the usual heuristic). Feinman et al. pair it with Bayesian
uncertainty from dropout: that half is `bu` (uncertainty.py); `kde+bu` runs both.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.rules import Reason
from .base import Detector, NotFitted, check_range


class KernelDensity(Detector):
    name = "kde"
    reason = Reason.DETECTOR

    def __init__(self, false_reject: float = 0.05, bandwidth: float = 0.0, seed: int = 0):
        super().__init__(false_reject, seed)
        self.bandwidth = check_range("bandwidth (0: median heuristic)", bandwidth, 0.0, 1e6)
        self._feats = self._labels = None

    def fit(self, feats, y, scores) -> KernelDensity:
        if len(torch.unique(y)) < 2 or len(feats) < 4:
            raise NotFitted(f"kde needs two classes and 4 examples, got {len(torch.unique(y))} and {len(feats)}")
        f = feats.double()
        bw = self.bandwidth
        if bw == 0:
            idx = np.random.default_rng(self.seed).choice(len(f), size=min(len(f), 500), replace=False)
            d = torch.cdist(f[idx], f[idx])
            bw = float(d[d > 0].median()) if bool((d > 0).any()) else 1.0
        self._bw, self._feats, self._labels = bw, f, y.clone()
        self._counts = torch.bincount(y).double()
        return self

    def score(self, feats, scores):
        if self._feats is None:
            raise NotFitted("kde is not fitted")
        top = scores.argmax(1)
        d2 = torch.cdist(feats.double(), self._feats) ** 2  # N×M
        same = self._labels[None, :] == top[:, None]
        logk = torch.where(same, -d2 / self._bw**2, torch.full_like(d2, -math.inf))
        log_density = torch.logsumexp(logk, dim=1) - torch.log(self._counts[top])
        return (-log_density).to(feats.dtype)
