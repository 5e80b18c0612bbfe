"""One-vs-all classifiers with a reject option and online updates.

* `OneVsAllSVC(kernel="linear")` — the paper's "SVM".
* `OneVsAllSVC(kernel="rbf")` — "SVM-RBF".
* `OneVsAllSVC(kernel="rbf", reject=True)` — "SVM-adv" (Melis et al., Eq. 6):
  predict argmax_k f_k(x) only if f_k(x) > threshold_k, else `unknown`.
* `RLSClassifier` — regularised least squares, iCub's original learner.

All K binary problems share one cached Gram matrix and are solved together by a
vectorised SMO (maximal violating pair, the libsvm C-SVC dual with bias). A new
teacher label adds one row/column to the Gram matrix and warm-starts the solver
from the current solution, which is why an online update costs a few
milliseconds instead of a retrain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold

from .errors import InputError
from .kernels import KernelScores, check_kernel, kernel, median_gamma, sq_dists
from .validation import UNKNOWN, check_features, check_label

log = logging.getLogger(__name__)

#: The paper's grid for C; gammas are multiples of the median heuristic.
DEFAULT_C_GRID = tuple(10.0 ** np.arange(-3, 4))
DEFAULT_GAMMA_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: With gamma="median", online learning re-estimates γ until this many examples.
MEDIAN_GAMMA_WARMUP = 64


def _check_labels(y) -> np.ndarray:
    return np.array([check_label(v) for v in np.asarray(y, dtype=object).ravel()], dtype=object)


def _check_xy(X, y, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validated features and labels of matching length (what fit/partial_fit accept)."""
    X = check_features(X, dim)
    y = _check_labels(y)
    if len(X) != len(y):
        raise InputError(f"{len(X)} feature rows but {len(y)} labels")
    return X, y


class _Store:
    """Training examples with a growable, cached Gram matrix.

    Removal swaps the last example into the hole, so every update is O(n·d) or
    O(n), never an O(n²) copy.
    """

    def __init__(self, dim: int, kind: str, gamma: float, cap: int = 64):
        self.kind, self.gamma, self.n = kind, gamma, 0
        self.X = np.zeros((cap, dim), np.float32)
        self.sqn = np.zeros(cap, np.float64)  # squared row norms, so a new row's kernel needs no pass over X's norms
        self.K = np.zeros((cap, cap), np.float64)
        self.label = np.zeros(cap, np.int32)
        self.age = np.zeros(cap, np.int64)
        self.clock = 0

    def _grow(self, need: int) -> None:
        cap = len(self.X)
        if need <= cap:
            return
        new = max(need, 2 * cap)
        X = np.zeros((new, self.X.shape[1]), np.float32)
        K = np.zeros((new, new), np.float64)
        X[: self.n], K[: self.n, : self.n] = self.X[: self.n], self.K[: self.n, : self.n]
        self.X, self.K = X, K
        self.sqn = np.resize(self.sqn, new)
        self.label = np.resize(self.label, new)
        self.age = np.resize(self.age, new)

    def add(self, X: np.ndarray, labels: np.ndarray) -> slice:
        n0, m = self.n, len(X)
        self._grow(n0 + m)
        self.X[n0 : n0 + m] = X
        x32 = self.X[n0 : n0 + m]
        self.sqn[n0 : n0 + m] = np.einsum("ij,ij->i", x32, x32)
        rows = kernel(X, self.X[: n0 + m], self.kind, self.gamma, precise=False, nb=self.sqn[: n0 + m])
        self.K[n0 : n0 + m, : n0 + m] = rows
        self.K[: n0 + m, n0 : n0 + m] = rows.T
        self.label[n0 : n0 + m] = labels
        self.age[n0 : n0 + m] = self.clock + np.arange(m)
        self.clock += m
        self.n = n0 + m
        return slice(n0, n0 + m)

    def remove(self, i: int, arrays: list[np.ndarray]) -> None:
        """Delete example i, moving the last one into its place (also in `arrays`)."""
        last = self.n - 1
        if i != last:
            self.X[i] = self.X[last]
            self.sqn[i] = self.sqn[last]
            self.K[i, :] = self.K[last, :]
            self.K[:, i] = self.K[:, last]
            self.K[i, i] = self.K[last, last]
            self.label[i], self.age[i] = self.label[last], self.age[last]
            for a in arrays:
                a[i] = a[last]
        self.n = last


