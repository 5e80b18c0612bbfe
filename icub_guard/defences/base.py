"""The base every defence shares, and the defended pixels → scores module the adaptive attacker runs on.

Three kinds, by where they act:
* `InputTransform` — changes the crops before the network (noise, blur, shifts, crops, resize-pad,
  JPEG); a transform may return several views of each crop (multi-crop), whose scores are averaged
  or voted. Randomised ones draw fresh randomness at every call: the adaptive attacker averages
  over many calls (EOT); a non-differentiable one (JPEG) passes gradients straight through (BPDA).
* `Detector` — scores each sample's features (and class scores); above a threshold calibrated to a
  stated false-reject rate on clean data, the sample is rejected with the detector's `reason`
  (`detector`, `open_set`). For the adaptive attacker a detected sample counts as rejected, so
  being accepted with a wrong label means staying under the threshold too (`attacks.OrthogonalPGD`
  pursues the two goals in turn; any scores-module attack gets the penalised joint objective below).
* certification (`smoothing.RandomizedSmoothing`) — its own prediction rule, see there.

Constructors raise on parameters they do not support (a bad value: `ValueError`, with the reason).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from ..core.rules import Reason, decide

log = logging.getLogger(__name__)


class NotFitted(ValueError):
    """A data-driven defence has too little data to be fitted yet (the guard falls back to the reject option)."""


def check_range(name: str, value, lo: float, hi: float, integer: bool = False):
    """A parameter in [lo, hi] (a whole number if `integer`), else `ValueError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise ValueError(f"{name} must be a {'whole number' if integer else 'number'}, got {value!r}")
    if not (lo <= value <= hi) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
    return value


class Defence:
    """Base class. `name` is the registry name (`make_defence`); `params()` what it was built with."""

    name = "defence"
    stage = "none"
    randomized = False

    def __init__(self, seed: int = 0):
        self.seed = check_range("seed", seed, 0, 2**31 - 1, integer=True)

    def params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def reseed(self) -> None:
        """Start a randomised defence's random stream again (a decision is then reproducible)."""

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


class InputTransform(Defence):
    """Crops N×H×W×3 (float, 0..255) → `views`·N crops, view-major (view v of sample i at v·N + i)."""

    stage = "transform"
    views = 1
    #: how the views' scores are combined: "mean" (scores averaged) or "vote" (majority of accepted labels)
    combine = "mean"

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self._gen = torch.Generator(device="cpu").manual_seed(seed)

    def reseed(self) -> None:
        self._gen.manual_seed(self.seed)

    def noise_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self._gen).to(x.device, x.dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Detector(Defence):
    """Scores samples (higher: more suspicious); rejects above `threshold`, set for `false_reject` on clean data."""

    stage = "detector"
    reason = Reason.DETECTOR
    #: refits on labelled held-out scores when `calibrate` gets labels (online: each example's scores from a
    #: classifier fitted without it)
    held_out = False

    def __init__(self, false_reject: float = 0.05, seed: int = 0):
        super().__init__(seed)
        self.false_reject = check_range("false_reject", false_reject, 1e-4, 0.5)
        self.threshold: float | None = None

    @property
    def fitted(self) -> bool:
        return self.threshold is not None

    def bind(self, model: torch.nn.Module) -> None:
        """The guard model whose decisions it reviews (`DefendedModel` binds it; most detectors need only
        the features and scores they are given)."""

    def fit(self, feats: torch.Tensor, y: torch.Tensor, scores: torch.Tensor) -> Detector:
        """Fit on clean training features `feats` (N×D), class indices `y` and the classifier's `scores` (N×K)."""
        raise NotImplementedError

    def calibrate(self, feats: torch.Tensor, scores: torch.Tensor, y: torch.Tensor | None = None) -> float:
        """Threshold: the (1 − false_reject) quantile of clean validation samples' detector scores.

        `y`: their class indices, when the caller has them (a detector may refit on held-out data)."""
        with torch.no_grad():
            s = self.score(feats, scores).double().cpu().numpy()
        if len(s) < 2:
            raise NotFitted(f"{self.name}: calibrating needs at least 2 clean samples, got {len(s)}")
        self.threshold = float(np.quantile(s, 1.0 - self.false_reject, method="higher"))
        return self.threshold

    def score(self, feats: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def flags(self, feats: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.threshold is None:
            raise NotFitted(f"{self.name} is not fitted")
        return self.score(feats, scores) > self.threshold


class DefendedModel(torch.nn.Module):
    """The guard with its defences as one pixels → scores module (N×H×W×3, 0..255 → N×K).

    Transforms run in order on the crops; the views' scores are averaged. A detector pulls all of a
    sample's scores down by `penalty` per unit of its score above (threshold − `margin`), in units of
    the threshold's scale, so the reject-aware attacker's objective treats "detected" as "rejected":
    the joint objective of an adaptive attack (accepted with a wrong label and undetected). The
    pipeline's decisions apply each detector's threshold exactly; this is the attacker's view. Ascent on
    it stalls at a detector from a clean crop: `attacks.OrthogonalPGD` works on `parts` instead.
    """

    def __init__(self, model: torch.nn.Module, defences: list[Defence], penalty: float = 50.0, margin: float = 0.02):
        super().__init__()
        self.model = model
        self.transforms = [d for d in defences if isinstance(d, InputTransform)]
        self.detectors = [d for d in defences if isinstance(d, Detector)]
        unknown = [d for d in defences if not isinstance(d, InputTransform | Detector)]
        if unknown:
            raise ValueError(f"not a transform or detector: {unknown}")
        for d in self.detectors:
            d.bind(model)
        self.penalty, self.margin = float(penalty), float(margin)
        self.classes = model.classes
        self.reject = True  # the detectors reject even where the classifier has no reject option
        t = model.thresholds if getattr(model, "reject", False) else torch.full_like(model.thresholds, -1e6)
        self.register_buffer("thresholds", t.clone())

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        z, v = x, 1
        for t in self.transforms:
            z = t(z)
            v *= t.views
        return z, v

    def parts(self, x: torch.Tensor, draws: int = 1) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(features averaged over views, scores combined over views, each detector's score).

        `draws`: a randomised detector's score averaged over that many draws on the same features (its EOT at
        the cost of the head alone; the transforms' randomness needs the caller's passes)."""
        n = x.shape[0]
        z, v = self.views(x)
        f = self.model.features(z)
        s = self.model.head(f)
        f = f.reshape(v, n, -1).mean(0)
        s = s.reshape(v, n, -1)
        if v > 1 and any(t.combine == "vote" for t in self.transforms):
            s = _vote(s, self.thresholds)
        else:
            s = s.mean(0)
        return f, s, {d.name: torch.stack([d.score(f, s) for _ in range(draws if d.randomized else 1)]).mean(0)
                      for d in self.detectors if d.fitted}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, s, det = self.parts(x)
        for d in self.detectors:
            if d.name in det:
                # a hinge with a margin: continuous (a step would stall a line search at the boundary),
                # and steep enough that a crop past the threshold has every class far below its own
                excess = (det[d.name] - d.threshold) / max(abs(d.threshold), 1e-6) + self.margin
                s = s - self.penalty * torch.relu(excess)[:, None]
        return s

    def reseed(self) -> None:
        for d in (*self.transforms, *self.detectors):
            d.reseed()


def _vote(s: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """V×N×K scores → N×K: each class's share of the views that accept it (minus 0.5: > 0 is a majority)."""
    top, accepted = decide(s, thresholds)
    votes = torch.nn.functional.one_hot(top, s.shape[2]).to(s.dtype) * accepted[..., None]
    return votes.mean(0) - 0.5 + 1e-3 * s.mean(0)  # ties broken by the mean score (and gradients flow)


class EOT(torch.nn.Module):
    """Expectation over transformation: the mean of `samples` forward passes of a randomised module."""

    def __init__(self, model: torch.nn.Module, samples: int):
        super().__init__()
        self.model = model
        self.samples = check_range("eot samples", samples, 1, 10_000, integer=True)
        self.classes, self.reject = model.classes, model.reject

    @property
    def thresholds(self) -> torch.Tensor:
        return self.model.thresholds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.model(x) for _ in range(self.samples)]).mean(0)
