"""The guard's defences in the order given: decisions with the stage that rejected and each stage's score.

`DefencePipeline(model, defences)` decides on crops (N×H×W×3, 0..255): transforms, then the
classifier with its reject option (`below_threshold`), then each detector in order (`detector`,
`open_set`); or, with `smoothing`, the certified prediction (`not_certified`, with its radius).
A detector not fitted yet (too little data) is skipped and says so in `notes`: the reject option
still decides. `attack_model()` is what an attacker who knows the defences differentiates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.rules import REJECTED, Reason, decide
from .base import EOT, Defence, DefendedModel, Detector, NotFitted
from .smoothing import RandomizedSmoothing


@dataclass
class DefendedDecision:
    label: int  # class index, REJECTED (−1): rejected
    reason: Reason  # accepted | below_threshold | detector | open_set | not_certified
    stage_scores: dict[str, float] = field(default_factory=dict)
    radius: float | None = None  # certified l2 radius (smoothing)


def compose(defences: list[Defence]) -> tuple[list[Defence], list[Defence], RandomizedSmoothing | None]:
    """(training defences, deciding defences in order, smoothing or None); `ValueError` for a list that
    cannot be composed. Needs no model: the guard's on-set callback and `evaluate` check lists with it."""
    names = [d.name for d in defences]
    if len(set(names)) != len(names):
        raise ValueError(f"a defence is listed twice: {names}")
    training = [d for d in defences if d.stage == "train"]  # they shape the model, not its decisions
    deciding = [d for d in defences if d.stage != "train"]
    smoothing = [d for d in deciding if isinstance(d, RandomizedSmoothing)]
    if smoothing and len(deciding) > 1:
        raise ValueError("smoothing is a prediction rule of its own: use it alone (adv_augment aside)")
    return training, deciding, smoothing[0] if smoothing else None


class DefencePipeline:
    def __init__(self, model: torch.nn.Module, defences: list[Defence], fresh_noise: bool = True):
        """`fresh_noise`: randomised defences draw new noise for every decision (a robot: the draws an attacker
        optimised against are not the ones that judge); False restarts their streams before each decision, so
        an evaluation judges every attack's crops with the same draws (common random numbers)."""
        self.fresh_noise = fresh_noise
        self.training, deciding, self.smoothing = compose(defences)
        self.model, self.defences = model, deciding
        self.defended = None if self.smoothing else DefendedModel(model, self.defences)
        self.notes: list[str] = []

    @property
    def detectors(self) -> list[Detector]:
        return [d for d in self.defences if isinstance(d, Detector)]

    def fit(self, feats: torch.Tensor, y: torch.Tensor, val_feats: torch.Tensor | None = None,
            val_y: torch.Tensor | None = None) -> DefencePipeline:
        """Fit and calibrate the detectors on clean features (train; validation, with its labels if given, for the
        thresholds and open_set's Weibull models)."""
        self.notes = []
        head = self.model.head
        with torch.no_grad():
            s, sv = head(feats), head(val_feats if val_feats is not None else feats)
        for d in self.detectors:
            try:
                d.fit(feats, y, s)
                if val_feats is None:
                    d.calibrate(feats, sv)
                else:
                    d.calibrate(val_feats, sv, val_y)
            except NotFitted as exc:
                d.threshold = None
                self.notes.append(f"{d.name} not fitted ({exc}); the reject option decides")
        return self

    def attack_model(self, eot: int = 1) -> torch.nn.Module:
        """The module an adaptive attacker differentiates: the defended model, averaged over `eot` random draws
        where a defence is randomised (smoothing: the base model under its Gaussian noise)."""
        if self.smoothing is not None:
            from .noise import GaussianNoise

            inner = DefendedModel(self.model, [GaussianNoise(self.smoothing.sigma, seed=self.smoothing.seed + 1)])
            return EOT(inner, eot)
        randomized = any(d.randomized for d in self.defences)
        return EOT(self.defended, eot) if randomized and eot > 1 else self.defended

    def decide(self, x: torch.Tensor, feats: torch.Tensor | None = None) -> list[DefendedDecision]:
        """Decisions on crops `x`; with no transforms, `feats` (the crops' features, already computed) spare a
        second forward through the network."""
        if self.smoothing is not None:
            if not self.fresh_noise:
                self.smoothing.reseed()
            label, radius, reasons = self.smoothing.certify(self.model, x)
            return [DefendedDecision(int(c), r, {"radius": float(rad)}, float(rad))
                    for c, rad, r in zip(label, radius, reasons, strict=True)]
        if not self.fresh_noise:
            self.defended.reseed()
        with torch.no_grad():
            if feats is not None and not self.defended.transforms:
                s = self.model.head(feats)
                det = {d.name: d.score(feats, s) for d in self.detectors if d.fitted}
            else:
                _, s, det = self.defended.parts(x)
        top, ok = decide(s, self.defended.thresholds)
        out = []
        for i in range(x.shape[0]):
            reason = Reason.ACCEPTED if ok[i] else Reason.BELOW_THRESHOLD
            stage = {"classifier": float(s[i, top[i]])}
            for d in self.detectors:
                if d.name not in det:
                    continue
                v = float(det[d.name][i])
                stage[d.name] = v
                if reason == Reason.ACCEPTED and v > d.threshold:
                    reason = d.reason
            out.append(DefendedDecision(int(top[i]) if reason == Reason.ACCEPTED else REJECTED, reason, stage))
        return out

    def labels(self, x: torch.Tensor, batch: int = 32) -> np.ndarray:
        """Class index per crop, −1 where rejected (batched)."""
        return np.array([d.label for i in range(0, x.shape[0], batch) for d in self.decide(x[i : i + batch])])
