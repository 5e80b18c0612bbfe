"""The open-set evaluation: what the reject option and the guard's detectors reject, measured as OOD work does.

Protocol (after OpenOOD v1.5): the classes taught from SimWorld7 (`taught`) are in-distribution;
near-OOD sets are the untaught SimWorld7 objects (`untaught`) and the look-alike instances 2-4 of
the taught kinds from SimWorld28 (`look-alike`: tinted, resized); on another data set (`dataset`:
SimWorld28, a folder, a recording) the taught classes are a chosen subset of its classes and the rest
are `untaught`; far-OOD sets are uniform noise,
blank (one colour), procedural textures and dead-leaves images (Baradad et al. 2021). Every set is
scored by each score (higher: more in-distribution) and reported as AUROC and FPR at 95% TPR,
with the guard's own operating point (the fraction its calibrated reject option rejects) beside.

Scores: `reject` — the SVM's top score over its class's threshold (the guard's reject option, SVM-adv
+5%); `energy` — log Σ exp of the SVM scores; `openmax` — the EVT recalibration's unknown share
(Bendale & Boult 2016, `defences.open_set`, its Weibulls refitted on validation scores);
`mahalanobis` — Lee et al. 2018 (`defences.mahalanobis`); `kde` — Feinman et al. 2017
(`defences.kde`); `knn` — the k-th nearest training feature's distance (Sun et al. 2022; the
features are already L2-normalised, as the paper asks).

The adversarial column no OOD benchmark has: untaught objects attacked by the reject-aware
attacker (l2, each budget of the security grid) towards the taught class they score highest on,
to be accepted; the fraction the guard still rejects. Each backbone also reports Sect. 5's ratio
(`security._feature_space_analysis` on the taught test crops) and SimWorld28 accuracy with
`recognition_train` examples per class.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from ..core import rules
from ..core.errors import InputError
from ..core.features import SHIPPED_WEIGHTS, BackboneSpec, FeatureExtractor, default_input_size, imagenet_cache
from ..core.pipeline import GuardModel
from ..core.svm import make_classifier, select_hyperparameters
from ..defences.kde import KernelDensity
from ..defences.mahalanobis import Mahalanobis
from ..defences.open_set import OpenSetEVT
from ..pretrain.shapes import texture
from ..sim.datasets import Dataset, load_dataset
from ..sim.world import OBJECT_KINDS
from .curves import CurveProblem, CurveSettings, curve_images
from .security import EvalConfig, _feature_space_analysis

log = logging.getLogger(__name__)

SCORES = ("reject", "energy", "openmax", "mahalanobis", "kde", "knn")
NEAR = ("untaught", "look-alike")
FAR = ("noise", "blank", "textures", "dead-leaves")


@dataclass(frozen=True)
class BackboneChoice:
    """One column of the report: a backbone with its weights (and the input size it runs at)."""

    name: str
    weights: str
    input_size: int

    @property
    def label(self) -> str:
        w = Path(self.weights).name if os.sep in self.weights else self.weights
        return f"{self.name}:{w}@{self.input_size}"


def backbone_choices(weights: list[str] | None, backbone: str = "alexnet", input_size: int | None = None
                     ) -> list[BackboneChoice]:
    """`weights` (random | simworld | simworld2 | imagenet | PATH), or by default random, SimNet's shipped ones and
    ImageNet when cached."""
    if not weights:
        weights = ["random", *SHIPPED_WEIGHTS] + (["imagenet"] if imagenet_cache(backbone).is_file() else [])
    out = []
    for w in weights:
        name = "simnet" if w in SHIPPED_WEIGHTS else backbone
        if w not in ("random", "imagenet", *SHIPPED_WEIGHTS) and not Path(w).is_file():
            raise InputError(f"--weights {w!r}: not random, {', '.join(SHIPPED_WEIGHTS)}, imagenet nor an existing "
                             "checkpoint file")
        out.append(BackboneChoice(name, w, input_size or default_input_size(name)))
    return out


@dataclass
class OpensetConfig:
    taught: tuple[str, ...] = ("mug", "duck", "teddy", "lego")
    n_train: int = 30  # per taught class
    n_val: int = 20  # per taught class: threshold calibration, OpenMax's refit
    n_test: int = 30  # per class and OOD object
    n_far: int = 120  # per far-OOD set
    n_adv: int = 4  # attacked crops per untaught object
    d_max: tuple[float, ...] = (0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)
    fmn_steps: int = 20
    steps: int = 10  # Algorithm 1's, where the minimum-norm attack stopped short
    knn_k: int = 5
    false_reject: float = 0.05
    recognition_train: int = 20  # SimWorld28 examples per class
    recognition_test: int = 10
    analysis_n: int = 2  # Sect. 5: taught test crops per class
    analysis_distance: float = 500.0
    seed: int = 0
    device: str = "cpu"
    dataset: str = "simworld7"  # or any `load_dataset` spec (simworld28, a folder, bag:FILE): taught ⊂ its classes

    def __post_init__(self) -> None:
        unknown = [k for k in self.taught if k not in OBJECT_KINDS]
        if self.simworld7 and (unknown or len(set(self.taught)) < 2 or len(set(self.taught)) == len(OBJECT_KINDS)):
            raise InputError(f"taught must name 2..{len(OBJECT_KINDS) - 1} of {sorted(OBJECT_KINDS)}; got "
                             f"{list(self.taught)}")
        if len(set(self.taught)) < 2:  # another data set's classes are checked when it is read
            raise InputError(f"taught must name at least 2 classes; got {list(self.taught)}")
        for name in ("n_train", "n_val", "n_test", "n_far", "knn_k"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be positive")
        for name in ("n_adv", "recognition_train", "recognition_test", "analysis_n"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0 (0: that measure is skipped)")

    @property
    def simworld7(self) -> bool:
        """SimWorld7 (the default): its look-alike instances (SimWorld28) are a near-OOD set of their own."""
        return self.dataset.lower() == "simworld7"


@dataclass
class OpensetCellConfig(OpensetConfig):
    """One column of `evaluate-openset` as a sweep cell: the settings and the backbone it runs on (`weights`:
    random | simworld | imagenet | PATH, as `--weights` takes one; `input_size` 0: the backbone's own)."""

    backbone: str = "alexnet"
    weights: str = "random"
    input_size: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_size < 0:
            raise InputError("input_size must be >= 0 (0: the backbone's own)")
        backbone_choices([self.weights], self.backbone, self.input_size or None)  # refuses unknown weights


@dataclass
class OpensetData:
    train: Dataset
    val: Dataset
    test: Dataset  # taught kinds: in-distribution
    ood: dict[str, Dataset]  # name → crops (labels: what they are)
    adv: Dataset  # untaught crops the adversarial column attacks
    untaught: list[str]  # the data set's classes not taught
    rec_train: Dataset | None  # SimWorld28 (None: not measured)
    rec_test: Dataset | None


@dataclass
class OpensetResult:
    config: dict
    backbones: dict[str, dict] = field(default_factory=dict)  # label → its measures
    timing: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"config": self.config, "backbones": self.backbones, "timing": self.timing}


