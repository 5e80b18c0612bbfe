"""The whole recogniser as one differentiable torch module: pixels → class scores.

Every attack (ours or a library's: torchattacks, Foolbox, ART) runs on
`GuardModel`: input N×H×W×3 float crops in 0..255, output N×K one-vs-all scores
equal to the classifier's `decision_function` on the extracted features.
"""

from __future__ import annotations

import numpy as np
import torch

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

    def accepted(self, scores: torch.Tensor) -> torch.Tensor:
        """Which samples the reject option lets through (all of them if it is off)."""
        top = scores.argmax(1)
        if not self.reject:
            return torch.ones_like(top, dtype=torch.bool)
        return scores.gather(1, top[:, None])[:, 0] > self.thresholds[top]


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
