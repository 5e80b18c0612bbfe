"""Each defence against an attacker who does not know it and one who does (Carlini et al. 2019's checklist).

Procedure:
1. Features of SimWorld crops, SVM-adv (RBF with the reject option, thresholds calibrated on
   validation data to `false_reject` more rejections): the undefended guard, as `evaluate` builds it.
2. Non-adaptive: Algorithm 1, reject-aware, on the undefended guard over the d_max grid (the
   attacker knows the classifier and its thresholds, not the defence); every defence judges the
   same adversarial crops.
3. Adaptive, per defence: Algorithm 1, reject-aware, on the defended model (`DefencePipeline.
   attack_model`): expectation over transformation (`eot` draws per step) for randomised transforms
   and smoothing, BPDA (straight-through) for JPEG; against adversarial augmentation, on the
   classifier trained with the attacked training crops. Where detectors judge, success means a
   wrong label accepted *and* undetected, and the attack is orthogonal PGD (Bryniarski et al.
   2022, `attacks.OrthogonalPGD`; EOT over a randomised detector's draws): Algorithm 1 on the
   penalised joint objective stalled at the detectors from a clean crop (SimWorld7: weaker than
   the unaware attack for kde, bu, kde+bu, mahalanobis and open_set).
   It runs twice — from the clean crop (a sweep over d_max) and from where the non-adaptive attack
   ended — and a crop counts as broken if either start breaks it, or the unaware attack's crop
   itself gets past the defence, at this d_max or a smaller one. (The judge is the pipeline with
   its seed, so picking per crop favours the attacker: conservative for the defence.)
4. Per defence: accuracy per d_max under both attackers (one rule, as `evaluate`: a rejection is
   never an error; reject rates beside), Günther et al.'s table (clean accuracy; of the
   non-adaptive attacks that fooled the undefended guard at `table_d_max`, the fraction the defence
   corrects — right label — or catches — rejects), detectors' ROC AUC (clean test vs those attacks),
   and for smoothing the certified accuracy against radius.
5. Sanity checks that can fail: the adaptive attack from the clean crop alone is at least as strong
   as the non-adaptive one (at each d_max, within one sample: a weaker one means its objective or
   gradients are off), and twice the EOT draws and steps do not raise the reported adaptive attack's
   accuracy (both starts again, at the largest d_max). The attacks' gradient passes run in bfloat16
   where that is fast (`precision`); every judgement is float32.

Crops are judged as a camera would publish them: whole pixel values within d_max.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ..attacks import Attack, OrthogonalPGD, PaperAttack, SquareSearch, resolve_precision
from ..attacks.constraints import check_budgets, check_norm
from ..core import rules
from ..core.features import BackboneSpec, FeatureExtractor
from ..core.pipeline import GuardModel
from ..core.svm import make_classifier
from ..defences import EOT, DefencePipeline, InputTransform, OpenSetEVT, make_defence
from ..defences.online import check_specs
from .binarization import NORMS as BINARIZATION_NORMS
from .binarization import binarization_test
from .curves import CurveProblem, EnsembleSettings, attack_what_is_left, ensemble_images
from .metrics import robust_error
from .prepared import Prepared, PrepKey, prepare
from .security import ACCURACY_RULE

log = logging.getLogger(__name__)

#: every defence, as `evaluate --defences` runs them by default ("+" composes: Günther's combination)
ALL = ("noise", "blur", "shift", "noise+blur+shift", "multicrop", "multicrop:combine=vote", "resize_pad", "jpeg",
       "kde", "bu", "kde+bu", "mahalanobis", "open_set:tail_size=5", "smoothing", "adv_augment")


#: the defence evaluation's d_max grid when none is given, per norm (fewer budgets than `evaluate`'s: each is
#: attacked by both attackers, EOT included)
GRIDS = {"l2": (0.0, 500.0, 1000.0, 2000.0), "l1": (0.0, 500.0, 1000.0, 2000.0), "linf": (0.0, 4.0, 8.0, 16.0)}


@dataclass
class DefenceEvalConfig:
    defences: tuple[str, ...] = ALL
    dataset: str = "simworld7"
    n_train: int = 30
    n_val: int = 15
    n_test: int = 3  # attacked crops per class
    d_max: tuple[float, ...] = ()  # empty: the norm's grid (`GRIDS`)
    norm: str = "l2"
    steps: int = 10
    eot: int = 8  # draws per step for randomised defences
    table_d_max: float = 0.0  # where Günther's table and the ROC AUC are read (0: the grid's middle)
    radii: tuple[float, ...] = (0.0, 25.0, 50.0, 100.0, 200.0, 400.0)  # certified accuracy (pixel l2)
    backbone: str = "alexnet"
    weights: str = "random"
    input_size: int = 128
    seed: int = 0
    device: str = "auto"
    false_reject: float = 0.05
    precision: str = "auto"  # of the attacks' gradient passes; auto: bfloat16 where fast (AMX CPU, CUDA)
    ensemble_steps: int = 10  # APGD-CE and APGD-T (EOT / BPDA) on what the adaptive attack left correct; 0: none
    ensemble_targets: int = 3
    square_queries: int = 100  # the gradient-free check's queries per crop left correct; 0: no check
    binarization: int = 3  # crops of the binarization test per defence whose decision it can express; 0: none

    def __post_init__(self) -> None:
        if not self.d_max:
            self.d_max = GRIDS[check_norm(self.norm)]
        check_budgets(self.norm, self.d_max)
        if not self.table_d_max:
            self.table_d_max = self.d_max[len(self.d_max) // 2]
        resolve_precision(self.precision)
        if self.ensemble_steps < 0 or self.ensemble_targets < 1 or self.square_queries < 0 or self.binarization < 0:
            raise ValueError("ensemble_steps, square_queries and binarization must be >= 0, ensemble_targets >= 1")
        for spec in self.defences:  # an unknown name or parameter is a configuration error, said now
            for d in (make_defence(s) for s in check_specs(spec.split("+"))):
                if isinstance(d, OpenSetEVT) and d.strict and d.tail_size > self.n_val:
                    raise ValueError(f"{spec}: tail_size {d.tail_size} is longer than the {self.n_val} validation "
                                     "crops per class its Weibull models are fitted on; lower tail_size or raise n_val")
        if self.table_d_max not in self.d_max:
            raise ValueError(f"table_d_max {self.table_d_max:g} must be one of d_max {self.d_max}")


@dataclass
class DefenceResult:
    name: str
    clean_accuracy: float
    clean_rejected: float
    accuracy: dict[str, list[float]]  # "non_adaptive" / "adaptive" → per d_max
    rejected: dict[str, list[float]]
    corrected: float  # of the fooling non-adaptive attacks at table_d_max: right label under the defence
    caught: float  # ... rejected by it
    roc_auc: float | None = None
    certified: list[float] | None = None  # certified accuracy per radius (smoothing)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: crops fooled per d_max by the adaptive attack (Algorithm 1 or orthogonal PGD, both starts, carried) and,
    #: of those it left correct, by the ensemble's APGD-CE and APGD-T
    ensemble_wins: dict[str, list[int]] = field(default_factory=dict)
    robust_error: dict[str, list[float]] = field(default_factory=dict)  # Stutz et al. 2020, per attacker


@dataclass
class DefenceEvalResult:
    config: dict
    d_max: list[float]
    undefended: dict[str, list[float]]
    defences: list[DefenceResult]
    sanity: list[dict]
    timing: dict[str, float]
    rule: str = ACCURACY_RULE

    def to_json(self) -> dict:
        return asdict(self)


def _accuracy(labels: np.ndarray, y: np.ndarray) -> float:
    """The share not fooled (`rules.fooled`, ACCURACY_RULE)."""
    return float(np.mean(~rules.fooled(labels, y)))


Labelled = tuple[np.ndarray, np.ndarray]  # (labels per crop, the uint8 crops they were given to)


def _worst(a: Labelled, b: Labelled, y: np.ndarray) -> Labelled:
    """Per crop, `b` where it fools the defence and `a` does not, else `a`: the attacker keeps whatever got past."""
    take = rules.fooled(b[0], y) & ~rules.fooled(a[0], y)
    return np.where(take, b[0], a[0]), np.where(take[:, None, None, None], b[1], a[1])


def _uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Crops as a camera publishes them (the attacks' `images()` already are)."""
    return x if isinstance(x, np.ndarray) else x.round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def _failed(judge: Callable[[np.ndarray], np.ndarray], y: np.ndarray):
    """`curves.Judge` under a defence: where the crops are still correct (not accepted with a wrong label)."""
    return lambda images, idx: ~rules.fooled(judge(images), y[idx])


