"""Open-set recognition by extreme-value theory (OpenMax, Bendale & Boult 2016).

Per class: the mean activation vector (here: the classifier's score vector) of the correctly
classified training examples, and a Weibull fit (scipy, maximum likelihood) to the `tail_size`
largest distances from it. A sample's top-`alpha` classes are recalibrated: class c at rank r keeps
a_c·w_c with w_c = 1 − (α − r + 1)/α · WeibullCDF_c(‖v − μ_c‖); what they lose goes to "unknown".
The sample is rejected (`open_set`) when unknown wins. Activations are the scores shifted to be
non-negative per sample (order and gaps kept). The paper's tail size is 200 and α 2 with enough
data; a tail larger than a class's correctly classified examples is refused at fit time.

Where labelled held-out data is given (`calibrate(..., y)`: `evaluate --defences` has its
validation split; the guard online: each held example's scores from a classifier fitted without it,
k-fold), the means and Weibull models are fitted again on those scores. An SVM's scores on its own
training examples sit at the margins it learned, nearer the class means than any new crop's:
Weibulls fitted there call most clean test crops unknown (SimWorld7, random features: 0.67 of them
at tail 5, 0.20 when fitted on validation scores).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import weibull_min

from ..core.rules import Reason
from .base import Detector, NotFitted, check_range

MIN_TAIL = 3  # fewer points than this are no Weibull fit


class OpenSetEVT(Detector):
    name = "open_set"
    reason = Reason.OPEN_SET
    held_out = True

    def __init__(self, tail_size: int = 20, alpha: int = 2, strict: bool = True, seed: int = 0):
        super().__init__(0.05, seed)
        self.tail_size = check_range("tail_size", tail_size, MIN_TAIL, 100_000, integer=True)
        self.alpha = check_range("alpha", alpha, 1, 1000, integer=True)
        self.strict = bool(strict)  # False (the online guard): use what tail there is, down to MIN_TAIL

    def fit(self, feats, y, scores) -> OpenSetEVT:
        self._fit_weibulls(scores, y)
        self.threshold = 0.0  # the rule itself: unknown wins
        return self

    def calibrate(self, feats, scores, y=None) -> float:
        """No false-reject target (the Weibull models decide); with held-out labels `y`, refit on those scores."""
        if y is not None:
            self._fit_weibulls(scores, y, held_out=True)
        return 0.0

    def _fit_weibulls(self, scores, y, held_out: bool = False) -> None:
        v, y = scores.double().cpu().numpy(), y.cpu().numpy()
        k = v.shape[1]
        if self.alpha > k:
            raise ValueError(f"alpha ({self.alpha}) must not exceed the number of classes ({k})")
        data = "held-out" if held_out else "training"
        means, weib = np.zeros((k, k)), np.zeros((k, 2))
        for c in range(k):
            ok = v[(y == c) & (v.argmax(1) == c)]
            tail = self.tail_size
            if len(ok) < tail:
                if self.strict:
                    raise ValueError(f"tail_size {tail} is larger than class {c}'s {len(ok)} correctly classified "
                                     f"{data} examples; lower tail_size")
                tail = len(ok)
            if tail < MIN_TAIL:
                raise NotFitted(f"open_set: class {c} has {len(ok)} correctly classified {data} examples; a "
                                f"Weibull fit needs {MIN_TAIL}")
            means[c] = ok.mean(0)
            d = np.sort(np.linalg.norm(ok - means[c], axis=1))[-tail:]
            shape, _, scale = weibull_min.fit(np.maximum(d, 1e-9), floc=0.0)
            weib[c] = shape, scale
        dev = scores.device
        self._means, self._weib = torch.as_tensor(means, device=dev), torch.as_tensor(weib, device=dev)

    def recalibrated(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class activations after recalibration N×K, unknown activation N)."""
        v = scores.double()
        a = v - v.amin(1, keepdim=True)
        dist = torch.cdist(v, self._means)  # N×K
        shape, scale = self._weib[:, 0], self._weib[:, 1]
        cdf = 1 - torch.exp(-((dist / scale).clamp_min(0) ** shape))
        rank = v.argsort(1, descending=True).argsort(1)  # 0 = top
        weight = torch.clamp((self.alpha - rank).to(v.dtype), min=0) / self.alpha
        w = 1 - weight * cdf
        return a * w, (a * (1 - w)).sum(1)

    def score(self, feats, scores):
        if not hasattr(self, "_means"):
            raise NotFitted("open_set is not fitted")
        cls, unk = self.recalibrated(scores)
        return (unk - cls.amax(1)).to(scores.dtype)
