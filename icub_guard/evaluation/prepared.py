"""What evaluations at one backbone and data set share: the crops, their features and the fitted classifiers.

Before it attacks anything, an evaluation loads its train / validation / test crops, extracts their
features and chooses C (and γ) by 3-fold CV. Cells of a sweep that differ only in the attack, the
norm, the d_max grid or the defences would repeat that work; `prepare` does it once, and
`run_security_evaluation` / `run_defence_evaluation` take the result (`prepared=`) and do only their own
part. Without it they call `prepare` themselves, so one code path draws every curve.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from ..core.features import FeatureExtractor
from ..core.svm import make_classifier, select_hyperparameters
from ..sim.datasets import Dataset, load_dataset


@dataclass(frozen=True)
class PrepKey:
    """Everything the shared work depends on; read off any evaluation config that has these fields."""

    dataset: str
    backbone: str
    weights: str
    seed: int
    input_size: int
    n_train: int
    n_val: int
    n_test: int
    device: str
    linear: bool = True  # also the linear SVM (the security evaluation's; the defences' needs only the RBF family)

    @classmethod
    def of(cls, cfg, linear: bool = True) -> PrepKey:
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls) if f.name != "linear"}, linear=linear)


@dataclass
class Split:
    data: Dataset
    features: np.ndarray


@dataclass
class Prepared:
    """The crops, features, hyperparameters and fitted classifiers of one `PrepKey`.

    `classifiers`: "svm-rbf", "svm-adv" (thresholds 0, uncalibrated) and with `key.linear` "svm"; `token`
    names this computation, so cells that received equal tokens shared one extraction.
    """

    key: PrepKey
    splits: dict[str, Split]
    hyperparameters: dict[str, dict]
    classifiers: dict[str, object]
    seconds: dict[str, float]
    token: str

    def check(self, cfg, linear: bool) -> None:
        """Refuse data prepared for another configuration (a sweep's bookkeeping error, said loudly)."""
        want = PrepKey.of(cfg, linear)
        if want != self.key and not (self.key.linear and not linear and PrepKey.of(cfg, True) == self.key):
            raise ValueError(f"prepared data of {self.key} given to an evaluation of {want}")

    def classifier(self, name: str):
        """A copy of a fitted classifier: the evaluation may calibrate its thresholds."""
        return copy.deepcopy(self.classifiers[name])


def prepare(extractor: FeatureExtractor, key: PrepKey, say: Callable[[str], None] | None = None) -> Prepared:
    """Load the three splits, extract their features, choose C / γ by 3-fold CV and fit the classifiers."""
    say = say or (lambda msg: None)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    say("loading data")
    data = {split: load_dataset(key.dataset, split, n, seed=key.seed)
            for split, n in (("train", key.n_train), ("val", key.n_val), ("test", key.n_test))}
    seconds["data_s"] = time.perf_counter() - t
    t = time.perf_counter()
    say("extracting features")
    splits = {name: Split(d, extractor.extract(d.images)) for name, d in data.items()}
    seconds["features_s"] = time.perf_counter() - t
    t = time.perf_counter()
    say("training classifiers (3-fold CV)")
    F_tr, y_tr = splits["train"].features, data["train"].labels
    hp = {"rbf": select_hyperparameters(F_tr, y_tr, "rbf", seed=key.seed)}
    clfs = {name: make_classifier(name, C=hp["rbf"]["C"], gamma=hp["rbf"]["gamma"]).fit(F_tr, y_tr)
            for name in ("svm-rbf", "svm-adv")}
    if key.linear:
        hp["linear"] = select_hyperparameters(F_tr, y_tr, "linear", seed=key.seed)
        clfs["svm"] = make_classifier("svm", C=hp["linear"]["C"]).fit(F_tr, y_tr)
    seconds["training_s"] = time.perf_counter() - t
    return Prepared(key, splits, hp, clfs, seconds, uuid.uuid4().hex)