def _judge(pipe: DefencePipeline, device: torch.device) -> Callable[[np.ndarray], np.ndarray]:
    """The defence's labels for uint8 crops. A randomised pipeline judges one crop at a time, so a crop meets the
    same draws (`fresh_noise=False` restarts them per decision) whichever crops it is judged with: the ensemble
    judges subsets, and a crop it broke stays broken in the full set."""
    one = pipe.smoothing is not None or any(d.randomized for d in pipe.defences)

    def labels(images: np.ndarray) -> np.ndarray:
        return pipe.labels(torch.from_numpy(np.ascontiguousarray(images)).to(device, torch.float32),
                           batch=1 if one else 32)

    return labels


def _adaptive_attack(pipe: DefencePipeline, eot: int, steps: int, norm: str, precision: str,
                     eps: float | None = None) -> Attack:
    """The attack of one who knows the defences: orthogonal PGD where detectors judge (the penalised joint
    objective stalls from a clean start), else Algorithm 1 on the defended model (EOT where randomised)."""
    if pipe.smoothing is None and any(d.fitted for d in pipe.detectors):
        randomized = any(d.randomized for d in pipe.defences)
        return OrthogonalPGD(pipe.defended, eps, norm, steps, eot=eot if randomized else 1, reject_aware=True,
                             precision=precision)
    return PaperAttack(pipe.attack_model(eot), eps=eps, norm=norm, steps=steps, reject_aware=True,
                       precision=precision)


