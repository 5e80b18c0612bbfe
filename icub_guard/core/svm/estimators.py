"""One-vs-all classifiers with a reject option and online updates, as scikit-learn estimators.

* `OneVsAllSVC(kernel="linear")` — the paper's "SVM".
* `OneVsAllSVC(kernel="rbf")` — "SVM-RBF".
* `OneVsAllSVC(kernel="rbf", reject=True)` — "SVM-adv" (Melis et al., Eq. 6):
  predict argmax_k f_k(x) only if f_k(x) > threshold_k, else `reject_label`.
* `RLSClassifier` — regularised least squares, iCub's original learner.

All K binary problems share one cached Gram matrix (`gram.GramStore`) and are
solved together by SMO (`smo`). A new label adds one row/column to the Gram
matrix and warm-starts the solver, so an online update costs milliseconds. New
classes may arrive online; `classes_` stays sorted, a new class is inserted at
its place, and every array indexed by class moves with it.

Which strings may name a class (and that `unknown` is reserved) is the
`Recognizer`'s rule; these estimators take any labels scikit-learn takes.
"""

from __future__ import annotations

import json
import logging
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .. import rules
from ..errors import InputError
from ..kernels import KERNELS, KernelScores, kernel, median_gamma
from .gram import GramStore
from .smo import SolverStats, bias, bounds, smo

log = logging.getLogger(__name__)

#: With gamma="median", online learning re-estimates γ until this many examples.
MEDIAN_GAMMA_WARMUP = 64

_GAMMA = [Interval(Real, 0.0, None, closed="neither"), StrOptions({"median"})]


def _labels(y) -> np.ndarray:
    y = column_or_1d(y, warn=True)
    check_classification_targets(y)
    return y


def _sorted_classes(labels) -> np.ndarray:
    """Sorted distinct labels; strings as an object array (online classes may be longer than the first)."""
    values = sorted(set(labels))
    return np.asarray(values, dtype=object if isinstance(values[0], str) else None)


def _insert_classes(classes: np.ndarray, new) -> tuple[np.ndarray, np.ndarray]:
    """Sorted union of `classes` and `new`, and the new index of each old class."""
    try:
        merged = _sorted_classes([*classes.tolist(), *new])
    except TypeError as exc:  # '<' between str and int
        raise InputError(f"labels {list(new)!r} are not of the type of the known classes") from exc
    pos = {c: i for i, c in enumerate(merged.tolist())}
    return merged, np.array([pos[c] for c in classes.tolist()], dtype=np.int64)


def _params(params: dict) -> np.ndarray:
    """Hyperparameters as a JSON string array (a model file holds no pickle; JSON floats round-trip exactly)."""
    return np.array(json.dumps(params, default=lambda v: v.item()))


