"""The one-vs-all SVM with a reject option, as a small package.

* `gram`        — training examples and their cached, growable Gram matrix
* `smo`         — the dual solver (SMO with shrinking), its bias and KKT check
* `estimators`  — the scikit-learn estimators (`OneVsAllSVC`, `RLSClassifier`)
* `selection`   — C and γ by cross-validation
"""

from .estimators import CLASSIFIERS, MEDIAN_GAMMA_WARMUP, OneVsAllSVC, RejectMixin, RLSClassifier, make_classifier
from .selection import DEFAULT_C_GRID, DEFAULT_GAMMA_FACTORS, select_hyperparameters
from .smo import BOUND_EPS, SolverStats, kkt_violation, smo

__all__ = [
    "BOUND_EPS", "CLASSIFIERS", "DEFAULT_C_GRID", "DEFAULT_GAMMA_FACTORS", "MEDIAN_GAMMA_WARMUP", "OneVsAllSVC",
    "RLSClassifier", "RejectMixin", "SolverStats", "kkt_violation", "make_classifier", "select_hyperparameters",
    "smo",
]