def _images(results, x: torch.Tensor, d_grid) -> list[torch.Tensor]:
    """The crops judged at each d_max (clean at 0): whole pixel values within the budget."""
    out, it = [], iter(results)
    for d in d_grid:
        out.append(x if d == 0 else torch.from_numpy(next(it).images()).to(x.device, x.dtype))
    return out


def run_defence_evaluation(cfg: DefenceEvalConfig, progress: Callable[[str], None] | None = None,
                           prepared: Prepared | None = None) -> DefenceEvalResult:
    """The evaluation of `cfg`; `prepared`: its data, features and classifiers when already computed (a sweep)."""
    t_start = time.perf_counter()
    say = progress or (lambda msg: log.info("%s", msg))
    torch.manual_seed(cfg.seed)
    extractor = FeatureExtractor(BackboneSpec(cfg.backbone, cfg.weights, cfg.seed, cfg.input_size), cfg.device)
    precision = resolve_precision(cfg.precision, extractor.device)
    say("data, features and the undefended guard")
    shared = prepared is not None
    if prepared is None:
        prepared = prepare(extractor, PrepKey.of(cfg, linear=False))
    prepared.check(cfg, linear=False)
    train, val, test = (prepared.splits[s].data for s in ("train", "val", "test"))
    F_tr, F_val = prepared.splits["train"].features, prepared.splits["val"].features
    hp = prepared.hyperparameters["rbf"]
    clf = prepared.classifier("svm-adv")
    clf.calibrate(F_val, val.labels, cfg.false_reject)
    base = GuardModel.from_classifier(extractor, clf)
    classes = list(clf.classes_)
    dev = extractor.device
    x = torch.from_numpy(test.images).to(dev, torch.float32)
    y = np.array([classes.index(v) for v in test.labels])
    y_t = torch.from_numpy(y).to(dev)
    f_tr = torch.from_numpy(F_tr).to(dev, torch.float64)
    f_val = torch.from_numpy(F_val).to(dev, torch.float64)
    y_tr = torch.tensor([classes.index(v) for v in train.labels], device=dev)
    y_val = torch.tensor([classes.index(v) for v in val.labels], device=dev)
    d_grid = [float(d) for d in cfg.d_max]
    nonzero = [d for d in d_grid if d > 0]
    timing = {"setup_s": time.perf_counter() - t_start}
    if shared:  # computed once for every cell of a sweep at this backbone and data set (its cost is the sweep's)
        timing.update({f"shared_{k}": v for k, v in prepared.seconds.items()})

    say("non-adaptive attack on the undefended guard")
    t = time.perf_counter()
    plain = PaperAttack(base, eps=None, norm=cfg.norm, steps=cfg.steps, reject_aware=True, precision=precision)
    attacked = _images(plain.sweep(x, y_t, nonzero), x, d_grid)
    undefended_pipe = DefencePipeline(base, [], fresh_noise=False)
    base_labels = [undefended_pipe.labels(im) for im in attacked]
    undefended = {"accuracy": [_accuracy(lab, y) for lab in base_labels],
                  "rejected": [float(np.mean(lab == rules.REJECTED)) for lab in base_labels],
                  "robust_error": [robust_error(undefended_pipe.labels(x), lab, y) for lab in base_labels]}
    ti = d_grid.index(float(cfg.table_d_max))
    fooled = rules.fooled(base_labels[ti], y)
    timing["non_adaptive_s"] = time.perf_counter() - t

    results, sanity = [], []
    for spec in cfg.defences:
        say(f"defence {spec}")
        t = time.perf_counter()
        defences = [make_defence(s, seed=cfg.seed) for s in spec.split("+")]
        model = base
        for aug in (d for d in defences if d.stage == "train"):  # adversarial augmentation: a model of its own
            F_adv = extractor.extract(aug.attacked(base, train.images, y_tr.cpu().numpy()))
            clf_a = make_classifier("svm-adv", C=hp["C"], gamma=hp["gamma"]).fit(
                np.vstack([F_tr, F_adv]), np.concatenate([train.labels, train.labels]))
            clf_a.calibrate(F_val, val.labels, cfg.false_reject)
            model = GuardModel.from_classifier(extractor, clf_a)
        pipe = DefencePipeline(model, defences, fresh_noise=False)  # every attack judged with the same draws
        pipe.fit(f_tr, y_tr, f_val, y_val)
        judge = _judge(pipe, dev)
        clean = judge(_uint8(x))
        non_adaptive = [judge(_uint8(im)) for im in attacked]
        adaptive_attack = _adaptive_attack(pipe, cfg.eot, cfg.steps, cfg.norm, precision)
        cold_imgs = [_uint8(im) for im in _images(adaptive_attack.sweep(x, y_t, nonzero), x, d_grid)]
        cold = [judge(im) for im in cold_imgs]
        # the attacker who knows the defence may also start where the unaware attack ended; per crop, the
        # best of the two starts and the unaware crop is the adaptive result (a crop the defence gets wrong), and a
        # crop broken within a smaller d_max stays broken (that crop is inside every larger budget too)
        adaptive, two_starts, adv_imgs = [cold[0]], [cold[0]], [cold_imgs[0]]
        for i, d in enumerate(d_grid[1:], start=1):
            adaptive_attack.eps = d
            warm_img = adaptive_attack(x, y_t, x_init=attacked[i]).images()
            both = _worst((cold[i], cold_imgs[i]), (judge(warm_img), warm_img), y)
            best = _worst(both, (non_adaptive[i], _uint8(attacked[i])), y)
            best = _worst(best, (adaptive[-1], adv_imgs[-1]), y)
            two_starts.append(both[0])
            adaptive.append(best[0])
            adv_imgs.append(best[1])
        # the per-crop worst case over the ensemble: APGD-CE and APGD-T on the attacker's model (EOT, BPDA) where
        # the attacks above left a crop correct, from that crop
        wins = {"adaptive": [int(rules.fooled(lab, y).sum()) for lab in adaptive]}
        if cfg.ensemble_steps > 0:
            problem = CurveProblem(pipe.attack_model(cfg.eot), x, y_t, d_grid, _failed(judge, y), aware=True,
                                   deep=False)
            adv_imgs, members = ensemble_images(EnsembleSettings(cfg.ensemble_steps, cfg.ensemble_targets,
                                                                 precision, cfg.norm), problem, adv_imgs)
            adaptive = [judge(im) for im in adv_imgs]
            wins.update({m: members[m] for m in ("apgd-ce", "apgd-t")})
        r = DefenceResult(
            spec, _accuracy(clean, y), float(np.mean(clean == rules.REJECTED)),
            {"non_adaptive": [_accuracy(lab, y) for lab in non_adaptive],
             "adaptive": [_accuracy(lab, y) for lab in adaptive],
             "adaptive_cold_start": [_accuracy(lab, y) for lab in cold]},
            {"non_adaptive": [float(np.mean(lab == rules.REJECTED)) for lab in non_adaptive],
             "adaptive": [float(np.mean(lab == rules.REJECTED)) for lab in adaptive]},
            float(np.mean(non_adaptive[ti][fooled] == y[fooled])) if fooled.any() else float("nan"),
            float(np.mean(non_adaptive[ti][fooled] == rules.REJECTED)) if fooled.any() else float("nan"),
            notes=list(pipe.notes), ensemble_wins=wins,
            robust_error={"non_adaptive": [robust_error(clean, lab, y) for lab in non_adaptive],
                          "adaptive": [robust_error(clean, lab, y) for lab in adaptive]})
        if pipe.detectors and all(d.fitted for d in pipe.detectors):
            r.roc_auc = _roc_auc(pipe, x, attacked[ti])
        if pipe.smoothing is not None:
            r.certified = _certified(pipe, x, y, cfg.radii)
        sanity += _checks(_Attacked(cfg, precision, x, y, y_t, d_grid, attacked, extractor), spec, pipe, r,
                          [_accuracy(lab, y) for lab in two_starts], judge, adv_imgs)
        r.seconds = time.perf_counter() - t
        results.append(r)
        log.info("%s: clean %.2f, non-adaptive %s, adaptive %s", spec, r.clean_accuracy,
                 r.accuracy["non_adaptive"], r.accuracy["adaptive"])
    timing["total_s"] = time.perf_counter() - t_start
    return DefenceEvalResult({**asdict(cfg), "precision": precision}, d_grid, undefended, results, sanity, timing)


