"""Classifiers: correctness against libsvm, accuracy, reject option, online learning."""

import numpy as np
import pytest
from sklearn.svm import SVC

from icub_guard.core import InputError, OneVsAllSVC, RLSClassifier, make_classifier
from icub_guard.core.validation import UNKNOWN


def blobs(rng, k=4, n=40, d=10, spread=1.0):
    centres = rng.normal(0, 3, (k, d))
    X = np.concatenate([rng.normal(c, spread, (n, d)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.array([f"c{i}" for i in range(k)], dtype=object), n)


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_solver_matches_libsvm(rng, kernel):
    X, y = blobs(rng)
    ours = OneVsAllSVC(kernel=kernel, C=1.0, gamma=0.05).fit(X, y)
    Xt = X[::5] + rng.normal(0, 0.5, X[::5].shape).astype(np.float32)
    ref = np.stack([SVC(kernel=kernel, C=1.0, gamma=0.05).fit(X, y == c).decision_function(Xt)
                    for c in ours.classes_], 1)
    got = ours.decision_function(Xt)
    # both stop at KKT violation <= 1e-3, so the solutions agree to that order
    assert np.abs(got - ref).max() < 5e-3 * max(1.0, np.abs(ref).max())
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_accuracy_on_simworld7_well_above_chance(feats7, hyper):
    (X, y), (Xt, yt) = feats7["train"], feats7["test"]
    assert hyper["cv_accuracy"] > 0.8
    for name in ("svm", "svm-rbf", "rls"):
        params = {} if name == "rls" else {"C": hyper["C"], "gamma": hyper["gamma"]}
        acc = make_classifier(name, **params).fit(X, y).score(Xt, yt)
        assert acc > 0.8, (name, acc)  # chance is 1/7


def test_reject_option_catches_far_inputs_rbf_does_not(feats7, hyper, extractor, rng):
    (X, y), (Xv, yv) = feats7["train"], feats7["val"]
    adv = make_classifier("svm-adv", C=hyper["C"], gamma=hyper["gamma"]).fit(X, y)
    rbf = make_classifier("svm-rbf", C=hyper["C"], gamma=hyper["gamma"]).fit(X, y)
    # shifted features: far from every training point, scores fall to the biases (< 0)
    shifted = X[:30] + 3.0 * rng.normal(0, 1, X.shape[1]).astype(np.float32) / np.sqrt(X.shape[1])
    assert (adv.predict(shifted) == UNKNOWN).all()
    assert (rbf.predict(shifted) == adv.classes_[adv.decision_function(shifted).argmax(1)]).all()
    # Gaussian-noise images, with the paper's calibration (+5% false rejects)
    adv.calibrate(Xv, yv, 0.05)
    noise = np.clip(128 + 40 * rng.normal(size=(20, 64, 64, 3)), 0, 255).astype(np.uint8)
    Fn = extractor.extract(noise)
    assert np.mean(adv.predict(Fn) == UNKNOWN) >= 0.8
    # ...while clean test data is mostly accepted, and right when accepted
    Xt, yt = feats7["test"]
    pred = adv.predict(Xt)
    accepted = pred != UNKNOWN
    assert accepted.mean() >= 0.7
    assert np.mean(pred[accepted] == yt[accepted]) >= 0.95


def test_calibrate_raises_false_rejects_by_target(feats7, hyper):
    (X, y), (Xv, yv) = feats7["train"], feats7["val"]
    clf = make_classifier("svm-adv", C=hyper["C"], gamma=hyper["gamma"]).fit(X, y)
    base = np.mean(clf.predict(Xv) == UNKNOWN)
    t = clf.calibrate(Xv, yv, 0.25)
    assert t.shape == (7,)
    rejected = np.mean(clf.predict(Xv) == UNKNOWN)
    assert 0.15 <= rejected - base <= 0.3  # 25% of the accepted, correct samples
    assert np.array_equal(t, clf.calibrate(Xv, yv, 0.25))  # idempotent
    assert np.all(t >= 0)


def test_partial_fit_matches_batch_fit(rng):
    X, y = blobs(rng, k=3, n=30)
    order = rng.permutation(len(X))
    batch = OneVsAllSVC(C=1.0, gamma=0.05).fit(X, y)
    online = OneVsAllSVC(C=1.0, gamma=0.05).fit(X[order[:10]], y[order[:10]])
    for i in order[10:]:
        online.partial_fit(X[i : i + 1], [y[i]])
    Xt = X + 0.3
    # classes may be in another order: compare by name
    a = batch.decision_function(Xt)
    b = online.decision_function(Xt)[:, [list(online.classes_).index(c) for c in batch.classes_]]
    assert np.abs(a - b).max() < 1e-2
    assert online.n_examples_ == len(X)


def test_online_new_class_and_budget(rng):
    X, y = blobs(rng, k=3, n=20)
    clf = OneVsAllSVC(C=1.0, gamma=0.05, reject=True, max_per_class=15).fit(X[:40], y[:40])
    assert list(clf.classes_) == ["c0", "c1"] and clf.n_examples_ == 30  # budget applied at fit
    for i in range(40, 60):
        clf.partial_fit(X[i : i + 1], [y[i]])
    assert list(clf.classes_) == ["c0", "c1", "c2"]
    counts = np.bincount(clf._store.label[: clf.n_examples_])
    assert counts.max() <= 15
    assert np.mean(clf.predict(X[40:60] + 0.1) == "c2") > 0.9
    # the dual stays feasible after evictions: Σβ = 0 for every class
    beta = clf._beta[: clf.n_examples_]
    assert np.abs(beta.sum(0)).max() < 1e-9


def test_rls_online_equals_batch(rng):
    X, y = blobs(rng, k=3, n=15)
    batch = RLSClassifier(lam=0.1).fit(X, y)
    online = RLSClassifier(lam=0.1).fit(X[:20], y[:20])  # two classes only
    online.partial_fit(X[20:], y[20:])  # brings the third class
    a = batch.decision_function(X)
    b = online.decision_function(X)[:, [list(online.classes_).index(c) for c in batch.classes_]]
    assert np.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("bad", [
    np.full((3, 10), np.nan, np.float32),
    np.zeros((0, 10), np.float32),
    np.zeros((3, 9), np.float32),
    np.array([["a"] * 10] * 3),
])
def test_bad_features_raise_and_change_nothing(rng, bad):
    X, y = blobs(rng, k=2, n=10)
    clf = OneVsAllSVC(C=1.0, gamma=0.05).fit(X, y)
    before = clf.decision_function(X).copy()
    with pytest.raises(InputError):
        clf.partial_fit(bad, ["c0"] * max(len(bad), 1))
    with pytest.raises(InputError):
        clf.decision_function(bad)
    assert np.array_equal(before, clf.decision_function(X))
    assert clf.n_examples_ == 20


@pytest.mark.parametrize("label", ["", "   ", "x" * 65, "bad\nlabel", "tab\tbed", "zero\u200bwidth", UNKNOWN,
                                   "UNKNOWN", " Unknown ", "\uff55\uff4e\uff4b\uff4e\uff4f\uff57\uff4e", 7, None])
def test_recognizer_refuses_bad_labels_and_changes_nothing(trained, feats7, label):
    X, _ = feats7["test"]
    before = (trained.classes, trained.n_examples)
    with pytest.raises(InputError):
        trained.learn(X[:1], label)
    with pytest.raises(InputError):
        trained.fit(X[:2], ["mug", label])
    assert (trained.classes, trained.n_examples) == before


def test_recognizer_normalises_labels(trained, feats7):
    X, _ = feats7["test"]
    assert trained.learn(X[:1], "\uff4d\uff55\uff47  ").label == "mug"  # NFKC: full-width letters are "mug"