class RejectMixin:
    """Predict/calibrate for one-vs-all scores with per-class thresholds."""

    classes_: np.ndarray
    reject: bool
    reject_label: object
    thresholds_: np.ndarray

    def _check_xy(self, X, y, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        try:
            X, y = validate_data(self, X, y, reset=reset, dtype=[np.float32, np.float64])
            y = _labels(y)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        return X.astype(np.float32, copy=False), y

    def _check_x(self, X) -> np.ndarray:
        check_is_fitted(self)
        try:
            X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        return X.astype(np.float32, copy=False)

    def _check_reject_label(self, names) -> None:
        if self.reject and any(c == self.reject_label for c in names):
            raise InputError(f"{self.reject_label!r} is the reject label and cannot be a class")

    def _begin_fit(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """What every fit starts with: checked parameters and data, γ, sorted classes; y as class indices."""
        self._validate_params()
        X, y = self._check_xy(X, y, reset=True)
        self.gamma_ = median_gamma(X) if self.gamma == "median" else float(self.gamma)
        self.classes_ = _sorted_classes(y.tolist())
        self._check_reject_label(self.classes_.tolist())
        self.thresholds_ = np.zeros(len(self.classes_))
        return X, self._indices(y)

    def _indices(self, y) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        return np.array([lookup[v] for v in np.asarray(y).tolist()], np.int32)

    def _unseen(self, y, classes=None) -> list:
        """Labels in `y` (and `classes`) that are no class yet, in order of appearance; never the reject label."""
        known = set(self.classes_.tolist())
        new = [v for v in dict.fromkeys([*np.asarray(y).tolist(), *([] if classes is None else list(classes))])
               if v not in known]
        self._check_reject_label(new)
        return new

    def predict(self, X) -> np.ndarray:
        return self.decide(self.decision_function(X))[0]

    def predict_indices(self, X) -> np.ndarray:
        """Class indices, `rules.REJECTED` where rejected: the encoding the evaluations score crops in."""
        return rules.label_indices(self.decision_function(X), self.thresholds_ if self.reject else None)

    def decide(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels and an accepted mask from a score matrix (`rules.decide`, thresholds only if `reject`)."""
        top, accepted = rules.decide(scores, self.thresholds_ if self.reject else None)
        if not self.reject:
            return self.classes_[top], accepted
        labels = self.classes_[top].astype(object)
        labels[~accepted] = self.reject_label
        return labels, accepted

    def set_thresholds(self, thresholds) -> None:
        check_is_fitted(self)
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
        fraction of them. Starting from 0 each time makes it idempotent. Needs
        `reject=True`: thresholds do nothing without the reject option.
        """
        if not self.reject:
            raise InputError("calibrate needs the reject option (reject=True, e.g. svm-adv)")
        if not 0.0 <= target_false_reject < 1.0:
            raise InputError("target_false_reject must be in [0, 1)")
        scores = self.decision_function(X_val)
        y_val = _labels(y_val)
        t = np.zeros(len(self.classes_))
        top, at_zero = rules.decide(scores, t)  # accepted by the default reject at 0
        for k, name in enumerate(self.classes_.tolist()):
            ok = (y_val == name) & (top == k) & at_zero
            if ok.sum() == 0:
                log.warning("calibrate: no accepted validation sample of class %r; threshold stays 0", name)
                continue
            t[k] = np.quantile(scores[ok, k], target_false_reject) if target_false_reject > 0 else 0.0
        self.thresholds_ = t
        return t


class OneVsAllSVC(RejectMixin, ClassifierMixin, BaseEstimator):
    """One-vs-all C-SVC (linear or RBF) with an optional reject option and online updates.

    `gamma` is a float or "median" (1/median squared distance of the training
    features); `tol` is the KKT tolerance (libsvm's default). `max_per_class`
    bounds memory for online learning: when a class exceeds it, its oldest
    example that is no support vector is dropped (the solution is unchanged);
    if all are support vectors, the oldest goes, its dual weight is moved onto
    the rest and the duals are re-solved.
    """

    _parameter_constraints: ClassVar[dict] = {
        "kernel": [StrOptions(set(KERNELS))],
        "C": [Interval(Real, 0.0, None, closed="neither")],
        "gamma": _GAMMA,
        "reject": ["boolean"],
        "reject_label": "no_validation",
        "tol": [Interval(Real, 0.0, None, closed="neither")],
        "max_steps": [Interval(Integral, 1, None, closed="left")],
        "max_per_class": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init__(self, kernel: str = "rbf", C: float = 1.0, gamma: float | str = "median", reject: bool = False,
                 reject_label="unknown", tol: float = 1e-3, max_steps: int = 200_000,
                 max_per_class: int | None = None):
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.reject = reject
        self.reject_label = reject_label
        self.tol = tol
        self.max_steps = max_steps
        self.max_per_class = max_per_class

    # ---------------------------------------------------------------- fitting
    def fit(self, X, y):
        X, idx = self._begin_fit(X, y)
        self._rebuild(X, idx)
        self._solve()
        self._enforce_budget(range(len(self.classes_)))
        return self

    def _rebuild(self, X: np.ndarray, label_idx: np.ndarray, age: np.ndarray | None = None,
                 saved_gram: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Fresh Gram matrix for (X, labels) with β = 0 (or as set by the caller); `saved_gram`: (packed K, sqn)."""
        self._store = GramStore(X.shape[1], self.kernel, self.gamma_, cap=len(X) + max(64, len(X) // 4))
        if saved_gram is None:
            self._store.add(X, label_idx)
        else:
            self._store.put(X, label_idx, *saved_gram)
        if age is not None:
            self._store.age[: len(X)] = age
            self._store.clock = int(np.max(age, initial=-1)) + 1
        self._beta = np.zeros((self._store.capacity, len(self.classes_)))
        self._g = np.zeros_like(self._beta)
        self._g[: len(X)] = -self._Y()
        self._sv_cache: dict = {}  # one dict for the estimator's life: predict changes no attribute

    @property
    def n_examples_(self) -> int:
        return self._store.n

    @property
    def example_ids_(self) -> np.ndarray:
        """Each stored example's id, in storage order: ids count up from 0 in the order examples were added,
        survive `get_state`/`set_state`, and are never reused (what provenance and `forget` refer to)."""
        check_is_fitted(self)
        return self._store.age[: self._store.n].copy()

    @property
    def examples_(self) -> tuple[np.ndarray, np.ndarray]:
        """The stored examples and their class indices (views: copy before the next update)."""
        check_is_fitted(self)
        n = self._store.n
        return self._store.X[:n], self._store.label[:n]

    def nearest_(self, x: np.ndarray, k: int) -> np.ndarray:
        """Class indices of the k stored examples nearest to x (squared norms are cached: one mat-vec)."""
        n = self._store.n
        d = self._store.sqn[:n] - 2.0 * (self._store.X[:n] @ x.reshape(-1).astype(np.float32))
        k = min(k, n)
        return self._store.label[:n][np.argpartition(d, k - 1)[:k]]

    def forget(self, ids) -> np.ndarray:
        """Remove the examples with these ids and re-solve warm; returns the ids removed.

        The result is the optimum of the problem without them (the same as a refit
        on the rest with the same γ, within `tol`). A class left with no example
        is dropped. At least one example of two classes must remain: `InputError`
        otherwise (nothing changes).
        """
        check_is_fitted(self)
        st = self._store
        gone = np.isin(st.age[: st.n], np.asarray(list(ids), np.int64))
        if not gone.any():
            return np.zeros(0, np.int64)
        left = st.label[: st.n][~gone]
        if len(left) == 0:
            raise InputError("forget would remove every example; reset the model instead")
        removed = st.age[: st.n][gone].copy()
        for i in sorted(np.flatnonzero(gone), reverse=True):  # from the end: swap-removal never moves a victim
            self._remove(int(i))
        empty = sorted(set(range(len(self.classes_))) - set(st.label[: st.n].tolist()))
        if empty:
            self._drop_classes(empty)
        self._solve()
        return removed

    def _drop_classes(self, empty: list[int]) -> None:
        """Remove classes that have no example left (and every array indexed by class)."""
        keep = np.array([k for k in range(len(self.classes_)) if k not in set(empty)], np.int64)
        where = np.full(len(self.classes_), -1, np.int64)
        where[keep] = np.arange(len(keep))
        n = self._store.n
        self._store.label[:n] = where[self._store.label[:n]]
        self.classes_ = self.classes_[keep]
        self._beta, self._g = self._beta[:, keep].copy(), self._g[:, keep].copy()
        self.intercept_, self.thresholds_ = self.intercept_[keep], self.thresholds_[keep]
        self._sv_cache.clear()

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
        self.intercept_ = bias(self._beta[:n], self._g[:n], Y, float(self.C))
        self._sv_cache.clear()
        self.last_solver_stats_ = stats
        return stats

    # ---------------------------------------------------------- online updates
    def partial_fit(self, X, y, classes=None):
        """Add labelled examples and re-solve warm.

        Labels not seen before add classes (online learning needs no `classes`
        up front); `classes`, if given, adds classes that have no example yet.
        """
        if not hasattr(self, "_store"):
            self.fit(X, y)
            extra = self._unseen([], classes)
            if extra:
                self._add_classes(extra)
            return self
        X, y = self._check_xy(X, y, reset=False)
        new = self._unseen(y, classes)
        if new:
            self._add_classes(new)
        idx = self._indices(y)
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
        cap0 = st.capacity
        sl = st.add(X, idx)
        if st.capacity != cap0:
            self._beta = np.resize(self._beta, (st.capacity, self._beta.shape[1]))
            self._g = np.resize(self._g, self._beta.shape)
        self._beta[sl] = 0.0
        n = st.n
        Y = self._Y()
        self._g[sl] = st.K[sl, :n] @ self._beta[:n] - Y[sl]
        self._solve()
        self._enforce_budget(set(idx.tolist()))
        return self

    def _add_classes(self, names: list) -> None:
        """New one-vs-all problems: β = 0 is feasible; everyone else is a negative."""
        classes, where = _insert_classes(self.classes_, names)
        K, n, cap = len(classes), self._store.n, len(self._beta)
        beta, g = np.zeros((cap, K)), np.zeros((cap, K))
        g[:n] = 1.0  # g = Kβ − y with β = 0 and y = −1
        beta[:, where], g[:, where] = self._beta, self._g
        intercept, thresholds = np.full(K, -1.0), np.zeros(K)
        intercept[where], thresholds[where] = self.intercept_, self.thresholds_
        self._store.label[:n] = where[self._store.label[:n]]
        self.classes_, self._beta, self._g = classes, beta, g
        self.intercept_, self.thresholds_ = intercept, thresholds
        self._sv_cache.clear()

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
        """Drop example i; returns True when the dual solution had to be repaired (re-solve needed)."""
        st, n = self._store, self._store.n
        b_i = self._beta[i].copy()
        if np.any(b_i != 0.0):
            lo, hi = bounds(self._Y(), float(self.C))
            beta = self._beta[:n]
            old = beta.copy()
            beta[i] = 0.0
            for k in np.flatnonzero(b_i):  # keep Σβ = 0: spread β_i over the others' room
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
        self._sv_cache.clear()
        return bool(np.any(b_i != 0.0))

    # ------------------------------------------------------------- prediction
    def _support(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Support vectors (float64), their dual coefficients and squared norms.

        Cached until the solution changes: a camera calls `decision_function` every
        frame, and at the paper's scale rebuilding this is a 92 MB copy.
        """
        if not self._sv_cache:
            n = self._store.n
            rows = np.flatnonzero(np.any(self._beta[:n] != 0.0, axis=1))
            sv = self._store.X[rows].astype(np.float64)
            self._sv_cache["sv"] = (sv, self._beta[rows], np.einsum("ij,ij->i", sv, sv))
        return self._sv_cache["sv"]

    def decision_function(self, X) -> np.ndarray:
        X = self._check_x(X)
        sv, coef, sqn = self._support()
        if self.kernel == "linear":
            return X.astype(np.float64) @ (sv.T @ coef) + self.intercept_
        return kernel(X, sv, self.kernel, self.gamma_, nb=sqn) @ coef + self.intercept_

    def torch_scores(self) -> KernelScores:
        """The fitted scores as a differentiable torch module of the features."""
        check_is_fitted(self)
        sv, coef, _ = self._support()
        return KernelScores(self.kernel, self.gamma_, sv, coef, self.intercept_)

    # ------------------------------------------------------------ persistence
    def get_state(self) -> dict[str, np.ndarray]:
        """The whole solver state: examples, duals, and K (packed), g and the hyperparameters, saved, not
        recomputed at load, so that learning after a reload continues bit for bit (K adds 4·n² bytes)."""
        check_is_fitted(self)
        st, n = self._store, self._store.n
        params = {k: getattr(self, k) for k in ("C", "gamma", "tol", "max_steps", "max_per_class")}
        return {"X": st.X[:n].copy(), "label": st.label[:n].copy(), "age": st.age[:n].copy(),
                "clock": np.array(st.clock, np.int64), "beta": self._beta[:n].copy(),
                "intercept": self.intercept_.copy(), "thresholds": self.thresholds_.copy(),
                "gamma": np.array(self.gamma_), "classes": np.array(self.classes_.tolist(), dtype=str),
                "K": st.packed(), "sqn": st.sqn[:n].copy(), "g": self._g[:n].copy(), "params": _params(params)}

    def set_state(self, s: dict[str, np.ndarray]) -> OneVsAllSVC:
        """Restore `get_state` as it was: later learning equals the saved learner's, bit for bit.

        A state saved before K, g and the hyperparameters were (older model files) still loads with the
        same decisions; K and g = Kβ − y are then recomputed, the hyperparameters are this estimator's,
        and later learning agrees with the saved learner's only within the solver's `tol`.
        """
        if "params" in s:  # what the learner was fitted with (a `Recognizer.fit` may override its config)
            self.set_params(**json.loads(str(s["params"])))
            self._validate_params()
        self.classes_ = np.array(s["classes"].tolist(), dtype=object)
        self.gamma_ = float(s["gamma"])
        self.thresholds_ = np.asarray(s["thresholds"], np.float64)
        self.intercept_ = np.asarray(s["intercept"], np.float64)
        X = np.asarray(s["X"], np.float32)
        self.n_features_in_ = X.shape[1]
        exact = all(k in s for k in ("K", "sqn", "g"))
        saved_gram = (np.asarray(s["K"], np.float64), np.asarray(s["sqn"], np.float64)) if exact else None
        self._rebuild(X, np.asarray(s["label"], np.int32), np.asarray(s["age"]), saved_gram)
        if "clock" in s:  # ids of later examples continue where the saved learner stopped (never reused)
            self._store.clock = max(self._store.clock, int(s["clock"]))
        n = len(X)
        self._beta[:n] = s["beta"]
        if exact:
            if s["g"].shape != (n, len(self.classes_)):
                raise ValueError("the saved gradient does not match the saved examples and classes")
            self._g[:n] = s["g"]
        else:
            self._g[:n] = self._store.K[:n, :n] @ self._beta[:n] - self._Y()
        return self


class RLSClassifier(RejectMixin, ClassifierMixin, BaseEstimator):
    """One-vs-all regularised least squares, iCub's original online learner.

    Dual form: coef = (K + 1 + λI)⁻¹ Y (the +1 is an unpenalised-ish bias). The
    inverse is grown by a block update, O(n²) per new example.
    """

    _parameter_constraints: ClassVar[dict] = {
        "kernel": [StrOptions(set(KERNELS))],
        "lam": [Interval(Real, 0.0, None, closed="neither")],
        "gamma": _GAMMA,
        "reject": ["boolean"],
        "reject_label": "no_validation",
    }

    def __init__(self, kernel: str = "linear", lam: float = 1e-2, gamma: float | str = "median",
                 reject: bool = False, reject_label="unknown"):
        self.kernel = kernel
        self.lam = lam
        self.gamma = gamma
        self.reject = reject
        self.reject_label = reject_label

    def fit(self, X, y):
        X, self.label_ = self._begin_fit(X, y)
        self.X_ = X.copy()
        self.ids_ = np.arange(len(X), dtype=np.int64)
        self.clock_ = len(X)  # the next example's id
        self._factor()
        return self

    def _factor(self) -> None:
        X = self.X_
        A = kernel(X, X, self.kernel, self.gamma_) + 1.0 + self.lam * np.eye(len(X))
        self.Ainv_ = np.linalg.inv(A)
        self._update_coef()

    @property
    def n_examples_(self) -> int:
        return len(self.X_)

    @property
    def example_ids_(self) -> np.ndarray:
        """Each example's id (see `OneVsAllSVC.example_ids_`)."""
        check_is_fitted(self)
        return self.ids_.copy()

    @property
    def examples_(self) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self)
        return self.X_, self.label_

    def nearest_(self, x: np.ndarray, k: int) -> np.ndarray:
        """Class indices of the k stored examples nearest to x."""
        d = np.einsum("ij,ij->i", self.X_, self.X_) - 2.0 * (self.X_ @ x.reshape(-1).astype(np.float32))
        k = min(k, len(d))
        return self.label_[np.argpartition(d, k - 1)[:k]]

    def forget(self, ids) -> np.ndarray:
        """Remove the examples with these ids (an exact refit on the rest; empty classes dropped)."""
        check_is_fitted(self)
        gone = np.isin(self.ids_, np.asarray(list(ids), np.int64))
        if not gone.any():
            return np.zeros(0, np.int64)
        if gone.all():
            raise InputError("forget would remove every example; reset the model instead")
        removed = self.ids_[gone]
        used = np.unique(self.label_[~gone])
        where = np.full(len(self.classes_), -1, np.int64)
        where[used] = np.arange(len(used))
        self.X_, self.ids_ = self.X_[~gone], self.ids_[~gone]
        self.label_ = where[self.label_[~gone]].astype(np.int32)
        self.classes_, self.thresholds_ = self.classes_[used], self.thresholds_[used]
        self._factor()
        return removed

    def _update_coef(self) -> None:
        Y = -np.ones((len(self.X_), len(self.classes_)))
        Y[np.arange(len(self.X_)), self.label_] = 1.0
        self.coef_ = self.Ainv_ @ Y

    def partial_fit(self, X, y, classes=None):
        """Add examples by a block update of the inverse; new labels add classes (`classes`: see OneVsAllSVC)."""
        if not hasattr(self, "X_"):
            self.fit(X, y)
            X, y = X[:0], y[:0]
        else:
            X, y = self._check_xy(X, y, reset=False)
        new = self._unseen(y, classes)
        if new:
            classes, where = _insert_classes(self.classes_, new)
            thresholds = np.zeros(len(classes))
            thresholds[where] = self.thresholds_
            self.label_ = where[self.label_].astype(np.int32)
            self.classes_, self.thresholds_ = classes, thresholds
        for x, i in zip(np.asarray(X, np.float32), self._indices(y), strict=True):
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
            self.label_ = np.append(self.label_, i)
            self.ids_ = np.append(self.ids_, self.clock_)
            self.clock_ += 1
        self._update_coef()
        return self

    def decision_function(self, X) -> np.ndarray:
        X = self._check_x(X)
        return (kernel(X, self.X_, self.kernel, self.gamma_) + 1.0) @ self.coef_

    def torch_scores(self) -> KernelScores:
        check_is_fitted(self)
        return KernelScores(self.kernel, self.gamma_, self.X_, self.coef_, self.coef_.sum(0))

    def get_state(self) -> dict[str, np.ndarray]:
        """As `OneVsAllSVC.get_state`: the inverse is saved (8·n² bytes), so learning after a reload is bit for bit."""
        check_is_fitted(self)
        return {"X": self.X_.copy(), "label": self.label_.copy(), "thresholds": self.thresholds_.copy(),
                "gamma": np.array(self.gamma_), "classes": np.array(self.classes_.tolist(), dtype=str),
                "age": self.ids_.copy(), "clock": np.array(self.clock_, np.int64), "Ainv": self.Ainv_.copy(),
                "params": _params({"lam": self.lam, "gamma": self.gamma})}

    def set_state(self, s: dict[str, np.ndarray]) -> RLSClassifier:
        """Restore `get_state`; a state without the inverse (older files) is refitted (equal to rounding)."""
        if "params" in s:
            self.set_params(**json.loads(str(s["params"])))
        classes = np.array(s["classes"].tolist(), dtype=object)
        X = np.asarray(s["X"], np.float32)
        if "Ainv" not in s:
            self.fit(X, classes[np.asarray(s["label"])])
        else:  # what `fit` sets, from the file instead of from a new factorisation
            if s["Ainv"].shape != (len(X), len(X)):
                raise ValueError("the saved inverse does not match the saved examples")
            self._validate_params()
            self.classes_, self.gamma_, self.n_features_in_ = classes, float(s["gamma"]), X.shape[1]
            self.X_, self.label_ = X.copy(), np.asarray(s["label"], np.int32).copy()
            self.Ainv_ = np.asarray(s["Ainv"], np.float64).copy()
            self.ids_, self.clock_ = np.arange(len(X), dtype=np.int64), len(X)
            self._update_coef()
        self.thresholds_ = np.asarray(s["thresholds"], np.float64)
        if "age" in s:
            self.ids_ = np.asarray(s["age"], np.int64).copy()
            self.clock_ = max(int(s["clock"]), int(self.ids_.max(initial=-1)) + 1)
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
        raise InputError(f"unknown classifier {name!r}; choose one of {sorted(CLASSIFIERS)}")
    cls = RLSClassifier if name == "rls" else OneVsAllSVC
    return cls(**{**CLASSIFIERS[name], **params})
