"""The recognition loop a robot runs: ROI → features → classify with reject → learn.

`Recognizer` is what the ROS nodes wrap. It starts knowing nothing, answers
`unknown` until it has two classes, learns each teacher label online (the model
in use is updated before `learn` returns), and saves/loads its whole state.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from . import persistence
from .errors import InputError, ModelFileError
from .features import BackboneSpec, FeatureExtractor, build_extractor
from .pipeline import GuardModel
from .roi import ROI, RoiSelector, clamp_roi, crop, square_roi
from .rules import Reason, not_ready
from .svm import CLASSIFIERS, OneVsAllSVC, RLSClassifier, make_classifier, select_hyperparameters
from .validation import UNKNOWN, check_features, check_image, check_label, check_settings, setting

log = logging.getLogger(__name__)


@dataclass
class RecognizerConfig:
    """How the recogniser is built; every default is the guard's parameter of the same name (config/guard.yaml),
    fixed at start (read-only on the node)."""

    backbone: str = setting("backbone", "alexnet | vgg16 | resnet18 | resnet50 | simnet (the project's own)")
    weights: str = setting("weights", "imagenet | simworld2, simworld (simnet's shipped) | random | auto "
                                                "(imagenet when cached) | path to a checkpoint")
    seed: int = setting("seed", "seed for random weights", 0, 2**31 - 1)
    input_size: int = setting("input_size", "network input size (px)", 32, 1024)
    device: str = setting("device", "auto | cpu | cuda | cuda:N")
    classifier: str = setting("classifier", "svm | svm-rbf | svm-adv | rls")
    C: float = setting("C", "SVM C", 1e-6, 1e6)
    gamma: float | str = setting("gamma", "RBF gamma; 0 (or 'median') = median heuristic", 0.0, 1e6)
    max_per_class: int | None = setting("max_per_class", "examples kept per class (0 or None = unbounded)",
                                        0, 100_000)
    roi_mode: str = setting("roi_mode", "full | fixed | auto (used when no roi message is fresh)")
    roi_fixed: tuple[int, int, int, int] | None = setting("roi_fixed", "x, y, w, h for roi_mode fixed")
    roi_margin: float = 0.2
    crop_size: int = setting("crop_size", "crop side fed to the network (px)", 8, 1024)

    def __post_init__(self) -> None:
        # the parameters' "none" spellings (0, 0, a box that is not used) as the values they mean
        if not isinstance(self.gamma, str) and self.gamma == 0:
            self.gamma = "median"
        if self.max_per_class == 0:
            self.max_per_class = None
        if self.roi_mode != "fixed" or (self.roi_fixed is not None and not any(self.roi_fixed)):
            self.roi_fixed = None
        elif self.roi_fixed is not None:
            self.roi_fixed = tuple(int(v) for v in self.roi_fixed)
        check_settings(self)
        if self.classifier not in CLASSIFIERS:
            raise InputError(f"unknown classifier {self.classifier!r}; choose one of {sorted(CLASSIFIERS)}")
        if not (isinstance(self.C, int | float) and self.C > 0):
            raise InputError(f"C must be a positive number, got {self.C!r}")
        if isinstance(self.gamma, str) and self.gamma != "median":
            raise InputError(f"gamma must be a positive number or 'median', got {self.gamma!r}")

    @property
    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(self.backbone, self.weights, self.seed, self.input_size)


@dataclass
class Decision:
    label: str
    accepted: bool
    reason: Reason  # accepted | below_threshold | no_classes | one_class | detector | open_set | not_certified
    scores: dict[str, float] = field(default_factory=dict)
    margin: float = float("nan")  # top-1 minus top-2 score
    roi: tuple[int, int, int, int] | None = None
    stages: dict[str, float] = field(default_factory=dict)  # each defence stage's score (`defences.online`)
    radius: float | None = None  # certified l2 radius (randomised smoothing)
    notes: tuple[str, ...] = ()  # e.g. a defence not fitted yet, so the reject option decided

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: -kv[1])[:k]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LearnReport:
    label: str
    new_class: bool
    n_examples: int
    n_classes: int
    seconds: float
    ids: list[int] = field(default_factory=list)  # the new examples' ids (see `Recognizer.example_ids`)


class Recognizer:
    """Thread-safe: a node's image callback and teacher callback may run concurrently."""

    def __init__(self, config: RecognizerConfig | None = None, extractor: FeatureExtractor | None = None):
        cfg = config or RecognizerConfig()
        #: why this recogniser is degraded (e.g. random backbone weights), for the log and /diagnostics
        self.notes: list[str] = []
        if extractor is None:  # "auto" weights resolved here: ImageNet when cached, else seeded random ones
            extractor, degraded = build_extractor(cfg.backbone, cfg.weights, cfg.seed, cfg.input_size, cfg.device)
            cfg = replace(cfg, backbone=extractor.spec.name, weights=extractor.spec.weights)
            self.notes += [degraded] if degraded else []
        self.config, self.extractor = cfg, extractor
        self.roi_selector = RoiSelector(self.config.roi_mode, self.config.roi_fixed)
        self.classifier: OneVsAllSVC | RLSClassifier | None = None
        self._model: GuardModel | None = None
        self._lock = threading.RLock()

    # --------------------------------------------------------------- queries
    @property
    def classes(self) -> list[str]:
        return [] if self.classifier is None else [str(c) for c in self.classifier.classes_]

    @property
    def n_examples(self) -> int:
        c = self.classifier
        return 0 if c is None else c.n_examples_

    def crop_box(self, image: np.ndarray, roi=None) -> tuple[ROI, ROI]:
        """The box cut out of the frame (clamped) and the ROI it came from.

        A given ROI is a tight object box (from a detector or the simulator): it gets
        the training crops' context margin; auto/fixed/full boxes are used as they are.
        """
        img = check_image(image)
        r = self.roi_selector.select(img, roi)
        box = square_roi(r.as_tuple(), self.config.roi_margin) if roi is not None else r.as_tuple()
        return clamp_roi(box, img.shape[1], img.shape[0]), r

    def crop(self, image: np.ndarray, roi=None) -> tuple[np.ndarray, ROI]:
        """The square, resized crop the classifier sees, and the ROI it came from."""
        box, r = self.crop_box(image, roi)
        return crop(image, box, self.config.crop_size), r

    def features(self, crops: np.ndarray) -> np.ndarray:
        return self.extractor.extract(crops)

    def recognize(self, image: np.ndarray, roi=None) -> Decision:
        c, r = self.crop(image, roi)
        d = self.classify_features(self.features(c))[0]
        d.roi = r.as_tuple()
        return d

    def classify_features(self, feats) -> list[Decision]:
        X = check_features(feats, self.extractor.dim)
        with self._lock:
            clf = self.classifier
            reason = not_ready(clf)
            if reason is not None:
                scores = [{} for _ in X] if clf is None else [{str(clf.classes_[0]): float("nan")} for _ in X]
                return [Decision(UNKNOWN, False, reason, s) for s in scores]
            S = clf.decision_function(X)
            labels, accepted = clf.decide(S)
            names = [str(c) for c in clf.classes_]
        out = []
        for s, lab, acc in zip(S, labels, accepted, strict=True):
            top2 = np.sort(s)[-2:]
            out.append(Decision(str(lab), bool(acc), Reason.ACCEPTED if acc else Reason.BELOW_THRESHOLD,
                                dict(zip(names, map(float, s), strict=True)), float(top2[1] - top2[0])))
        return out

    # -------------------------------------------------------------- learning
    def _as_features(self, crop_or_features) -> np.ndarray:
        arr = np.asarray(crop_or_features)
        if arr.ndim == 3 and arr.shape[-1] == 3:  # one crop
            return self.features(crop(arr, None, self.config.crop_size))
        if arr.ndim == 4 and arr.shape[-1] == 3:  # a batch of crops
            return self.features(np.stack([crop(a, None, self.config.crop_size) for a in arr]))
        return check_features(arr, self.extractor.dim)

    def _new_classifier(self, C=None, gamma=None) -> OneVsAllSVC | RLSClassifier:
        cfg = self.config
        if cfg.classifier == "rls":
            return make_classifier("rls")
        return make_classifier(cfg.classifier, C=C or cfg.C, gamma=gamma or cfg.gamma, max_per_class=cfg.max_per_class)

    def learn(self, crop_or_features, label: str) -> LearnReport:
        """Teach one example (or a batch with one label); new labels add a class."""
        name = check_label(label)
        X = self._as_features(crop_or_features)
        t0 = time.perf_counter()
        with self._lock:
            new = name not in self.classes
            clf = self.classifier or self._new_classifier()
            before = set(self.example_ids().tolist())
            clf.partial_fit(X, [name] * len(X))
            self.classifier, self._model = clf, None
            ids = [i for i in clf.example_ids_.tolist() if i not in before]
            report = LearnReport(name, new, self.n_examples, len(self.classes), time.perf_counter() - t0, ids)
        log.debug("learned %r (%s): %d examples, %d classes, %.1f ms", name, "new class" if new else "known class",
                 report.n_examples, report.n_classes, 1e3 * report.seconds)
        return report

    def example_ids(self) -> np.ndarray:
        """The ids of the examples the classifier holds (an empty array before the first label)."""
        with self._lock:
            return np.zeros(0, np.int64) if self.classifier is None else self.classifier.example_ids_

    def examples(self, copy: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stored examples: features, class indices (into `classes`) and ids.

        `copy=False` returns views of the features and labels, valid until the next
        update (at the paper's scale a copy is 46 MB: the teaching session reads
        them under its own lock, which every update also holds).
        """
        with self._lock:
            if self.classifier is None:
                return np.zeros((0, self.extractor.dim), np.float32), np.zeros(0, np.int32), np.zeros(0, np.int64)
            X, y = self.classifier.examples_
            return (X.copy() if copy else X), (y.copy() if copy else y), self.classifier.example_ids_

    def nearest(self, features, k: int) -> list[str]:
        """The labels of the k stored examples nearest to one feature vector (feature space, Euclidean)."""
        x = check_features(features, self.extractor.dim)[0]
        with self._lock:
            if self.classifier is None:
                return []
            names = self.classes
            return [names[i] for i in self.classifier.nearest_(x, k)]

    def forget(self, ids) -> list[int]:
        """Remove these examples and re-solve (see `OneVsAllSVC.forget`); returns the ids removed.

        Removing every example resets the recognizer (it knows nothing again).
        """
        ids = [int(i) for i in ids]
        with self._lock:
            if self.classifier is None or not ids:
                return []
            held = self.classifier.example_ids_
            if np.isin(held, ids).all():
                self.reset()
                return held.tolist()
            removed = self.classifier.forget(ids)
            self._model = None
            return removed.tolist()

    def fit(self, crops_or_features, labels, hyperparameters: str | dict = "config") -> dict:
        """Batch training; `hyperparameters="auto"` picks C and γ by 3-fold CV."""
        X = self._as_features(crops_or_features)
        labels = np.array([check_label(v) for v in np.asarray(labels, dtype=object).ravel()], dtype=object)
        hp: dict = {}
        if hyperparameters == "auto" and self.config.classifier != "rls":
            kind = CLASSIFIERS[self.config.classifier]["kernel"]
            hp = select_hyperparameters(X, labels, kind)
        elif isinstance(hyperparameters, dict):
            hp = hyperparameters
        clf = self._new_classifier(hp.get("C"), hp.get("gamma")).fit(X, labels)
        with self._lock:
            self.classifier, self._model = clf, None
        return hp

    def calibrate(self, crops_or_features, labels, target_false_reject: float = 0.05) -> np.ndarray:
        with self._lock:
            if self.classifier is None:
                raise InputError("nothing learned yet: calibrate after training")
            if not self.classifier.reject:
                raise InputError(f"classifier {self.config.classifier!r} has no reject option to calibrate; "
                                 "use svm-adv")
            t = self.classifier.calibrate(self._as_features(crops_or_features), labels, target_false_reject)
            self._model = None
            return t

    def set_thresholds(self, thresholds) -> None:
        with self._lock:
            if self.classifier is None:
                raise InputError("nothing learned yet: no classes to set thresholds for")
            self.classifier.set_thresholds(thresholds)
            self._model = None

    def reset(self) -> None:
        with self._lock:
            self.classifier, self._model = None, None

    def guard_model(self) -> GuardModel:
        """The current pixels → scores torch module (rebuilt only after an update)."""
        with self._lock:
            if self.classifier is None:
                raise InputError("nothing learned yet: no scores to differentiate")
            if self._model is None:
                self._model = GuardModel.from_classifier(self.extractor, self.classifier)
            return self._model

    # ----------------------------------------------------------- persistence
    def _meta(self) -> dict:
        cfg = {f.name: getattr(self.config, f.name) for f in fields(self.config)}
        return {"config": cfg, "backbone_id": self.extractor.spec.id,
                "backbone_sha256": self.extractor.weights_sha256, "classes": self.classes,
                "saved_at": time.time()}

    def snapshot(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The learned state as (metadata, arrays), copied under the lock (then written at leisure)."""
        with self._lock:
            if self.classifier is None:
                raise InputError("nothing learned yet: there is no model to save")
            return self._meta(), self.classifier.get_state()

    def save(self, path, key=None):
        """Atomically save the learned state (see `persistence`)."""
        meta, arrays = self.snapshot()
        return persistence.save(path, meta, arrays, key)

    def load_state(self, path, key=None) -> dict:
        """Replace the learned state with a file's and return its metadata; on any error nothing changes."""
        return self.apply_saved(persistence.load(path, key), path)

    def apply_saved(self, saved: persistence.SavedModel, path="model") -> dict:
        """Take the learned state of a loaded model file (`persistence.load`); returns its metadata.

        The solver state is restored, not recomputed: learning after a reload equals, bit for bit,
        learning without one (older files without it: within the solver's tolerance, see `set_state`).
        """
        meta = saved.meta
        if meta.get("backbone_sha256") != self.extractor.weights_sha256:
            raise ModelFileError(
                f"model file {path} was learned on backbone {meta.get('backbone_id')} "
                f"(weights sha256 {str(meta.get('backbone_sha256'))[:12]}…) but this recognizer uses "
                f"{self.extractor.spec.id} (sha256 {self.extractor.weights_sha256[:12]}…)")
        try:
            cfg = meta["config"]
            clf = make_classifier(cfg["classifier"], **({} if cfg["classifier"] == "rls" else {
                "C": cfg["C"], "gamma": cfg["gamma"], "max_per_class": cfg["max_per_class"]}))
            clf.set_state(saved.arrays)
            if clf.n_features_in_ != self.extractor.dim:
                raise ValueError("feature dimension does not match the backbone")
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ModelFileError(f"model file {path} has inconsistent contents: {exc}") from exc
        with self._lock:
            self.classifier, self._model = clf, None
        return meta

    @classmethod
    def load(cls, path, key=None, device: str = "auto") -> Recognizer:
        """A new recognizer configured as the saved one, with its learned state."""
        saved = persistence.load(path, key)
        try:
            cfg = dict(saved.meta["config"])
            cfg["device"] = device
            if cfg.get("roi_fixed") is not None:
                cfg["roi_fixed"] = tuple(cfg["roi_fixed"])
            config = RecognizerConfig(**cfg)
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"model file {path} has an unreadable configuration: {exc}") from exc
        rec = cls(config)
        rec.load_state(path, key)
        return rec