@dataclass
class SolverStats:
    steps: int = 0
    converged: bool = True


def smo(K: np.ndarray, Y: np.ndarray, beta: np.ndarray, g: np.ndarray, C: float, tol: float,
        max_steps: int) -> SolverStats:
    """Solve the one-vs-all C-SVC duals in place, one class at a time.

    Signed variables beta = y·alpha: min ½βᵀKβ − yᵀβ, Σβ = 0, β ∈ [lo, hi] with
    [0, C] for positives and [−C, 0] for negatives; g = Kβ − y is kept current.
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
    lo = np.where(y > 0, 0.0, -C)
    hi = np.where(y > 0, C, 0.0)
    eps = 1e-12 * C
    total = 0
    while total < max_steps:
        up, dn = beta < hi - eps, beta > lo + eps
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
    lo = np.where(y > 0, 0.0, -C)
    hi = np.where(y > 0, C, 0.0)
    eps = 1e-12 * C
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


def _bias(beta: np.ndarray, g: np.ndarray, Y: np.ndarray, C: float) -> np.ndarray:
    """libsvm's rule: average −g over free variables, else the middle of the KKT gap."""
    lo = np.where(Y > 0, 0.0, -C)
    hi = np.where(Y > 0, C, 0.0)
    eps = 1e-8 * C
    free = (beta > lo + eps) & (beta < hi - eps)
    n_free = free.sum(0)
    mean_free = -np.where(free, g, 0.0).sum(0) / np.maximum(n_free, 1)
    up = np.where(beta < hi - eps, g, np.inf).min(0)
    dn = np.where(beta > lo + eps, g, -np.inf).max(0)
    mid = -(np.where(np.isfinite(up), up, 0.0) + np.where(np.isfinite(dn), dn, 0.0)) / 2.0
    return np.where(n_free > 0, mean_free, mid)


