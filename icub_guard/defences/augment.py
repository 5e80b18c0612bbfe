"""Adversarial augmentation of the online SVM: a taught crop is also learned in attacked form.

The classifier-side counterpart of adversarial training (the backbone stays frozen): when the
teacher's label for a crop is learned, `attack` (error-generic, reject-aware, within `eps` in
`norm`, `steps` iterations) is run on that crop against the current model, and the adversarial
crop's features are learned with the same label, attributed to the same teacher and decision (so
forgetting the label forgets both). It costs one attack per label in the guard's thread.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Defence, check_range


class AdversarialAugmentation(Defence):
    name = "adv_augment"
    stage = "train"

    def __init__(self, attack: str = "paper", eps: float = 500.0, steps: int = 5, norm: str = "l2", seed: int = 0):
        from ..attacks import ATTACKS

        super().__init__(seed)
        if attack not in ATTACKS or attack in ("noise", "negative", "fooling", "universal"):
            raise ValueError(f"adv_augment needs a gradient attack, not {attack!r}")
        self.attack, self.norm = attack, norm
        self.eps = check_range("eps", eps, 1e-3, 1e6)
        self.steps = check_range("steps", steps, 1, 1000, integer=True)
        self._make(torch.nn.Identity())  # a bad norm or parameter for this attack is refused now

    def _make(self, model):
        from ..attacks import make_attack

        kw = {"eps": self.eps, "norm": self.norm, "seed": self.seed}
        if self.attack not in ("fgsm", "fgv"):
            kw["steps"] = self.steps
        if self.attack != "deepfool":
            kw["reject_aware"] = True
        return make_attack(self.attack, model, **kw)

    def attacked(self, model: torch.nn.Module, crops: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The crops (N×H×W×3 uint8) attacked on `model` away from their true class indices, as uint8."""
        x = torch.from_numpy(np.asarray(crops, np.float32)).to(model.thresholds.device)
        y = torch.as_tensor(np.asarray(labels), device=x.device)
        return self._make(model)(x, y).images()
