"""Bayesian uncertainty by Monte-Carlo dropout (Feinman et al. 2017): the other half of their detector.

Feinman et al. keep dropout on at test time and score a sample by how much the network's output
varies over `samples` stochastic passes, U(x) = mean_t ‖s_t‖² − ‖mean_t s_t‖²: adversarial
examples sit where the model is unsure. Their last dropout layer sits just before the final
classifier; here the final classifier is the guard's SVM, so the units dropped (rate `p`) are the
fc7 features it reads, renormalised as the extractor normalises them, and s_t are the SVM's
class scores. The backbone itself stays deterministic (its features are what the SVM learned, and
online the guard keeps features, not crops, to calibrate on). The SVM was not trained under
dropout, so the rate is small by default: at Feinman's 0.5 every dropped vector lies far from all
support vectors, the RBF scores fall to their intercepts and the spread is zero for every crop
(measured on SimWorld7: ROC AUC 0.50 at p 0.5, 0.73 at p 0.1 against reject-aware attacks at
d_max 1000).

Randomised: every call draws fresh masks, so the adaptive attacker averages over them (EOT);
`reseed()` makes a decision reproducible. It needs the classifier head it reviews: the pipeline
binds it (`bind(model)`) before fitting. Pair it with `kde` (`kde+bu`) for Feinman's combination,
each with its own threshold.
"""

from __future__ import annotations

import torch

from ..core.rules import Reason
from .base import Detector, NotFitted, check_range


class BayesianUncertainty(Detector):
    name = "bu"
    reason = Reason.DETECTOR
    randomized = True

    def __init__(self, false_reject: float = 0.05, p: float = 0.1, samples: int = 16, seed: int = 0):
        super().__init__(false_reject, seed)
        self.p = check_range("p (dropout rate)", p, 0.01, 0.95)
        self.samples = check_range("samples", samples, 2, 1000, integer=True)
        self._model = None
        self._gen = torch.Generator(device="cpu").manual_seed(seed)

    def bind(self, model) -> None:
        self._model = model

    def reseed(self) -> None:
        self._gen.manual_seed(self.seed)

    def fit(self, feats, y, scores) -> BayesianUncertainty:
        if self._model is None:
            raise NotFitted("bu reviews a classifier's scores: bind(model) it first (DefencePipeline does)")
        if len(torch.unique(y)) < 2:
            raise NotFitted(f"bu needs two classes, got {len(torch.unique(y))}")
        return self  # nothing to learn: the threshold is set on clean data by calibrate()

    def score(self, feats, scores):
        if self._model is None:
            raise NotFitted("bu is not bound to a model")
        n, dim = feats.shape
        keep = torch.rand((self.samples, 1, dim), generator=self._gen) >= self.p
        dropped = feats[None] * keep.to(feats.device, feats.dtype)  # T×N×D
        f = torch.nn.functional.normalize(dropped.reshape(-1, dim), dim=1, eps=1e-12)
        s = self._model.head(f).reshape(self.samples, n, -1).to(feats.dtype)
        return (s.square().sum(2).mean(0) - s.mean(0).square().sum(1)).clamp_min(0)
