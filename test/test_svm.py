"""The SVM package on its own: scikit-learn's estimator checks, the solver's KKT conditions, budget removal."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from icub_guard.core import InputError
from icub_guard.core.svm import BOUND_EPS, OneVsAllSVC, RLSClassifier, kkt_violation, make_classifier
from icub_guard.core.svm.smo import bias, bounds

BINARY_SCORES = ("one-vs-all: decision_function has one column per class even for two classes, because the "
                 "reject option thresholds each class's own score; scikit-learn's binary convention is one column")
REJECTS = ("reject=True predicts reject_label (a label outside classes_, in an object array) for samples far from "
           "the training data: that is the reject option; this check compares predictions as classes_ only")
_REJECT_CHECKS = ("check_fit_score_takes_y", "check_pipeline_consistency", "check_estimators_pickle",
                  "check_classifier_data_not_an_array", "check_supervised_y_2d",
                  "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_fit_idempotent")


def expected_failures(est) -> dict[str, str]:
    out = {"check_classifiers_classes": BINARY_SCORES, "check_classifiers_train": BINARY_SCORES}
    if est.reject:
        out.update(dict.fromkeys(_REJECT_CHECKS, REJECTS))
    return out


@parametrize_with_checks([OneVsAllSVC(), OneVsAllSVC(kernel="linear"), OneVsAllSVC(reject=True), RLSClassifier()],
                         expected_failed_checks=expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(rng, k=3, n=20, d=6, spread=1.0):
    centres = rng.normal(0, 2.5, (k, d))
    X = np.concatenate([rng.normal(c, spread, (n, d)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.array([f"c{i}" for i in range(k)], dtype=object), n)


def assert_kkt(clf: OneVsAllSVC) -> None:
    """The stored duals solve the problem: feasible, Σβ = 0, and max KKT violation ≤ tol (g recomputed)."""
    n, C = clf.n_examples_, float(clf.C)
    K, beta = clf._store.K[:n, :n], clf._beta[:n]
    Y = clf._Y()
    lo, hi = bounds(Y, C)
    assert (beta >= lo - BOUND_EPS * C).all() and (beta <= hi + BOUND_EPS * C).all()
    assert np.abs(beta.sum(0)).max() < 1e-9
    g = K @ beta - Y
    assert kkt_violation(beta, g, Y, C).max() <= clf.tol + 1e-9
    assert np.allclose(g, clf._g[:n], atol=1e-8)  # the incrementally kept gradient has not drifted
    assert np.allclose(bias(beta, g, Y, C), clf.intercept_, atol=1e-8)


def test_kkt_holds_after_fit_and_every_online_update(rng):
    X, y = blobs(rng, k=3, n=25)
    order = rng.permutation(len(X))
    clf = OneVsAllSVC(C=2.0, gamma=0.1, max_per_class=18).fit(X[order[:12]], y[order[:12]])
    assert_kkt(clf)
    for i in order[12:]:
        clf.partial_fit(X[i : i + 1], [y[i]])
        assert_kkt(clf)
    assert np.bincount(clf._store.label[: clf.n_examples_]).max() == 18  # the budget evicted


def test_kkt_detects_a_wrong_solution(rng):
    X, y = blobs(rng)
    clf = OneVsAllSVC(C=1.0, gamma=0.1).fit(X, y)
    sv = np.flatnonzero(np.any(clf._beta[: clf.n_examples_] != 0.0, axis=1))
    clf._beta[sv[:3]] *= 0.5  # break the optimum
    with pytest.raises(AssertionError):
        assert_kkt(clf)


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_budget_removal_equals_a_refit_on_what_remains(rng, kernel):
    X, y = blobs(rng, k=3, n=20, spread=1.5)  # overlapping: many support vectors get evicted
    clf = OneVsAllSVC(kernel=kernel, C=1.0, gamma=0.1, max_per_class=12, tol=1e-5)
    clf.fit(X[:30], y[:30])
    for i in range(30, 60):
        clf.partial_fit(X[i : i + 1], [y[i]])
    n = clf.n_examples_
    kept_X, kept_y = clf._store.X[:n], clf.classes_[clf._store.label[:n]]
    ref = OneVsAllSVC(kernel=kernel, C=1.0, gamma=0.1, tol=1e-5).fit(kept_X, kept_y)
    Xt = X + rng.normal(0, 0.3, X.shape).astype(np.float32)
    assert list(ref.classes_) == list(clf.classes_)
    assert np.abs(clf.decision_function(Xt) - ref.decision_function(Xt)).max() < 1e-3


def test_classes_sorted_and_stable_when_classes_arrive_online(rng):
    X, _ = blobs(rng, k=4, n=10)
    names = np.array(["mug", "duck", "zebra", "apple"], dtype=object)[np.repeat(np.arange(4), 10)]
    clf = OneVsAllSVC(C=1.0, gamma=0.1).fit(X[:20], names[:20])
    assert list(clf.classes_) == ["duck", "mug"]
    before = clf.decision_function(X[:20])
    clf.partial_fit(X[20:30], names[20:30])  # zebra: appended at the end
    clf.partial_fit(X[30:40], names[30:40])  # apple: inserted in front
    assert list(clf.classes_) == ["apple", "duck", "mug", "zebra"]
    assert (clf.predict(X) == names).mean() > 0.9
    # the old problems did not change their column: duck and mug scores stay close on their own data
    after = clf.decision_function(X[:20])[:, [1, 2]]
    assert np.corrcoef(before.ravel(), after.ravel())[0, 1] > 0.9


def test_integer_labels_and_not_fitted(rng):
    X, _ = blobs(rng, k=3)
    y = np.repeat([7, 3, 5], 20)
    for est in (OneVsAllSVC(C=1.0, gamma=0.1), RLSClassifier()):
        with pytest.raises(NotFittedError):
            est.predict(X)
        est.fit(X, y)
        assert est.classes_.tolist() == [3, 5, 7] and est.predict(X).dtype.kind == "i"
        assert (est.predict(X) == y).mean() > 0.9
        est.partial_fit(X[:5], np.full(5, 1))
        assert est.classes_.tolist() == [1, 3, 5, 7]


def test_calibrate_keeps_the_reject_parameter(rng):
    X, y = blobs(rng)
    plain = OneVsAllSVC(C=1.0, gamma=0.1).fit(X, y)
    with pytest.raises(InputError, match="reject option"):
        plain.calibrate(X, y)
    assert plain.get_params()["reject"] is False
    adv = OneVsAllSVC(C=1.0, gamma=0.1, reject=True).fit(X, y)
    adv.calibrate(X, y, 0.2)
    assert adv.get_params()["reject"] is True and (adv.thresholds_ > 0).any()


def test_score_honours_sample_weight(rng):
    X, y = blobs(rng, spread=3.0)
    clf = OneVsAllSVC(C=1.0, gamma=0.1).fit(X[::2], y[::2])
    right = clf.predict(X) == y
    assert 0 < right.mean() < 1
    w = np.where(right, 1.0, 0.0)
    assert clf.score(X, y, sample_weight=w) == 1.0
    assert clf.score(X, y, sample_weight=1 - w) == 0.0


@pytest.mark.parametrize("params", [{"C": 0}, {"C": -1}, {"gamma": "mean"}, {"kernel": "poly"}, {"max_per_class": 0},
                                    {"tol": 0}])
def test_parameter_constraints(rng, params):
    X, y = blobs(rng)
    with pytest.raises(ValueError):
        OneVsAllSVC(**params).fit(X, y)


def test_reject_label_is_configurable_and_not_a_class(rng):
    X, _ = blobs(rng)
    y = np.repeat([0, 1, 2], 20)
    clf = OneVsAllSVC(C=1.0, gamma=0.1, reject=True, reject_label=-1).fit(X, y)
    far = X[:5] + 50.0
    assert (clf.predict(far) == -1).all()
    with pytest.raises(InputError, match="reject label"):
        clf.partial_fit(X[:1], [-1])
    with pytest.raises(InputError, match="reject label"):
        make_classifier("svm-adv").fit(X, np.where(y == 0, "unknown", "b"))


def test_c_ties_go_to_the_classifier_that_accepts_its_own_classes():
    """Well-separated classes tie every C at CV accuracy 1.0 (by argmax). The smallest C alone scores every sample
    below 0 — a reject option would refuse all of them — so ties go to the higher accepted accuracy."""
    from icub_guard.core.svm import select_hyperparameters
    from icub_guard.core.svm.estimators import OneVsAllSVC
    from icub_guard.core.svm.selection import accepted_accuracy

    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 3.0
    X = np.concatenate([c + 0.05 * rng.normal(size=(12, 16)) for c in centres]).astype(np.float32)
    y = np.repeat(np.array(["a", "b", "c", "d"], dtype=object), 12)
    picked = select_hyperparameters(X, y, "rbf", seed=0)
    assert picked["cv_accuracy"] == 1.0
    smallest = OneVsAllSVC(kernel="rbf", C=1e-3, gamma=picked["gamma"]).fit(X, y)
    assert accepted_accuracy(smallest, X, y) == 0.0  # the tie the old rule took: nothing accepted
    chosen = OneVsAllSVC(kernel="rbf", C=picked["C"], gamma=picked["gamma"]).fit(X, y)
    assert picked["C"] > 1e-3 and accepted_accuracy(chosen, X, y) == 1.0
