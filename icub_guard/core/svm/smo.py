"""The SMO solver of the one-vs-all C-SVC duals (libsvm's algorithm, vectorised over numpy).

Signed variables β = y·α: min ½βᵀKβ − yᵀβ subject to Σβ = 0 and β ∈ [lo, hi], with
[0, C] for positives and [−C, 0] for negatives; g = Kβ − y is kept current by the
caller and the solver. One tolerance, `BOUND_EPS`·C, decides "at a bound" for the
solver, the bias and the KKT check alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: β is "at a bound" within BOUND_EPS·C (solver steps, bias, KKT check).
BOUND_EPS = 1e-10


@dataclass
class SolverStats:
    steps: int = 0
    converged: bool = True


def bounds(Y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    """Box of the signed duals: [0, C] where y = +1, [−C, 0] where y = −1."""
    return np.where(Y > 0, 0.0, -C), np.where(Y > 0, C, 0.0)


def _movable(beta: np.ndarray, lo: np.ndarray, hi: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    """Which β may still grow (up) and shrink (down), with the one bound tolerance."""
    eps = BOUND_EPS * C
    return beta < hi - eps, beta > lo + eps


def kkt_violation(beta: np.ndarray, g: np.ndarray, Y: np.ndarray, C: float) -> np.ndarray:
    """Maximal KKT violation per class, max_{down} g − min_{up} g (≤ tol at an optimum)."""
    lo, hi = bounds(Y, C)
    up, dn = _movable(beta, lo, hi, C)
    m_up = np.where(up, g, np.inf).min(0)
    m_dn = np.where(dn, g, -np.inf).max(0)
    viol = m_dn - m_up
    return np.where(np.isfinite(viol), viol, 0.0)


def smo(K: np.ndarray, Y: np.ndarray, beta: np.ndarray, g: np.ndarray, C: float, tol: float,
        max_steps: int) -> SolverStats:
    """Solve the one-vs-all C-SVC duals in place, one class at a time.

    A class stops once its maximal KKT violation is below `tol` (libsvm's eps).
    Each class works on contiguous 1-D copies: at n ≈ 3000 numpy's per-call
    overhead, not arithmetic, is the cost, so fewer and flatter calls win.
    """
    diag = np.diagonal(K).copy()
    total, ok = 0, True
    for k in range(Y.shape[1]):
        b, gk = np.ascontiguousarray(beta[:, k]), np.ascontiguousarray(g[:, k])
        steps, conv = _smo_one(K, diag, Y[:, k], b, gk, C, tol, max_steps)
        beta[:, k], g[:, k] = b, gk
        total, ok = total + steps, ok and conv
    return SolverStats(total, ok)


def _smo_one(K, diag, y, beta, g, C, tol, max_steps) -> tuple[int, bool]:
    """One binary problem, with libsvm-style shrinking.

    Variables at a bound that satisfy the KKT conditions rarely move, so SMO runs on
    the rest (free support vectors and violators, a few hundred of thousands after
    an online update), then the change is propagated to every gradient and the full
    KKT check repeated. Same solution; each step costs the active set, not n.
    """
    lo, hi = bounds(y, C)
    total = 0
    while total < max_steps:
        up, dn = _movable(beta, lo, hi, C)
        if not up.any() or not dn.any():
            return total, True
        m_up, m_dn = g[up].min(), g[dn].max()
        if m_dn - m_up <= tol:
            return total, True
        active = np.flatnonzero((beta != 0.0) | (up & (g < m_dn - tol)) | (dn & (g > m_up + tol)))
        if len(active) > len(g) // 2:  # a cold start: shrinking would not pay
            steps, ok = _smo_dense(K, diag, y, beta, g, C, tol, max_steps - total)
            return total + steps, ok
        b_a, g_a = beta[active], g[active]
        steps, _ = _smo_dense(K[np.ix_(active, active)], diag[active], y[active], b_a, g_a, C, tol,
                              max_steps - total)
        total += steps
        delta = b_a - beta[active]
        moved = delta != 0.0
        if not moved.any():
            return total, False  # the violators are inside the active set, so this cannot happen
        g += K[active[moved]].T @ delta[moved]  # rows of the symmetric K: contiguous
        beta[active] = b_a
    return total, False


def _smo_dense(K, diag, y, beta, g, C, tol, max_steps) -> tuple[int, bool]:
    n = len(g)
    lo, hi = bounds(y, C)
    eps = BOUND_EPS * C
    hi_e, lo_e = hi - eps, lo + eps
    # preallocated work arrays: every step is ~15 numpy calls with no allocation
    g_up, g_dn, row, gain = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    up, dn = np.empty(n, bool), np.empty(n, bool)
    for step in range(max_steps):
        np.less(beta, hi_e, out=up)
        np.greater(beta, lo_e, out=dn)
        g_up.fill(np.inf)
        np.copyto(g_up, g, where=up)
        g_dn.fill(-np.inf)
        np.copyto(g_dn, g, where=dn)
        i = int(g_up.argmin())
        gi = g_up[i]
        if g_dn.max() - gi <= tol:
            return step, True
        # second-order choice of j (libsvm's WSS2): the largest objective decrease (g_j − g_i)² / η_ij
        Ki = K[i]
        np.multiply(Ki, -2.0, out=row)
        row += diag[i]
        row += diag
        np.maximum(row, 1e-12, out=row)  # η
        np.subtract(g_dn, gi, out=gain)
        np.maximum(gain, 0.0, out=gain)  # only violating j (some exist: the check above failed)
        gain *= gain
        gain /= row
        j = int(gain.argmax())
        t = min((g[j] - gi) / row[j], hi[i] - beta[i], beta[j] - lo[j])
        beta[i] += t
        beta[j] -= t
        np.subtract(Ki, K[j], out=row)
        row *= t
        g += row
    return max_steps, False


def bias(beta: np.ndarray, g: np.ndarray, Y: np.ndarray, C: float) -> np.ndarray:
    """libsvm's rule: average −g over free variables, else the middle of the KKT gap."""
    lo, hi = bounds(Y, C)
    up, dn = _movable(beta, lo, hi, C)
    free = up & dn
    n_free = free.sum(0)
    mean_free = -np.where(free, g, 0.0).sum(0) / np.maximum(n_free, 1)
    m_up = np.where(up, g, np.inf).min(0)
    m_dn = np.where(dn, g, -np.inf).max(0)
    mid = -(np.where(np.isfinite(m_up), m_up, 0.0) + np.where(np.isfinite(m_dn), m_dn, 0.0)) / 2.0
    return np.where(n_free > 0, mean_free, mid)
