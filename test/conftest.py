"""Shared, seeded fixtures: small SimWorld7 splits and a random-weight AlexNet.

Session-scoped so the renderer and the backbone run once per test session.
The backbone runs at 128 px input (not 224) to keep CPU test time low; one
test covers the default size.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

# DDS traffic stays on this machine, and each test run gets its own domain so
# parallel runs (two CI jobs, a developer's demo) never see each other.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

from icub_guard.core import GuardModel, Recognizer, RecognizerConfig, make_classifier
from icub_guard.core.features import BackboneSpec, FeatureExtractor
from icub_guard.sim.datasets import simworld

TEST_SPEC = BackboneSpec("alexnet", "random", seed=0, input_size=128)
# for attack tests that take many gradient passes: a pass costs ~8× less than AlexNet at 64 px, ~15× less than at 128
SMALL_SPEC = BackboneSpec("simnet", "random", seed=0, input_size=32)


def shrink(images: np.ndarray, size: int = 32) -> np.ndarray:
    return np.stack([cv2.resize(i, (size, size), interpolation=cv2.INTER_AREA) for i in images])


@pytest.fixture(scope="session")
def data7():
    return {s: simworld("7", s, n) for s, n in (("train", 24), ("val", 12), ("test", 16))}


@pytest.fixture(scope="session")
def small7(data7):
    """A cheap pixels → scores chain: random SimNet at 32 px and an SVM-RBF fitted on SimWorld7's training crops
    shrunk to 32 px (`fx`, `clf`, `model`; the crops to attack: `shrink(data7["test"].images)`)."""
    fx = FeatureExtractor(SMALL_SPEC, device="cpu")
    train = data7["train"]
    clf = make_classifier("svm-rbf", C=10.0).fit(fx.extract(shrink(train.images)), train.labels)
    return SimpleNamespace(fx=fx, clf=clf, model=GuardModel.from_classifier(fx, clf))


@pytest.fixture(scope="session")
def extractor():
    return FeatureExtractor(TEST_SPEC, device="cpu")


@pytest.fixture(scope="session")
def feats7(data7, extractor):
    return {s: (extractor.extract(d.images), d.labels) for s, d in data7.items()}


@pytest.fixture(scope="session")
def hyper(feats7):
    from icub_guard.core.svm import select_hyperparameters

    X, y = feats7["train"]
    return select_hyperparameters(X, y, "rbf")


def make_recognizer(extractor, **cfg) -> Recognizer:
    base = dict(weights="random", input_size=TEST_SPEC.input_size, device="cpu")
    return Recognizer(RecognizerConfig(**{**base, **cfg}), extractor=extractor)


@pytest.fixture(scope="session")
def small_feats7(data7, small7):
    return {s: (small7.fx.extract(shrink(d.images)), d.labels) for s, d in data7.items()}


@pytest.fixture(scope="session")
def small_hyper(small_feats7):
    from icub_guard.core.svm import select_hyperparameters

    return select_hyperparameters(*small_feats7["train"], "rbf")


@pytest.fixture
def small_trained(small7, small_feats7, small_hyper):
    """As `trained`, on `small7`'s backbone: a recogniser of 32 px crops (`shrink`) for attack-heavy tests."""
    rec = Recognizer(RecognizerConfig(backbone="simnet", weights="random", input_size=32, crop_size=32, device="cpu"),
                     extractor=small7.fx)
    X, y = small_feats7["train"]
    rec.fit(X, y, {"C": small_hyper["C"], "gamma": small_hyper["gamma"]})
    return rec


@pytest.fixture
def trained(extractor, feats7, hyper):
    rec = make_recognizer(extractor)
    X, y = feats7["train"]
    rec.fit(X, y, {"C": hyper["C"], "gamma": hyper["gamma"]})
    return rec


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
