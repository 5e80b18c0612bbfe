"""The whole recogniser as one differentiable torch module: pixels → class scores.

`GuardModel` takes N×H×W×3 float crops in 0..255 (the attacker's space, what a
camera publishes) and returns N×K one-vs-all scores equal to the classifier's
`decision_function` on the extracted features (float64 unless cast). Our attacks
run on it directly. Libraries (torchattacks, Foolbox, ART) expect another
convention — N×C×H×W float32 in [0, 1] in, float32 scores out — which
`GuardModel.nchw01()` provides; their budgets are then in [0, 1] units (×255 for ours).
"""

from __future__ import annotations

import numpy as np
import torch

from . import rules
from .features import FeatureExtractor
from .kernels import KernelScores


class GuardModel(torch.nn.Module):
    """features ∘ scores, with the reject thresholds and class names attached."""

    def __init__(self, extractor: FeatureExtractor, head: KernelScores, classes, thresholds=None,
                 reject: bool = False):
        super().__init__()
        self.extractor = extractor
        self.head = head.to(extractor.device)
        self.classes = [str(c) for c in classes]
        t = np.zeros(len(self.classes)) if thresholds is None else np.asarray(thresholds, np.float64)
        self.register_buffer("thresholds", torch.as_tensor(t, dtype=torch.float64, device=extractor.device))
        self.reject = bool(reject)

    @classmethod
    def from_classifier(cls, extractor: FeatureExtractor, clf) -> GuardModel:
        return cls(extractor, clf.torch_scores(), clf.classes_, clf.thresholds_, clf.reject)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.extractor(x))

    def nchw01(self) -> NCHW01:
        """This model in the libraries' convention (NCHW, float32, [0, 1])."""
        return NCHW01(self)

    def accepted(self, scores: torch.Tensor) -> torch.Tensor:
        """Which samples the reject option lets through (all of them if it is off): `rules.decide`."""
        return rules.decide(scores, self.thresholds if self.reject else None)[1]


class NCHW01(torch.nn.Module):
    """N×C×H×W float32 in [0, 1] → float32 scores: torchattacks', Foolbox's and ART's convention.

    Without it, torchattacks clamps our 0..255 crops to [0, 1] (black images),
    Foolbox's DeepFool fails on float64 scores and ART scales steps by 255.
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.eval()  # libraries check `training` (a frozen backbone is always in inference mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 2, 3, 1) * 255.0).to(torch.float32)


class RegionModel(torch.nn.Module):
    """Frame region (N×h×w×3, 0..255) → the guard's crop size → scores.

    The guard crops the ROI box and resizes it (cv2 INTER_LINEAR when enlarging,
    INTER_AREA when shrinking); this module does the same resize differentiably,
    so an attacker on the camera stream can perturb the very pixels it publishes.
    """

    def __init__(self, model: GuardModel, crop_size: int):
        super().__init__()
        self.model, self.crop_size = model, int(crop_size)
        self.reject, self.classes = model.reject, model.classes

    @property
    def thresholds(self) -> torch.Tensor:
        return self.model.thresholds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.crop_size
        z = x.permute(0, 3, 1, 2)
        if z.shape[-2:] != (s, s):
            shrink = min(z.shape[-2:]) > s
            z = torch.nn.functional.interpolate(z, size=(s, s), mode="area" if shrink else "bilinear",
                                                **({} if shrink else {"align_corners": False}))
        return self.model(z.permute(0, 2, 3, 1))
