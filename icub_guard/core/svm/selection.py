"""Model selection as in the paper: C (and γ for RBF) by stratified 3-fold CV accuracy.

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


def select_hyperparameters(X, y, kernel_kind: str = "rbf", Cs=DEFAULT_C_GRID, gamma_factors=DEFAULT_GAMMA_FACTORS,
                           cv: int = 3, seed: int = 0) -> dict[str, float]:
    """The best {"C", "gamma", "cv_accuracy"}; ties go to the smaller C, then the smaller γ."""
    X = check_features(X)
    g0 = median_gamma(X)
    gammas = [g0 * f for f in gamma_factors] if kernel_kind == "rbf" else [g0]
    search = GridSearchCV(OneVsAllSVC(kernel=kernel_kind), {"C": [float(c) for c in Cs], "gamma": gammas},
                          cv=StratifiedKFold(cv, shuffle=True, random_state=seed), refit=False, n_jobs=1)
    search.fit(X, np.asarray(y, dtype=object))
    i = int(np.argmax(search.cv_results_["mean_test_score"]))  # first of the best: smallest C, then γ
    params = search.cv_results_["params"][i]
    log.debug("CV picked %s (accuracy %.3f)", params, search.cv_results_["mean_test_score"][i])
    return {"C": float(params["C"]), "gamma": float(params["gamma"]),
            "cv_accuracy": float(search.cv_results_["mean_test_score"][i])}