def _roc_auc(pipe: DefencePipeline, clean: torch.Tensor, adv: torch.Tensor) -> float:
    """How well the first detector's score separates clean test crops from the non-adaptive attacks."""
    d = pipe.detectors[0]
    with torch.no_grad():
        s_c = d.score(*pipe.defended.parts(clean)[:2]).double().cpu().numpy()
        s_a = d.score(*pipe.defended.parts(adv)[:2]).double().cpu().numpy()
    return float(roc_auc_score(np.r_[np.zeros(len(s_c)), np.ones(len(s_a))], np.r_[s_c, s_a]))


def _certified(pipe: DefencePipeline, x: torch.Tensor, y: np.ndarray, radii) -> list[float]:
    decisions = pipe.decide(x)
    return [float(np.mean([d.label == yi and (d.radius or 0.0) >= r for d, yi in zip(decisions, y, strict=True)]))
            for r in radii]


@dataclass(frozen=True)
class _Attacked:
    """What every defence is checked on: the test crops and the non-adaptive attack's crops of them."""

    cfg: DefenceEvalConfig
    precision: str  # of the attacks' gradient passes
    x: torch.Tensor  # the test crops
    y: np.ndarray  # their class indices
    y_t: torch.Tensor  # the same, on the device
    d_grid: list[float]
    attacked: list[torch.Tensor]  # the non-adaptive attack's crops per d_max (clean at 0)
    extractor: FeatureExtractor

    @property
    def nonzero(self) -> list[float]:
        return [d for d in self.d_grid if d > 0]


