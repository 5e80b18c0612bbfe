"""Shared, seeded fixtures: small SimWorld7 splits and a random-weight AlexNet.

Session-scoped so the renderer and the backbone run once per test session.
The backbone runs at 128 px input (not 224) to keep CPU test time low; one
test covers the default size.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

# DDS traffic stays on this machine, and each test run gets its own domain so
# parallel runs (two CI jobs, a developer's demo) never see each other.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

from icub_guard.core import Recognizer, RecognizerConfig
from icub_guard.core.features import BackboneSpec, FeatureExtractor
from icub_guard.sim.datasets import simworld

TEST_SPEC = BackboneSpec("alexnet", "random", seed=0, input_size=128)


@pytest.fixture(scope="session")
def data7():
    return {s: simworld("7", s, n) for s, n in (("train", 24), ("val", 12), ("test", 16))}


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


@pytest.fixture
def trained(extractor, feats7, hyper):
    rec = make_recognizer(extractor)
    X, y = feats7["train"]
    rec.fit(X, y, {"C": hyper["C"], "gamma": hyper["gamma"]})
    return rec


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
