"""The binarization test (Zimmermann et al. 2022, "Increasing Confidence in Adversarial Robustness Evaluations").

An attack that finds nothing may be weak, or there may be nothing to find. This test builds, for each
tested crop x, a classifier for which an adversarial example is known to exist within d_max, and asks
whether the attack finds one: `n_inner` points drawn uniformly from the l2 ball of radius d_max around x
(with x: class 0) and one boundary point at 0.95·d_max in a random direction (class 1), all as whole
pixels; a linear readout on the guard's own features separates them (logistic regression; a crop whose
points it cannot separate is left out, as in the paper). The binarized guard — pixels → the same features
→ the readout — misclassifies the boundary point, inside the budget. The attack under test runs on it
from x; the test reports the fraction of crops where it found an adversarial example, FAIL below
`threshold`.

Against a defence whose decision the construction can express — input transforms before the
features (`transforms`) — the points' features are the defended ones (each crop with the same draws
of a randomised transform, as the judge sees it), and the binarized guard keeps the transforms in
front of its readout: the adversarial example still exists for the defended guard, and the attacker
who knows the defence (EOT, BPDA) must find it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from ..attacks.constraints import quantize
from ..core.pipeline import GuardModel
from ..defences.base import DefendedModel, InputTransform

#: the norms whose balls the construction draws its points from (l1: not built)
NORMS = ("l2", "linf")

#: `attack(model, x, y, d_max, failed) -> uint8 crops`: the attack under test on one binarized guard
AttackUnderTest = Callable[[GuardModel, torch.Tensor, torch.Tensor, float, Callable], np.ndarray]


@dataclass(frozen=True)
class BinarizationResult:
    tested: int  # crops whose points the readout separated
    found: int  # of those, where the attack found an adversarial example within d_max
    skipped: int  # crops whose inner and boundary points the readout could not separate
    threshold: float

    @property
    def fraction(self) -> float:
        return self.found / self.tested if self.tested else 0.0

    @property
    def passed(self) -> bool:
        return self.tested > 0 and self.fraction >= self.threshold

    def detail(self, d_max: float) -> str:
        """The check's line: found / tested, or why nothing could be tested (not a pass either)."""
        if not self.tested:
            return (f"d_max {d_max:g}: inconclusive — the readout separated no crop's points ({self.skipped} left "
                    f"out), so there was nothing to find; not a pass")
        return (f"d_max {d_max:g}: found for {self.found} of {self.tested} crops ({self.fraction:.2f}; FAIL below "
                f"{self.threshold:.2f}), {self.skipped} left out (points not separable)")


class _Readout(torch.nn.Module):
    """features → (−w·f − b, w·f + b): class 1 is the boundary point's."""

    def __init__(self, w: np.ndarray, b: float):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(w, dtype=torch.float64))
        self.b = float(b)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        z = f.to(torch.float64) @ self.w + self.b
        return torch.stack([-z, z], 1)


def _ball(x: torch.Tensor, n: int, radius: float, gen: torch.Generator, surface: bool, norm: str = "l2"
          ) -> torch.Tensor:
    """`n` points uniform in the `norm` ball of `radius` around x (`surface`: on its boundary: l2 a random
    direction, linf a random vertex), in the box and as whole pixels within the budget."""
    if norm == "linf":
        shape = (n, *x.shape)
        d = torch.randint(0, 2, shape, generator=gen).double() * 2 - 1 if surface else \
            torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
        pts = (x[None].double() + radius * d).clamp(0, 255).to(x.dtype)
        return quantize(pts, x[None].expand_as(pts), radius, "linf")
    d = torch.randn((n, *x.shape), generator=gen, dtype=torch.float64)
    d = d / d.reshape(n, -1).norm(dim=1).view(-1, 1, 1, 1)
    r = torch.full((n,), radius, dtype=torch.float64) if surface else \
        radius * torch.rand(n, generator=gen, dtype=torch.float64) ** (1.0 / x.numel())
    pts = (x[None].double() + d * r.view(-1, 1, 1, 1)).clamp(0, 255).to(x.dtype)
    return quantize(pts, x[None].expand_as(pts), radius, "l2")


def _binarized(extractor, w: np.ndarray, b: float, transforms: tuple[InputTransform, ...]) -> torch.nn.Module:
    """pixels → (transforms) → the guard's features → the readout."""
    model = GuardModel(extractor, _Readout(w, b), ["inner", "boundary"])
    return DefendedModel(model, list(transforms)) if transforms else model


def _features(extractor, transforms: tuple[InputTransform, ...]):
    """uint8 crops → the features the binarized guard's readout sees (float64)."""
    if not transforms:
        return lambda images: extractor.extract(images).astype(np.float64)
    probe = _binarized(extractor, np.zeros(extractor.dim), 0.0, transforms)

    def features(images: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for im in images:  # one at a time, each after a restart of the draws: a crop meets the same noise
                probe.reseed()
                xi = torch.from_numpy(np.ascontiguousarray(im[None])).to(extractor.device, torch.float32)
                out.append(probe.parts(xi)[0].double().cpu().numpy())
        return np.concatenate(out)

    return features


def binarization_test(extractor, x: torch.Tensor, d_max: float, attack: AttackUnderTest, n_inner: int = 32,
                      seed: int = 0, threshold: float = 0.95, transforms: tuple[InputTransform, ...] = (),
                      norm: str = "l2") -> BinarizationResult:
    """Run the test on crops `x` (N×H×W×3, 0..255) at `d_max` in `norm` (l2 or linf: the ball the points are drawn
    from is the attack's), with a defence's input `transforms` in front of the features when given; see the module
    docstring."""
    if norm not in NORMS:
        raise ValueError(f"the binarization test draws its points in {' or '.join(NORMS)}, not {norm}")
    gen = torch.Generator().manual_seed(seed)
    features = _features(extractor, tuple(transforms))
    tested = found = skipped = 0
    for i in range(len(x)):
        xi = x[i].cpu()
        inner = torch.cat([xi[None], _ball(xi, n_inner, d_max, gen, surface=False, norm=norm)])
        boundary = _ball(xi, 1, 0.95 * d_max, gen, surface=True, norm=norm)
        pts = torch.cat([inner, boundary]).round().clamp(0, 255).to(torch.uint8).numpy()
        f = features(pts)
        labels = np.r_[np.zeros(len(inner), int), 1]
        lr = LogisticRegression(C=1e4, class_weight="balanced", max_iter=5000).fit(f, labels)
        if not (lr.predict(f) == labels).all():
            skipped += 1
            continue
        model = _binarized(extractor, lr.coef_[0], lr.intercept_[0], tuple(transforms))

        def failed(images: np.ndarray, idx: np.ndarray, lr=lr) -> np.ndarray:  # still class 0
            return lr.predict(features(images)) == 0

        y = torch.zeros(1, dtype=torch.long, device=x.device)
        adv = attack(model, x[i: i + 1], y, d_max, failed)
        tested += 1
        found += int(not failed(adv, np.zeros(1, int))[0])
    return BinarizationResult(tested, found, skipped, threshold)