# ------------------------------------------------------------------ data
def dead_leaves(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A dead-leaves image: discs of random colour and power-law radius, the later on top (Baradad et al. 2021)."""
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3)
    for _ in range(int(rng.integers(40, 120))):
        r = int(np.clip(size * 0.02 / rng.uniform(0.02, 1.0) ** 0.7, 1, size // 2))
        c = rng.integers(0, size, 2)
        cv2.circle(img, (int(c[0]), int(c[1])), r, tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    return img


def far_ood(n: int, size: int, seed: int) -> dict[str, Dataset]:
    """The far-OOD sets, seeded: uniform noise, one flat colour, a coloured procedural texture, dead leaves."""
    rng = np.random.default_rng([seed, 21])
    noise = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    blank = np.broadcast_to(rng.integers(0, 256, (n, 1, 1, 3), dtype=np.uint8), (n, size, size, 3)).copy()
    tex = np.stack([(texture(rng, size) * rng.uniform(0.3, 1.0, 3)).astype(np.uint8) for _ in range(n)])
    leaves = np.stack([dead_leaves(rng, size) for _ in range(n)])
    sets = {"noise": noise, "blank": blank, "textures": tex, "dead-leaves": leaves}
    return {k: Dataset(v, np.array([k] * n, dtype=object), k) for k, v in sets.items()}


def _kind(label: str) -> str:
    return label.rstrip("0123456789")


def _where(ds: Dataset, keep: Callable[[str], bool]) -> Dataset:
    return ds.subset(np.array([keep(str(v)) for v in ds.labels], bool))


def build_data(cfg: OpensetConfig) -> OpensetData:
    """Every crop the evaluation scores, rendered (or read) once for all backbones. SimWorld7 adds the look-alike
    set; another data set's untaught classes are its classes not in `taught` (`InputError` naming its classes when
    a taught one is not among them, or none is left untaught)."""
    taught = set(cfg.taught)
    train, val, test = (load_dataset(cfg.dataset, s, n, seed=cfg.seed)
                        for s, n in (("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test)))
    classes = sorted({str(v) for v in train.labels})
    names = [k for k in OBJECT_KINDS if k not in taught] if cfg.simworld7 else [c for c in classes if c not in taught]
    if not taught <= set(classes) or not names:
        raise InputError(f"taught {sorted(taught)}: {cfg.dataset} has the classes {classes}; name 2 or more of them "
                         "and leave at least one untaught")
    train, val = (_where(d, lambda v: v in taught) for d in (train, val))
    untaught = _where(test, lambda v: v not in taught)
    ood = {"untaught": untaught}
    if cfg.simworld7:
        test28 = load_dataset("simworld28", "test", cfg.n_test, seed=cfg.seed)
        ood["look-alike"] = _where(test28, lambda v: _kind(v) in taught and not v.endswith("1"))
    ood.update(far_ood(cfg.n_far, train.images.shape[1], cfg.seed))
    first = np.concatenate([np.flatnonzero(untaught.labels == k)[:cfg.n_adv] for k in names])
    rec_train = rec_test = None
    if cfg.recognition_train and cfg.recognition_test:
        rec_train = load_dataset("simworld28", "train", cfg.recognition_train, seed=cfg.seed)
        rec_test = load_dataset("simworld28", "val", cfg.recognition_test, seed=cfg.seed)
    return OpensetData(train, val, _where(test, lambda v: v in taught), ood, untaught.subset(first.astype(int)),
                       untaught=names, rec_train=rec_train, rec_test=rec_test)


# ------------------------------------------------------------------ scores and measures
def auroc_fpr95(id_scores: np.ndarray, ood_scores: np.ndarray) -> tuple[float, float]:
    """AUROC (in-distribution positive, higher score = more in-distribution) and the FPR at 95% TPR."""
    y = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    s = np.r_[id_scores, ood_scores]
    auroc = float(roc_auc_score(y, s))
    cut = np.quantile(id_scores, 0.05, method="lower")  # 95% of in-distribution at or above
    return auroc, float(np.mean(ood_scores >= cut))


def knn_distance(train: np.ndarray, feats: np.ndarray, k: int) -> np.ndarray:
    """Distance to the k-th nearest training feature (Sun et al. 2022)."""
    d = torch.cdist(torch.from_numpy(feats).double(), torch.from_numpy(train).double())
    k = min(k, d.shape[1])
    return d.topk(k, dim=1, largest=False).values[:, -1].numpy()


class ScoreSet:
    """Every score of one backbone's fitted classifier and detectors, as `score(features) -> name → array`."""

    def __init__(self, clf, f_train: np.ndarray, y_train: np.ndarray, f_val: np.ndarray, y_val: np.ndarray,
                 knn_k: int, seed: int):
        self.clf, self.f_train, self.knn_k = clf, f_train, knn_k
        t = torch.from_numpy
        s_train, s_val = (t(clf.decision_function(f)) for f in (f_train, f_val))
        self.maha = Mahalanobis(seed=seed).fit(t(f_train), t(y_train), s_train)
        self.kde = KernelDensity(seed=seed).fit(t(f_train), t(y_train), s_train)
        tail = int(min(20, np.bincount(y_val).min() - 1))
        self.evt = OpenSetEVT(tail_size=max(3, tail), strict=False, seed=seed).fit(t(f_train), t(y_train), s_train)
        self.evt.calibrate(t(f_val), s_val, t(y_val))

    def __call__(self, feats: np.ndarray) -> dict[str, np.ndarray]:
        s = self.clf.decision_function(feats)
        thr = self.clf.thresholds_
        ft, st = torch.from_numpy(feats), torch.from_numpy(s)
        with torch.no_grad():
            return {"reject": (s - thr[None]).max(1),
                    "energy": torch.logsumexp(st.double(), 1).numpy(),
                    "openmax": -self.evt.score(ft, st).double().numpy(),
                    "mahalanobis": -self.maha.score(ft, st).double().numpy(),
                    "kde": -self.kde.score(ft, st).double().numpy(),
                    "knn": -knn_distance(self.f_train, feats, self.knn_k)}