class RejectMixin:
    """Shared predict/calibrate logic for one-vs-all scores with thresholds."""

    classes_: np.ndarray
    reject: bool
    thresholds_: np.ndarray

    def predict(self, X) -> np.ndarray:
        return self.decide(self.decision_function(X))[0]

    def decide(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels and an accepted mask from a score matrix (argmax + thresholds)."""
        top = scores.argmax(1)
        labels = self.classes_[top].astype(object)
        accepted = np.ones(len(top), bool)
        if self.reject:
            accepted = scores[np.arange(len(top)), top] > self.thresholds_[top]
            labels[~accepted] = UNKNOWN
        return labels, accepted

    def score(self, X, y, sample_weight=None) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y, dtype=object)))

    def set_thresholds(self, thresholds) -> None:
        t = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if t.size == 1:
            t = np.full(len(self.classes_), float(t[0]))
        if t.shape != (len(self.classes_),) or not np.isfinite(t).all():
            raise InputError(f"need {len(self.classes_)} finite thresholds, got {t.shape}")
        self.thresholds_ = t

    def calibrate(self, X_val, y_val, target_false_reject: float = 0.05) -> np.ndarray:
        """Per-class thresholds that reject `target_false_reject` more of each class.

        The paper raised each class's false-negative rate by 5% over the default
        reject at 0: among validation samples of class k that the argmax gets right
        and f_k > 0 accepts, threshold_k is the quantile of f_k that rejects that
        fraction of them. Starting from 0 each time makes it idempotent.
        """
        if not 0.0 <= target_false_reject < 1.0:
            raise InputError("target_false_reject must be in [0, 1)")
        y_val = _check_labels(y_val)
        scores = self.decision_function(X_val)
        top = scores.argmax(1)
        t = np.zeros(len(self.classes_))
        for k, name in enumerate(self.classes_):
            ok = (y_val == name) & (top == k) & (scores[:, k] > 0.0)
            if ok.sum() == 0:
                log.warning("calibrate: no accepted validation sample of class %r; threshold stays 0", name)
                continue
            t[k] = np.quantile(scores[ok, k], target_false_reject) if target_false_reject > 0 else 0.0
        self.thresholds_ = t
        self.reject = True
        return t


class OneVsAllSVC(RejectMixin, ClassifierMixin, BaseEstimator):
    """One-vs-all C-SVC (linear or RBF) with an optional reject option.

    Parameters follow scikit-learn: `C`, `gamma` (float or "median": 1/median
    squared distance of the training features), `kernel`, `tol` (KKT tolerance,
    libsvm's default). `max_per_class` bounds memory for online learning: when a
    class exceeds it, its oldest example that is no support vector is dropped
    (which leaves the solution unchanged); if all are support vectors, the oldest
    goes and its dual weight is moved onto the rest before re-solving.
    """

    def __init__(self, kernel: str = "rbf", C: float = 1.0, gamma: float | str = "median", reject: bool = False,
                 tol: float = 1e-3, max_steps: int = 200_000, max_per_class: int | None = None):
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.reject = reject
        self.tol = tol
        self.max_steps = max_steps
        self.max_per_class = max_per_class

    # ---------------------------------------------------------------- fitting
    def fit(self, X, y):
        X, y = _check_xy(X, y)
        check_kernel(self.kernel)
        if not self.C > 0:
            raise InputError("C must be > 0")
        self.gamma_ = median_gamma(X) if self.gamma == "median" else float(self.gamma)
        self.classes_ = np.array(sorted(set(y)), dtype=object)
        self.thresholds_ = np.zeros(len(self.classes_))
        self._rebuild(X, np.searchsorted(self.classes_.astype(str), y.astype(str)))
        self._solve()
        self._enforce_budget(range(len(self.classes_)))
        return self

    def _rebuild(self, X: np.ndarray, label_idx: np.ndarray, age: np.ndarray | None = None) -> None:
        """Fresh Gram matrix for (X, labels) with β = 0 (or as set by the caller)."""
        self._store = _Store(X.shape[1], self.kernel, self.gamma_, cap=len(X) + max(64, len(X) // 4))
        self._store.add(X, label_idx)
        if age is not None:
            self._store.age[: len(X)] = age
            self._store.clock = int(np.max(age, initial=-1)) + 1
        self._beta = np.zeros((self._store.K.shape[0], len(self.classes_)))
        self._g = np.zeros_like(self._beta)
        self._g[: len(X)] = -self._Y()
        self._sv_cache = None

    @property
    def n_features_in_(self) -> int:
        return self._store.X.shape[1]

    @property
    def n_examples_(self) -> int:
        return self._store.n

    def _Y(self) -> np.ndarray:
        n = self._store.n
        Y = -np.ones((n, len(self.classes_)))
        Y[np.arange(n), self._store.label[:n]] = 1.0
        return Y

    def _solve(self) -> SolverStats:
        n = self._store.n
        Y = self._Y()
        stats = smo(self._store.K[:n, :n], Y, self._beta[:n], self._g[:n], float(self.C), self.tol, self.max_steps)
        if not stats.converged:
            log.warning("SMO stopped after %d steps before reaching tol=%g", stats.steps, self.tol)
        self.intercept_ = _bias(self._beta[:n], self._g[:n], Y, float(self.C))
        self._sv_cache = None
        self.last_solver_stats_ = stats
        return stats

    # ---------------------------------------------------------- online updates
    def partial_fit(self, X, y):
        """Add labelled examples (new labels add classes) and re-solve warm."""
        if not hasattr(self, "_store"):
            return self.fit(X, y)
        X, y = _check_xy(X, y, self.n_features_in_)
        for name in dict.fromkeys(y):
            if name not in set(self.classes_):
                self._add_class(name)
        lookup = {c: i for i, c in enumerate(self.classes_)}
        idx = np.array([lookup[v] for v in y], np.int32)
        st = self._store
        if self.gamma == "median" and st.n + len(X) <= MEDIAN_GAMMA_WARMUP:
            # γ from one or two examples is noise: re-estimate it (and re-solve,
            # cheap at this size) until enough examples have been taught.
            n = st.n
            X_all = np.vstack([st.X[:n], X])
            self.gamma_ = median_gamma(X_all)
            ages = np.append(st.age[:n], st.clock + np.arange(len(X)))
            self._rebuild(X_all, np.concatenate([st.label[:n], idx]), ages)
            self._solve()
            self._enforce_budget(set(idx.tolist()))
            return self
        cap0 = st.K.shape[0]
        sl = st.add(X, idx)
        if st.K.shape[0] != cap0:
            self._beta = np.resize(self._beta, (st.K.shape[0], self._beta.shape[1]))
            self._g = np.resize(self._g, self._beta.shape)
        self._beta[sl] = 0.0
        n = st.n
        Y = self._Y()
        self._g[sl] = st.K[sl, :n] @ self._beta[:n] - Y[sl]
        self._solve()
        self._enforce_budget(set(idx.tolist()))
        return self

    def _add_class(self, name: str) -> None:
        """A new one-vs-all problem: β = 0 is feasible; everyone else is negative."""
        self.classes_ = np.append(self.classes_, np.array([name], dtype=object))
        self.thresholds_ = np.append(self.thresholds_, 0.0)
        n = self._store.n
        self._beta = np.concatenate([self._beta, np.zeros((len(self._beta), 1))], 1)
        g = np.zeros((len(self._beta), 1))
        g[:n] = 1.0  # g = Kβ − y with β = 0 and y = −1
        self._g = np.concatenate([self._g, g], 1)
        self.intercept_ = np.append(self.intercept_, -1.0)

    def _enforce_budget(self, classes) -> None:
        if self.max_per_class is None:
            return
        st = self._store
        changed = False
        for k in classes:
            while True:
                members = np.flatnonzero(st.label[: st.n] == k)
                if len(members) <= self.max_per_class:
                    break
                non_sv = members[~np.any(self._beta[members] != 0.0, axis=1)]
                pool = non_sv if len(non_sv) else members
                victim = int(pool[np.argmin(st.age[pool])])
                changed |= self._remove(victim)
        if changed:
            self._solve()

    def _remove(self, i: int) -> bool:
        """Drop example i; returns True when the dual solution had to be repaired."""
        st, n = self._store, self._store.n
        b_i = self._beta[i].copy()
        if np.any(b_i != 0.0):
            C = float(self.C)
            Y = self._Y()
            lo, hi = np.where(Y > 0, 0.0, -C), np.where(Y > 0, C, 0.0)
            beta = self._beta[:n]
            old = beta.copy()
            beta[i] = 0.0
            for k in np.flatnonzero(b_i):
                room = (hi[:, k] - beta[:, k]) if b_i[k] > 0 else (beta[:, k] - lo[:, k])
                room[i] = 0.0
                order = np.argsort(-room)
                r = abs(b_i[k])
                take = np.clip(r - (np.cumsum(room[order]) - room[order]), 0.0, room[order])
                beta[order, k] += np.sign(b_i[k]) * take
            delta = beta - old
            rows = np.flatnonzero(np.any(delta != 0.0, axis=1))
            self._g[:n] += st.K[:n, rows] @ delta[rows]
        st.remove(i, [self._beta, self._g])
        return bool(np.any(b_i != 0.0))

    # ------------------------------------------------------------- prediction
    def _support(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Support vectors (float64), their dual coefficients and squared norms.

        Cached until the solution changes: a camera calls `decision_function` every
        frame, and at the paper's scale rebuilding this is a 92 MB copy.
        """
        if getattr(self, "_sv_cache", None) is None:
            n = self._store.n
            rows = np.flatnonzero(np.any(self._beta[:n] != 0.0, axis=1))
            sv = self._store.X[rows].astype(np.float64)
            self._sv_cache = (sv, self._beta[rows], np.einsum("ij,ij->i", sv, sv))
        return self._sv_cache

    def decision_function(self, X) -> np.ndarray:
        X = check_features(X, self.n_features_in_)
        sv, coef, sqn = self._support()
        if self.kernel == "linear":
            return X.astype(np.float64) @ (sv.T @ coef) + self.intercept_
        return kernel(X, sv, self.kernel, self.gamma_, nb=sqn) @ coef + self.intercept_

    def torch_scores(self) -> KernelScores:
        """The fitted scores as a differentiable torch module of the features."""
        sv, coef, _ = self._support()
        return KernelScores(self.kernel, self.gamma_, sv, coef, self.intercept_)

    # ------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, np.ndarray]:
        n = self._store.n
        st = self._store
        return {"X": st.X[:n].copy(), "label": st.label[:n].copy(), "age": st.age[:n].copy(),
                "beta": self._beta[:n].copy(), "intercept": self.intercept_.copy(),
                "thresholds": self.thresholds_.copy(), "gamma": np.array(self.gamma_),
                "classes": np.array(self.classes_, dtype=str)}

    def set_state(self, s: dict[str, np.ndarray]) -> OneVsAllSVC:
        """Rebuild from `get_state`: the Gram matrix is recomputed, g = Kβ − y."""
        self.classes_ = np.array(s["classes"].tolist(), dtype=object)
        self.gamma_ = float(s["gamma"])
        self.thresholds_ = np.asarray(s["thresholds"], np.float64)
        self.intercept_ = np.asarray(s["intercept"], np.float64)
        X = np.asarray(s["X"], np.float32)
        self._rebuild(X, np.asarray(s["label"], np.int32), np.asarray(s["age"]))
        n = len(X)
        self._beta[:n] = s["beta"]
        self._g[:n] = self._store.K[:n, :n] @ self._beta[:n] - self._Y()
        return self


class RLSClassifier(RejectMixin, ClassifierMixin, BaseEstimator):
    """One-vs-all regularised least squares, iCub's original online learner.

    Dual form: coef = (K + 1 + λI)⁻¹ Y (the +1 is an unpenalised-ish bias). The
    inverse is grown by a block update, O(n²) per new example.
    """

    def __init__(self, kernel: str = "linear", lam: float = 1e-2, gamma: float | str = "median", reject: bool = False):
        self.kernel = kernel
        self.lam = lam
        self.gamma = gamma
        self.reject = reject

    def fit(self, X, y):
        X, y = _check_xy(X, y)
        check_kernel(self.kernel)
        self.gamma_ = median_gamma(X) if self.gamma == "median" else float(self.gamma)
        self.classes_ = np.array(sorted(set(y)), dtype=object)
        self.thresholds_ = np.zeros(len(self.classes_))
        self.X_ = X.copy()
        self.label_ = np.searchsorted(self.classes_.astype(str), y.astype(str)).astype(np.int32)
        A = kernel(X, X, self.kernel, self.gamma_) + 1.0 + self.lam * np.eye(len(X))
        self.Ainv_ = np.linalg.inv(A)
        self._update_coef()
        return self

    @property
    def n_features_in_(self) -> int:
        return self.X_.shape[1]

    def _update_coef(self) -> None:
        Y = -np.ones((len(self.X_), len(self.classes_)))
        Y[np.arange(len(self.X_)), self.label_] = 1.0
        self.coef_ = self.Ainv_ @ Y

    def partial_fit(self, X, y):
        if not hasattr(self, "X_"):
            return self.fit(X, y)
        X, y = _check_xy(X, y, self.n_features_in_)
        for x, name in zip(X, y, strict=True):
            if name not in set(self.classes_):
                self.classes_ = np.append(self.classes_, np.array([name], dtype=object))
                self.thresholds_ = np.append(self.thresholds_, 0.0)
            b = kernel(self.X_, x[None], self.kernel, self.gamma_)[:, 0] + 1.0
            c = kernel(x[None], x[None], self.kernel, self.gamma_)[0, 0] + 1.0 + self.lam
            u = self.Ainv_ @ b
            s = c - b @ u
            n = len(self.X_)
            A = np.empty((n + 1, n + 1))
            A[:n, :n] = self.Ainv_ + np.outer(u, u) / s
            A[:n, n] = A[n, :n] = -u / s
            A[n, n] = 1.0 / s
            self.Ainv_ = A
            self.X_ = np.vstack([self.X_, x[None]])
            self.label_ = np.append(self.label_, np.int32(list(self.classes_).index(name)))
        self._update_coef()
        return self

    def decision_function(self, X) -> np.ndarray:
        X = check_features(X, self.n_features_in_)
        return (kernel(X, self.X_, self.kernel, self.gamma_) + 1.0) @ self.coef_

    def torch_scores(self) -> KernelScores:
        return KernelScores(self.kernel, self.gamma_, self.X_, self.coef_, self.coef_.sum(0))

    def get_state(self) -> dict[str, np.ndarray]:
        return {"X": self.X_.copy(), "label": self.label_.copy(), "thresholds": self.thresholds_.copy(),
                "gamma": np.array(self.gamma_), "classes": np.array(self.classes_, dtype=str)}

    def set_state(self, s: dict[str, np.ndarray]) -> RLSClassifier:
        classes = np.array(s["classes"].tolist(), dtype=object)
        self.fit(np.asarray(s["X"], np.float32), classes[np.asarray(s["label"])])
        self.classes_ = classes  # keep the saved class order
        self.label_ = np.asarray(s["label"], np.int32)
        self._update_coef()
        self.thresholds_ = np.asarray(s["thresholds"], np.float64)
        return self


CLASSIFIERS = {
    "svm": dict(kernel="linear", reject=False),
    "svm-rbf": dict(kernel="rbf", reject=False),
    "svm-adv": dict(kernel="rbf", reject=True),
    "rls": dict(kernel="linear", reject=False),
}


def make_classifier(name: str, **params) -> OneVsAllSVC | RLSClassifier:
    """Build a classifier by the paper's name: svm, svm-rbf, svm-adv or rls."""
    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; choose one of {sorted(CLASSIFIERS)}")
    cls = RLSClassifier if name == "rls" else OneVsAllSVC
    return cls(**{**CLASSIFIERS[name], **params})


def select_hyperparameters(X, y, kernel_kind: str = "rbf", Cs=DEFAULT_C_GRID, gamma_factors=DEFAULT_GAMMA_FACTORS,
                           cv: int = 3, seed: int = 0) -> dict[str, float]:
    """Pick C (and γ for RBF) by stratified k-fold CV accuracy, like the paper.

    Distances are computed once; each γ's Gram matrix is one `exp` of them.
    """
    X = check_features(X)
    y = _check_labels(y)
    g0 = median_gamma(X)
    gammas = [g0 * f for f in gamma_factors] if kernel_kind == "rbf" else [g0]
    d2 = sq_dists(X, X, precise=False) if kernel_kind == "rbf" else None
    lin = kernel(X, X, "linear", 0.0, precise=False) if kernel_kind == "linear" else None
    folds = list(StratifiedKFold(cv, shuffle=True, random_state=seed).split(X, y))
    best, best_acc = {"C": float(Cs[0]), "gamma": gammas[0]}, -1.0
    for gamma in gammas:
        K = np.exp(-gamma * d2) if d2 is not None else lin
        for C in Cs:
            accs = []
            for tr, te in folds:
                classes = np.array(sorted(set(y[tr])), dtype=object)
                idx = np.searchsorted(classes.astype(str), y[tr].astype(str))
                Y = -np.ones((len(tr), len(classes)))
                Y[np.arange(len(tr)), idx] = 1.0
                beta, g = np.zeros_like(Y), -Y.copy()
                Ktr = np.ascontiguousarray(K[np.ix_(tr, tr)])
                smo(Ktr, Y, beta, g, float(C), 1e-3, 200_000)
                b = _bias(beta, g, Y, float(C))
                scores = K[np.ix_(te, tr)] @ beta + b
                accs.append(np.mean(classes[scores.argmax(1)] == y[te]))
            acc = float(np.mean(accs))
            log.debug("CV C=%g gamma=%g acc=%.3f", C, gamma, acc)
            if acc > best_acc + 1e-9:
                best, best_acc = {"C": float(C), "gamma": float(gamma)}, acc
    best["cv_accuracy"] = best_acc
    return best