def _checks(case: _Attacked, spec: str, pipe: DefencePipeline, r: DefenceResult, two_starts: list[float],
            judge: Callable[[np.ndarray], np.ndarray], adv_imgs: list[np.ndarray]) -> list[dict]:
    """The sanity checks of one defence; `two_starts`: the adaptive attack's accuracy per d_max, better start;
    `adv_imgs`: the crops the ensemble published per d_max."""
    cfg, x, y, y_t, d_grid, attacked = case.cfg, case.x, case.y, case.y_t, case.d_grid, case.attacked
    nonzero, precision = case.nonzero, case.precision
    out = []
    one = 1.0 / len(y) + 1e-12
    worse = [f"{d:g}" for d, a, n in zip(d_grid, r.accuracy["adaptive_cold_start"], r.accuracy["non_adaptive"],
                                         strict=True) if a > n + one]
    out.append({"check": f"{spec}: the adaptive attack, started from the clean crop alone, is at least as strong "
                         "as the non-adaptive one",
                "passed": not worse, "detail": "adaptive accuracy above non-adaptive at d_max " + ", ".join(worse)
                if worse else "at every d_max"})
    if nonzero:
        # the adaptive attack (the better of a clean and a warm start, per crop, at this d_max alone) again with
        # twice the EOT draws and steps, at the largest d_max
        top = max(nonzero)
        i = d_grid.index(top)
        more = _adaptive_attack(pipe, 2 * cfg.eot, 2 * cfg.steps, cfg.norm, precision, eps=top)
        cold = judge(more(x, y_t).images())
        warm = judge(more(x, y_t, x_init=attacked[i]).images())
        a_more = _accuracy(np.where(rules.fooled(warm, y), warm, cold), y)
        a_base = two_starts[i]
        out.append({"check": f"{spec}: more EOT draws and steps do not raise the adaptive attack's accuracy",
                    "passed": a_more <= a_base + one,
                    "detail": f"d_max {top:g}: eot {cfg.eot}, {cfg.steps} steps → {a_base:.3f}; "
                              f"eot {2 * cfg.eot}, {2 * cfg.steps} steps → {a_more:.3f}"})
    live = [i for i, d in enumerate(d_grid) if d > 0 and r.accuracy["adaptive"][i] > 0]
    if cfg.square_queries > 0 and cfg.norm in SquareSearch.norms and nonzero:
        name = f"{spec}: a gradient-free attack is not stronger than the adaptive ensemble"
        if not live:
            out.append({"check": name, "passed": True, "detail": "accuracy 0 at every d_max > 0: nothing left"})
        else:
            i = live[-1]
            search = SquareSearch(pipe.attack_model(1), eps=d_grid[i], norm=cfg.norm, queries=cfg.square_queries,
                                  reject_aware=True, seed=cfg.seed)
            tried, broken = attack_what_is_left(search, x, y_t, adv_imgs[i], _failed(judge, y))
            out.append({"check": name, "passed": broken <= 1,
                        "detail": f"d_max {d_grid[i]:g}: {cfg.square_queries} queries (one draw each) on each of "
                                  f"the {tried} crops left correct broke {broken}"})
    if cfg.binarization > 0 and nonzero:
        if cfg.norm not in BINARIZATION_NORMS:
            r.notes.append(f"no binarization test in {cfg.norm}: it draws its points in a "
                           f"{' or '.join(BINARIZATION_NORMS)} ball")
        elif pipe.smoothing is not None or pipe.detectors:
            r.notes.append("no binarization test: its construction replaces the classifier's readout, and a detector "
                           "or smoothing decides on more than that (the undefended guard's test covers the readout)")
        else:
            out.append(_binarization_check(case, spec, pipe))
    return out


