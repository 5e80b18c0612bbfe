"""Model selection as in the paper: C (and γ for RBF) by stratified 3-fold CV accuracy (ties: accepted accuracy).

It is scikit-learn's `GridSearchCV` over our estimator's own `fit` and `score`,
so what is selected is exactly what is trained.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from ..kernels import median_gamma
from ..validation import check_features
from .estimators import OneVsAllSVC

log = logging.getLogger(__name__)

#: The paper's grid for C; gammas are multiples of the median heuristic.
DEFAULT_C_GRID = tuple(10.0 ** np.arange(-3, 4))
DEFAULT_GAMMA_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def accepted_accuracy(estimator, X, y) -> float:
    """The share of `X` whose top class is right **and** scores above 0 (what a reject option at threshold 0 would
    accept): the tie-break between C values that argmax accuracy cannot tell apart."""
    scores = estimator.decision_function(X)
    top = scores.argmax(1)
    return float(np.mean((estimator.classes_[top] == np.asarray(y, dtype=object)) & (scores.max(1) > 0)))


def select_hyperparameters(X, y, kernel_kind: str = "rbf", Cs=DEFAULT_C_GRID, gamma_factors=DEFAULT_GAMMA_FACTORS,
                           cv: int = 3, seed: int = 0) -> dict[str, float]:
    """The best {"C", "gamma", "cv_accuracy"} by CV accuracy (argmax, as the paper). Ties — every C of a grid reaches
    1.0 on well-separated features — go to the higher CV accepted accuracy (`accepted_accuracy`), then the smaller
    C, then the smaller γ: the smallest C alone can put every score below 0, a classifier whose reject option
    refuses everything."""
    X = check_features(X)
    g0 = median_gamma(X)
    gammas = [g0 * f for f in gamma_factors] if kernel_kind == "rbf" else [g0]
    search = GridSearchCV(OneVsAllSVC(kernel=kernel_kind), {"C": [float(c) for c in Cs], "gamma": gammas},
                          scoring={"accuracy": "accuracy", "accepted": accepted_accuracy},
                          cv=StratifiedKFold(cv, shuffle=True, random_state=seed), refit=False, n_jobs=1)
    search.fit(X, np.asarray(y, dtype=object))
    res = search.cv_results_
    acc, accepted = res["mean_test_accuracy"], res["mean_test_accepted"]
    best = acc.max()
    tied = np.flatnonzero(np.isclose(acc, best, rtol=0, atol=1e-12))
    i = int(tied[np.argmax(accepted[tied])])  # first of the best: smallest C, then γ
    params = res["params"][i]
    log.debug("CV picked %s (accuracy %.3f, accepted %.3f, %d tied)", params, acc[i], accepted[i], len(tied))
    return {"C": float(params["C"]), "gamma": float(params["gamma"]), "cv_accuracy": float(acc[i])}
