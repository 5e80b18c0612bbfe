"""Mahalanobis detector on the features (Lee et al. 2018): class means, one shared covariance.

Score: the smallest Mahalanobis distance to a class mean. With 4096-d features and tens of
examples per class the covariance is singular, so it is estimated in the span of the top
`components` principal directions of the training features, with Ledoit–Wolf shrinkage.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.covariance import LedoitWolf

from ..core.rules import Reason
from .base import Detector, NotFitted, check_range


class Mahalanobis(Detector):
    name = "mahalanobis"
    reason = Reason.DETECTOR

    def __init__(self, false_reject: float = 0.05, components: int = 64, seed: int = 0):
        super().__init__(false_reject, seed)
        self.components = check_range("components", components, 1, 4096, integer=True)
        self._basis = self._means = self._precision = None

    def fit(self, feats, y, scores) -> Mahalanobis:
        X, y = feats.double().cpu().numpy(), y.cpu().numpy()
        classes = np.unique(y)
        if len(X) < len(classes) + 2:
            raise NotFitted(f"mahalanobis needs more examples than classes + 1, got {len(X)} for {len(classes)}")
        mu = X.mean(0)
        _, _, vt = np.linalg.svd(X - mu, full_matrices=False)
        basis = vt[: min(self.components, len(X) - 1)]
        Z = (X - mu) @ basis.T
        means = np.stack([Z[y == c].mean(0) for c in classes])
        resid = Z - means[np.searchsorted(classes, y)]
        precision = LedoitWolf().fit(resid).precision_
        dev = feats.device
        self._mu = torch.as_tensor(mu, device=dev)
        self._basis = torch.as_tensor(basis, device=dev)
        self._means = torch.as_tensor(means, device=dev)
        self._precision = torch.as_tensor(precision, device=dev)
        return self

    def score(self, feats, scores):
        if self._basis is None:
            raise NotFitted("mahalanobis is not fitted")
        z = (feats.double() - self._mu) @ self._basis.T
        d = z[:, None, :] - self._means[None]  # N×C×k
        m = torch.einsum("nck,kl,ncl->nc", d, self._precision, d)
        return m.amin(1).to(feats.dtype)