def _binarization_check(case: _Attacked, spec: str, pipe: DefencePipeline) -> dict:
    """Zimmermann et al.'s binarization test of the adaptive attacker (Algorithm 1 with EOT / BPDA, then the
    ensemble) against this defence's input transforms, at the middle positive d_max."""
    cfg = case.cfg
    name = f"{spec}: binarization test of the adaptive attack"
    transforms = tuple(d for d in pipe.defences if isinstance(d, InputTransform))
    nonzero = case.nonzero
    d = nonzero[len(nonzero) // 2]
    randomized = any(t.randomized for t in transforms)

    def attack(model, xs, ys, d_max, failed):
        target = EOT(model, cfg.eot) if randomized else model
        first = PaperAttack(target, eps=d_max, norm=cfg.norm, steps=cfg.steps, precision=case.precision)(xs, ys)
        problem = CurveProblem(target, xs, ys, [0.0, d_max], failed, deep=False)
        images, _ = ensemble_images(EnsembleSettings(cfg.ensemble_steps, cfg.ensemble_targets, case.precision,
                                                     cfg.norm), problem, [_uint8(xs), first.images()])
        return images[-1]

    per_class = [np.flatnonzero(case.y == c) for c in np.unique(case.y)]
    pick = torch.as_tensor(sorted(int(idx[0]) for idx in per_class[: cfg.binarization]), device=case.x.device)
    b = binarization_test(case.extractor, case.x[pick], d, attack, seed=cfg.seed, transforms=transforms,
                          norm=cfg.norm)
    return {"check": name, "passed": b.passed, "detail": b.detail(d)}
