"""Measures beside accuracy: PASS perceptual similarity and the feature-space shift of Sect. 5."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import torch

from ..core import rules

log = logging.getLogger(__name__)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two grey images (Gaussian window 11, σ 1.5, as Wang et al.)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    va, vb, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return float(m.mean())


def pass_score(original: np.ndarray, adversarial: np.ndarray) -> float:
    """PASS (Rozsa et al., 2016): SSIM after aligning the adversarial image to the original.

    Alignment is an ECC homography on grey images; if ECC does not converge the
    images are compared unaligned (identity), which can only lower the score.
    """
    g0 = cv2.cvtColor(np.ascontiguousarray(original, np.uint8), cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(np.ascontiguousarray(adversarial, np.uint8), cv2.COLOR_RGB2GRAY)
    warp = np.eye(3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(g0.astype(np.float32), g1.astype(np.float32), warp, cv2.MOTION_HOMOGRAPHY,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5), None, 5)
        aligned = cv2.warpPerspective(g1, warp, (g0.shape[1], g0.shape[0]),
                                      flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    except cv2.error:
        aligned = g1
    return max(ssim(g0, aligned), ssim(g0, g1))


def feature_shift(extractor, x: torch.Tensor, x_pert: torch.Tensor) -> np.ndarray:
    """‖φ(x') − φ(x)‖₂ per sample in the (normalised) feature space."""
    with torch.no_grad():
        return (extractor(x_pert) - extractor(x)).norm(dim=1).cpu().numpy()


def random_direction_like(x: torch.Tensor, norm_value: float, seed: int = 0, mask=None) -> torch.Tensor:
    """x + Gaussian noise scaled to exactly `norm_value` in l2 (then clipped to the box)."""
    gen = torch.Generator().manual_seed(seed)
    d = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
    if mask is not None:
        d = d * mask
    d = d * (norm_value / d.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, 1, 1, 1)
    return (x + d).clamp(0, 255)


def robust_error(clean: np.ndarray, attacked: np.ndarray, y: np.ndarray) -> float:
    """Stutz et al. 2020's confidence-thresholded robust test error at the operating threshold (labels: class
    indices, `rules.REJECTED` where rejected).

    A crop is an error when its clean or its attacked version is accepted with a wrong label; a crop whose clean
    version is rejected leaves the count (the robot asked) unless its attacked version is accepted wrongly:
    Σ max(1[clean fooled], 1[attacked fooled]) / Σ max(1[clean accepted], 1[attacked fooled]). It is what a
    reject option must be judged by: rejecting clean crops buys nothing here, unlike in accuracy.
    """
    clean, attacked, y = np.asarray(clean), np.asarray(attacked), np.asarray(y)
    wrong = rules.fooled(clean, y) | rules.fooled(attacked, y)
    counted = (clean != rules.REJECTED) | rules.fooled(attacked, y)
    return float(wrong.sum() / counted.sum()) if counted.any() else 0.0
