"""Kernel functions in numpy (training) and torch (differentiable scoring).

Both compute in float64 where it matters so that the torch scores match the
estimators' `decision_function` to ~1e-9, far inside the 1e-5 contract.
"""

from __future__ import annotations

import numpy as np
import torch

KERNELS = ("linear", "rbf")


def check_kernel(kind: str) -> str:
    if kind not in KERNELS:
        raise ValueError(f"unknown kernel {kind!r}; choose one of {KERNELS}")
    return kind


def sq_dists(a: np.ndarray, b: np.ndarray, precise: bool = True, nb: np.ndarray | None = None) -> np.ndarray:
    """Squared euclidean distances, N×M, float64.

    `precise=False` does the big matmul in float32 (4× faster on a CPU), used for
    training Gram matrices where a 1e-6 error only nudges the solver. `nb` passes
    b's squared row norms when the caller keeps them (an online store does).
    """
    dt = np.float64 if precise else np.float32
    a_, b_ = a.astype(dt, copy=False), b.astype(dt, copy=False)
    cross = (a_ @ b_.T).astype(np.float64, copy=False)
    na = np.einsum("ij,ij->i", a_, a_).astype(np.float64)
    if nb is None:
        nb = np.einsum("ij,ij->i", b_, b_).astype(np.float64)
    d2 = na[:, None] + nb[None, :] - 2.0 * cross
    np.maximum(d2, 0.0, out=d2)
    return d2


def kernel(a: np.ndarray, b: np.ndarray, kind: str, gamma: float, precise: bool = True,
           nb: np.ndarray | None = None) -> np.ndarray:
    """K(a_i, b_j) as a float64 N×M matrix (`nb`: b's squared row norms, if known)."""
    if kind == "linear":
        dt = np.float64 if precise else np.float32
        return (a.astype(dt, copy=False) @ b.astype(dt, copy=False).T).astype(np.float64, copy=False)
    d2 = sq_dists(a, b, precise, nb)
    return np.exp(-gamma * d2, out=d2)


def median_gamma(x: np.ndarray, max_points: int = 1000, seed: int = 0) -> float:
    """1 / median squared distance: a scale-free RBF width for any feature scale."""
    rng = np.random.default_rng(seed)
    if len(x) > max_points:
        x = x[rng.choice(len(x), max_points, replace=False)]
    d2 = sq_dists(x, x)
    vals = d2[np.triu_indices(len(x), 1)]
    vals = vals[vals > 0]
    if vals.size == 0:
        return 1.0
    return float(1.0 / np.median(vals))


class KernelScores(torch.nn.Module):
    """f(x) = K(x, SV) @ coef + intercept, differentiable in x (float64 inside unless cast with .float()).

    The linear kernel is folded into one weight matrix, so its cost does not grow
    with the number of support vectors.
    """

    def __init__(self, kind: str, gamma: float, sv: np.ndarray, coef: np.ndarray, intercept: np.ndarray):
        super().__init__()
        self.kind = check_kernel(kind)
        self.gamma = float(gamma)
        sv64 = torch.as_tensor(np.asarray(sv, dtype=np.float64))
        coef64 = torch.as_tensor(np.asarray(coef, dtype=np.float64))
        if kind == "linear":
            self.register_buffer("weight", sv64.T @ coef64)  # D×K
            self.register_buffer("sv", torch.zeros(0, sv64.shape[1], dtype=torch.float64))
            self.register_buffer("sv_sqnorm", torch.zeros(0, dtype=torch.float64))
        else:
            self.register_buffer("weight", coef64)  # nSV×K
            self.register_buffer("sv", sv64)
            self.register_buffer("sv_sqnorm", (sv64 * sv64).sum(1))
        self.register_buffer("intercept", torch.as_tensor(np.asarray(intercept, dtype=np.float64)))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = feats.to(self.weight.dtype)  # float64 unless the module was cast (.float())
        if self.kind == "linear":
            return x @ self.weight + self.intercept
        d2 = (x * x).sum(1, keepdim=True) + self.sv_sqnorm[None, :] - 2.0 * (x @ self.sv.T)
        return torch.exp(-self.gamma * d2.clamp_min(0.0)) @ self.weight + self.intercept