def attacked_still_rejected(model: GuardModel, clf, fx: FeatureExtractor, crops: np.ndarray,
                            cfg: OpensetConfig) -> list[float]:
    """Per d_max: the fraction of untaught crops the guard still rejects after the reject-aware attack aims
    each at the taught class it scores highest on (a minimum-norm run, Algorithm 1 where it stops short)."""
    x = torch.from_numpy(crops).to(fx.device, torch.float32)
    with torch.no_grad():
        target = model(x).argmax(1)

    def still_rejected(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return clf.predict_indices(fx.extract(images)) == rules.REJECTED

    how = CurveSettings("fmn", "l2", cfg.steps, cfg.fmn_steps, max(1, cfg.steps // 2), 0, "float32")
    problem = CurveProblem(model, x, target, [float(d) for d in cfg.d_max], still_rejected, target=target,
                           aware=True, deep=False)
    images, _ = curve_images(how, problem)
    return [float(np.mean(still_rejected(im, np.arange(len(im))))) for im in images]


def evaluate_backbone(choice: BackboneChoice, data: OpensetData, cfg: OpensetConfig,
                      say: Callable[[str], None]) -> dict:
    """Every measure of one backbone."""
    times: dict[str, float] = {}
    t = time.perf_counter()
    fx = FeatureExtractor(BackboneSpec(choice.name, choice.weights, cfg.seed, choice.input_size), cfg.device)
    say(f"{choice.label}: features")
    classes = sorted(cfg.taught)
    f_tr, f_val, f_te = (fx.extract(d.images) for d in (data.train, data.val, data.test))
    t0 = time.perf_counter()
    fx.extract(data.test.images)
    per_crop_ms = 1e3 * (time.perf_counter() - t0) / len(data.test)
    f_ood = {k: fx.extract(d.images) for k, d in data.ood.items()}
    times["features_s"] = time.perf_counter() - t

    say(f"{choice.label}: classifier (3-fold CV) and detectors")
    hp = select_hyperparameters(f_tr, data.train.labels, "rbf", seed=cfg.seed)
    clf = make_classifier("svm-adv", C=hp["C"], gamma=hp["gamma"]).fit(f_tr, data.train.labels)
    clf.calibrate(f_val, data.val.labels, cfg.false_reject)
    y_tr = np.array([classes.index(v) for v in data.train.labels])
    y_val = np.array([classes.index(v) for v in data.val.labels])
    scores = ScoreSet(clf, f_tr, y_tr, f_val, y_val, cfg.knn_k, cfg.seed)
    s_id = scores(f_te)
    y_te = np.array([classes.index(v) for v in data.test.labels])
    labels_te = clf.predict_indices(f_te)
    out: dict = {"backbone": fx.spec.id, "weights_sha256": fx.weights_sha256, "dim": fx.dim,
                 "hyperparameters": hp, "feature_ms_per_crop_batch32": per_crop_ms,
                 "id": {"accuracy": float(np.mean(labels_te == y_te)),
                        "rejected": float(np.mean(labels_te == rules.REJECTED))},
                 "ood": {}, "roc": {}}
    for name, f in f_ood.items():
        s_ood = scores(f)
        rej = float(np.mean(clf.predict_indices(f) == rules.REJECTED))
        row: dict = {"rejected_by_guard": rej}
        for sc in SCORES:
            auroc, fpr = auroc_fpr95(s_id[sc], s_ood[sc])
            row[sc] = {"auroc": auroc, "fpr95": fpr}
            y = np.r_[np.ones(len(s_id[sc])), np.zeros(len(s_ood[sc]))]
            fpr_c, tpr_c, _ = roc_curve(y, np.r_[s_id[sc], s_ood[sc]])
            keep = np.unique(np.linspace(0, len(fpr_c) - 1, min(len(fpr_c), 60)).round().astype(int))
            out["roc"].setdefault(name, {})[sc] = {"fpr": fpr_c[keep].tolist(), "tpr": tpr_c[keep].tolist()}
        out["ood"][name] = row
    times["scores_s"] = time.perf_counter() - t - times["features_s"]

    model = GuardModel.from_classifier(fx, clf)
    if cfg.n_adv:
        say(f"{choice.label}: reject-aware attack on {len(data.adv)} untaught crops")
        t1 = time.perf_counter()
        out["adversarial_still_rejected"] = attacked_still_rejected(model, clf, fx, data.adv.images, cfg)
        times["attack_s"] = time.perf_counter() - t1

    if cfg.analysis_n:
        say(f"{choice.label}: Sect. 5 feature shift")
        t1 = time.perf_counter()
        pick = np.concatenate([np.flatnonzero(y_te == c)[:cfg.analysis_n] for c in range(len(classes))])
        x = torch.from_numpy(data.test.images[pick]).to(fx.device, torch.float32)
        ecfg = EvalConfig(analysis_distance=cfg.analysis_distance, steps=20, seed=cfg.seed)
        out["sect5"] = _feature_space_analysis(fx, model, x, torch.as_tensor(y_te[pick], device=fx.device), ecfg)
        times["sect5_s"] = time.perf_counter() - t1

    if data.rec_train is not None and data.rec_test is not None:
        say(f"{choice.label}: SimWorld28 recognition, {cfg.recognition_train} examples per class")
        t1 = time.perf_counter()
        g_tr, g_te = fx.extract(data.rec_train.images), fx.extract(data.rec_test.images)
        hp28 = select_hyperparameters(g_tr, data.rec_train.labels, "rbf", seed=cfg.seed)
        rbf = make_classifier("svm-rbf", C=hp28["C"], gamma=hp28["gamma"]).fit(g_tr, data.rec_train.labels)
        names = rbf.classes_[rbf.decision_function(g_te).argmax(1)]
        out["simworld28_accuracy"] = float(np.mean(names == data.rec_test.labels))
        times["simworld28_s"] = time.perf_counter() - t1
    out["timing"] = times
    return out


def run_openset_evaluation(cfg: OpensetConfig, choices: list[BackboneChoice],
                           progress: Callable[[str], None] | None = None) -> OpensetResult:
    say = progress or (lambda msg: log.info("%s", msg))
    t = time.perf_counter()
    torch.manual_seed(cfg.seed)
    say("rendering the data sets")
    data = build_data(cfg)
    res = OpensetResult(asdict(cfg) | {"untaught": data.untaught, "backbones": [c.label for c in choices]})
    res.timing["data_s"] = time.perf_counter() - t
    for c in choices:
        res.backbones[c.label] = evaluate_backbone(c, data, cfg, say)
    res.timing["total_s"] = time.perf_counter() - t
    return res


def merge_into(res: OpensetResult, previous: dict) -> OpensetResult:
    """`res` with the columns of an earlier run (its results.json) before its own: one report, run in parts.

    Refused unless the earlier run had the same settings (its numbers would not be comparable)."""
    same = {"dataset": "simworld7"} | {k: v for k, v in res.config.items() if k != "backbones"}
    before = {"dataset": "simworld7"} | {k: v for k, v in previous.get("config", {}).items() if k != "backbones"}
    if json.loads(json.dumps(same)) != before:
        raise InputError("the earlier results.json was made with other settings; its columns cannot share a report")
    merged = OpensetResult(res.config, dict(previous["backbones"]), dict(previous.get("timing", {})))
    merged.backbones.update(res.backbones)
    merged.config["backbones"] = list(merged.backbones)
    merged.timing["total_s"] = merged.timing.get("total_s", 0.0) + res.timing["total_s"]
    return merged


# ------------------------------------------------------------------ report
def _sets(res: OpensetResult) -> list[str]:
    """The OOD sets the run scored, near then far (look-alike only on SimWorld7)."""
    scored = set(next(iter(res.backbones.values()))["ood"]) if res.backbones else set()
    return [s for s in (*NEAR, *FAR) if s in scored]


def openset_markdown(res: OpensetResult) -> str:
    """The report's tables: AUROC / FPR@95 per score and OOD set, one block per backbone, then the columns side by
    side."""
    cfg = res.config
    alike = "; look-alike: SimWorld28 instances 2-4 of the taught kinds" if _sets(res)[1] == "look-alike" else ""
    lines = [f"# Open-set evaluation\n\nData: {cfg.get('dataset', 'simworld7')}. Taught (in-distribution): "
             f"{', '.join(cfg['taught'])}; untaught: {', '.join(cfg['untaught'])}{alike}. "
             f"{cfg['n_train']} training, {cfg['n_val']} validation and {cfg['n_test']} test crops per class; "
             f"{cfg['n_far']} crops per far-OOD set. Scores: higher = more in-distribution. Cells: AUROC / FPR at "
             "95% TPR.\n"]
    sets = _sets(res)
    for label, b in res.backbones.items():
        lines += [f"## {label}\n", f"ID accuracy {b['id']['accuracy']:.3f}, ID rejected {b['id']['rejected']:.3f} "
                  f"(SVM-adv +{100 * cfg['false_reject']:.0f}% calibrated).\n",
                  "| score | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
        for sc in SCORES:
            cells = [f"{b['ood'][s][sc]['auroc']:.3f} / {b['ood'][s][sc]['fpr95']:.2f}" for s in sets]
            lines.append(f"| {sc} | " + " | ".join(cells) + " |")
        lines.append("| rejected by the guard | " + " | ".join(f"{b['ood'][s]['rejected_by_guard']:.2f}"
                                                             for s in sets) + " |")
        lines.append("")
    labels = list(res.backbones)
    lines += ["## Side by side\n", "| measure | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]

    def row(name, get):
        vals = []
        for b in res.backbones.values():
            try:
                vals.append(get(b))
            except (KeyError, TypeError):
                vals.append("–")
        lines.append(f"| {name} | " + " | ".join(vals) + " |")

    row("AUROC untaught vs taught, reject option", lambda b: f"{b['ood']['untaught']['reject']['auroc']:.3f}")
    row("AUROC look-alike vs taught, reject option", lambda b: f"{b['ood']['look-alike']['reject']['auroc']:.3f}")
    row("best score on untaught (AUROC)", lambda b: max(
        (f"{b['ood']['untaught'][s]['auroc']:.3f} ({s})" for s in SCORES), key=lambda v: float(v.split()[0])))
    row("untaught rejected by the guard", lambda b: f"{b['ood']['untaught']['rejected_by_guard']:.2f}")
    row("far-OOD rejected by the guard (min over sets)",
        lambda b: f"{min(b['ood'][s]['rejected_by_guard'] for s in FAR):.2f}")
    for i, d in enumerate(cfg["d_max"]):
        row(f"untaught still rejected, reject-aware attack d_max {d:g}",
            lambda b, i=i: f"{b['adversarial_still_rejected'][i]:.2f}")
    row("Sect. 5 ratio (attack / noise feature shift)", lambda b: f"{b['sect5']['ratio_attack_over_noise']:.1f}")
    row(f"SimWorld28 accuracy, {cfg['recognition_train']} per class", lambda b: f"{b['simworld28_accuracy']:.3f}")
    row("feature ms per crop (batch 32, this run)", lambda b: f"{b['feature_ms_per_crop_batch32']:.1f}")
    return "\n".join(lines) + "\n"


def plot_roc(res: OpensetResult, out: Path) -> list[str]:
    """One figure: a row per backbone, a panel per OOD set, a ROC curve per score."""
    from .report import _save, plt

    sets = _sets(res)
    rows = len(res.backbones)
    fig, axes = plt.subplots(rows, len(sets), figsize=(2.6 * len(sets), 2.6 * rows), squeeze=False,
                             sharex=True, sharey=True)
    for r, (label, b) in enumerate(res.backbones.items()):
        for c, s in enumerate(sets):
            ax = axes[r][c]
            for sc in SCORES:
                roc = b["roc"][s][sc]
                ax.plot(roc["fpr"], roc["tpr"], lw=1.2, label=f"{sc} {b['ood'][s][sc]['auroc']:.2f}")
            ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
            ax.legend(fontsize=5.5, loc="lower right")
            if r == 0:
                ax.set_title(s, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{label}\nTPR", fontsize=7)
            if r == rows - 1:
                ax.set_xlabel("FPR", fontsize=8)
    fig.suptitle("ROC: taught (in-distribution) vs each OOD set, per score (AUROC in the legend)", fontsize=10)
    return _save(fig, out, "roc")


def write_openset_report(res: OpensetResult, out_dir: str | os.PathLike) -> dict[str, str]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res.to_json(), indent=2))
    (out / "report.md").write_text(openset_markdown(res))
    figs = plot_roc(res, out)
    return {"json": "results.json", "markdown": "report.md", "figures": ", ".join(figs)}
