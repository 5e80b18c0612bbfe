"""The paper's security evaluation: accuracy against d_max for SVM, SVM-RBF and SVM-adv.

Procedure (Melis et al., Sect. 4):
1. Extract features of train / validation / test crops; choose C (and γ) by
   3-fold CV; fit SVM (linear) and SVM-RBF. SVM-adv is SVM-RBF with the reject
   option at threshold 0; "SVM-adv +5%" has thresholds calibrated on validation
   data to reject 5% more of each class.
2. Attack the test crops, error-generic and error-specific (targets cycle over
   the other classes, so results average over targets), over a d_max grid. By
   default (`attack="auto"`, l2) one fast minimum-norm attack per attacker gives
   the crops of every d_max at once (`curves.curve_images`, `curves.min_norm_images`), with
   Algorithm 1 as the fallback where it stopped short (and a few Algorithm 1 steps from each
   published crop that other classifiers judge, so it goes as deep as a sweep would); `attack="algorithm1"` is the
   paper's procedure: Algorithm 1 per d_max, each warm-started from the previous
   solution. Sanity checks compare the two at one d_max. The
   linear SVM is attacked through its own scores; the RBF family through
   SVM-RBF's scores (the reject-blind attacker, as in the paper); SVM-adv +5%
   is also attacked by the reject-aware (adaptive) attacker.
3. Accuracy per d_max, one rule at every d_max (clean included): a sample
   counts as correct unless it is accepted with a wrong label — a rejection is
   never an error (under attack, the attack was caught; on clean data, the
   robot asks instead of answering wrongly). The `rejected` rows report how
   often each classifier rejects, clean data included, so the price is visible.
   Attacked crops are judged as a camera would publish them: whole pixel values
   still within d_max (`AttackResult.images`).

Results are `CurveRecord`s keyed by `CurveKey` (judging classifier, mode, adaptive attacker or not);
`EvalResult.to_json` writes them as the nested {mode: {name: per d_max}} tables of results.json.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..attacks import FastMinimumNorm, PaperAttack, SquareSearch, resolve_precision
from ..attacks.apgd import APGD
from ..attacks.constraints import DEFAULT_GRIDS, check_budgets, check_norm
from ..core import rules
from ..core.features import BackboneSpec, FeatureExtractor
from ..core.pipeline import GuardModel
from .binarization import NORMS as BINARIZATION_NORMS
from .binarization import binarization_test
from .curves import (
    FMN_PATIENCE,
    CurveKey,
    CurveProblem,
    CurveRecord,
    CurveSettings,
    EnsembleSettings,
    FeatureMemo,
    MinNormRun,
    attack_what_is_left,
    budget_attack,
    curve_images,
    ensemble_images,
    failed_judge,
    grid_stop,
    rises,
)
from .metrics import feature_shift, pass_score, random_direction_like, robust_error
from .prepared import Prepared, PrepKey, prepare

log = logging.getLogger(__name__)

ATTACK_MODES = ("auto", "fmn", "algorithm1")


@dataclass
class EvalConfig:
    dataset: str = "simworld7"
    n_train: int = 50  # per class
    n_val: int = 20
    n_test: int = 5  # attacked crops per class
    d_max: tuple[float, ...] = ()  # empty: the norm's grid (attacks/constraints.DEFAULT_GRIDS)
    norm: str = "l2"
    steps: int = 20
    backbone: str = "alexnet"
    weights: str = "random"
    input_size: int = 224
    seed: int = 0
    device: str = "auto"
    target_false_reject: float = 0.05
    sticker: float = 0.3  # side of the Fig. 7 sticker mask, as a fraction of the crop
    analysis_distance: float = 500.0  # input l2 distance for the Sect. 5 analysis
    adaptive: bool = True
    attack: str = "auto"  # fmn (one minimum-norm run for all d_max) | algorithm1 (per d_max) | auto: fmn in l2
    fmn_steps: int = 20
    precision: str = "auto"  # of the attacks' gradient passes; auto: bfloat16 where fast (AMX CPU, CUDA)
    ensemble_steps: int = 20  # APGD-CE and APGD-T steps on the crops the curve's attack left unbroken; 0: none
    ensemble_targets: int = 3  # APGD-T's target classes (the best-scoring wrong ones; reject-aware: nearest acceptance)
    binarization: int = 7  # crops of the binarization test (Zimmermann et al. 2022) in the sanity checks; 0: none
    square_queries: int = 200  # the gradient-free check's queries per crop left unbroken; 0: no check

    def __post_init__(self) -> None:
        if not self.d_max:
            self.d_max = DEFAULT_GRIDS[check_norm(self.norm)]
        check_budgets(self.norm, self.d_max)
        if self.attack not in ATTACK_MODES:
            raise ValueError(f"attack must be one of {', '.join(ATTACK_MODES)}, not {self.attack!r}")
        if self.attack == "fmn" and self.norm != "l2":
            raise ValueError(f"the fast minimum-norm attack is l2 only; use attack='algorithm1' for {self.norm}")
        if self.steps < 1 or self.fmn_steps < 1:
            raise ValueError("steps and fmn_steps must be >= 1")
        if self.ensemble_steps < 0 or self.ensemble_targets < 1:
            raise ValueError("ensemble_steps must be >= 0 and ensemble_targets >= 1")
        resolve_precision(self.precision)

    @property
    def fallback_steps(self) -> int:
        """Algorithm 1's steps where the fast attack stopped short: half, as it starts at FMN's point."""
        return max(1, self.steps // 2)

    @property
    def polish_steps(self) -> int:
        """Algorithm 1's steps from each published crop that other classifiers judge and the strictest does not
        count as fooled yet, per d_max (they add up over the grid, as a warm-started sweep's do)."""
        return max(1, self.steps // 2)

    @property
    def curve_attack(self) -> str:
        """The attack that draws the curves: `attack`, with auto resolved."""
        if self.attack == "auto":
            return "fmn" if self.norm == "l2" else "algorithm1"
        return self.attack

    def ensemble_settings(self, precision: str) -> EnsembleSettings:
        """The ensemble's members (`curves.ensemble_images`) for this evaluation."""
        return EnsembleSettings(self.ensemble_steps, self.ensemble_targets, precision, self.norm)

    def curve_settings(self, precision: str) -> CurveSettings:
        """How `curves.curve_images` draws this evaluation's curves, with the gradient passes in `precision`."""
        return CurveSettings(self.curve_attack, self.norm, self.steps, self.fmn_steps, self.fallback_steps,
                             self.polish_steps, precision)


@dataclass
class EvalResult:
    config: dict
    d_max: list[float]
    curves: list[CurveRecord]  # generic then specific, each in the reports' row order
    pass_mean: dict[str, list[float]]
    test_accuracy: dict[str, float]
    hyperparameters: dict[str, dict]
    analysis: dict
    sanity: list[dict]
    timing: dict[str, float]
    examples: dict = field(default_factory=dict)  # arrays for the Fig. 7 figure (not serialised)
    attack: dict = field(default_factory=dict)  # which attack drew the curves, and what it cost per run

    def curves_of(self, mode: str) -> list[CurveRecord]:
        return [c for c in self.curves if c.key.mode == mode]

    def curve(self, classifier: str, mode: str, adaptive: bool = False) -> CurveRecord:
        key = CurveKey(classifier, mode, adaptive)
        return next(c for c in self.curves if c.key == key)

    def _table(self, column: str) -> dict[str, dict[str, list[float]]]:
        out: dict[str, dict[str, list[float]]] = {"generic": {}, "specific": {}}
        for c in self.curves:
            out.setdefault(c.key.mode, {})[c.key.label] = getattr(c, column)
        return out

    # results.json's tables: mode → curve label ("svm-adv+5% (adaptive)" for the reject-aware attacker) → per d_max
    @property
    def accuracy(self) -> dict[str, dict[str, list[float]]]:
        return self._table("accuracy")

    @property
    def rejected(self) -> dict[str, dict[str, list[float]]]:
        return self._table("rejected")

    @property
    def mean_l2(self) -> dict[str, dict[str, list[float]]]:
        return self._table("mean_l2")

    @property
    def robust_error(self) -> dict[str, dict[str, list[float]]]:
        """Stutz et al. 2020's confidence-thresholded robust error per d_max (`metrics.robust_error`)."""
        return self._table("robust_error")

    @property
    def target_success(self) -> dict[str, list[float]]:
        """Error-specific: curve label → fraction classified as their target, per d_max."""
        return {c.key.label: c.target_success for c in self.curves if c.target_success is not None}

    def to_json(self) -> dict:
        """results.json: the curves as nested tables, every other field as it is (not the examples)."""
        return copy.deepcopy({"config": self.config, "d_max": self.d_max, "accuracy": self.accuracy,
                "target_success": self.target_success, "rejected": self.rejected, "mean_l2": self.mean_l2,
                "robust_error": self.robust_error,
                "pass_mean": self.pass_mean, "test_accuracy": self.test_accuracy,
                "hyperparameters": self.hyperparameters, "analysis": self.analysis, "sanity": self.sanity,
                "timing": self.timing, "attack": self.attack})


ACCURACY_RULE = ("a sample counts as correct unless it is accepted with a wrong label: a rejection is not an error, "
                 "at every d_max including 0 (clean); reject rates are reported separately")


def _accuracy(labels: np.ndarray, y: np.ndarray) -> float:
    """The evaluation's one rule (ACCURACY_RULE): not accepted with a wrong label (`rules.fooled`; class
    indices, `rules.REJECTED` where rejected, as the defences' evaluation scores them)."""
    return float(np.mean(~rules.fooled(labels, y)))


@dataclass(frozen=True)
class _Attacker:
    """One attacker of the curves: the classifier whose scores it attacks, reject-aware (adaptive) or not, and the
    classifiers that judge its crops — one curve each."""

    classifier: str
    aware: bool
    judges: tuple[str, ...]

    def key(self, mode: str) -> CurveKey:
        return CurveKey(self.classifier, mode, self.aware)

    def curve_keys(self, mode: str) -> list[CurveKey]:
        return [CurveKey(name, mode, self.aware) for name in self.judges]

    @property
    def deep(self) -> bool:
        """Other classifiers than the attacked one judge its crops."""
        return self.judges != (self.classifier,)


#: the linear SVM through its own scores; the RBF family through SVM-RBF's (the reject-blind attacker, as in the
#: paper); SVM-adv +5% also by the reject-aware (adaptive) attacker, with `EvalConfig.adaptive`
ATTACKERS = (_Attacker("svm", False, ("svm",)), _Attacker("svm-rbf", False, ("svm-rbf", "svm-adv", "svm-adv+5%")))
ADAPTIVE_ATTACKER = _Attacker("svm-adv+5%", True, ("svm-adv+5%",))
#: every curve's label, in the reports' row order
CLASSIFIERS = tuple(k.label for a in (*ATTACKERS, ADAPTIVE_ATTACKER) for k in a.curve_keys("generic"))


@dataclass(frozen=True)
class _Setting:
    """What every curve attacks and how it is judged: the attacks' and the sanity checks' common context."""

    cfg: EvalConfig
    precision: str  # of the attacks' gradient passes
    x: torch.Tensor  # the test crops
    y: torch.Tensor  # their class indices
    y_true: np.ndarray  # their class indices, as numpy (what a judge's `predict_indices` is compared with)
    d_grid: list[float]
    judge: FeatureMemo


def run_security_evaluation(cfg: EvalConfig, progress: Callable[[str], None] | None = None,
                            prepared: Prepared | None = None) -> EvalResult:
    """The evaluation of `cfg`; `prepared`: its data, features and classifiers when already computed (a sweep)."""
    t_start = time.perf_counter()
    timing: dict[str, float] = {}
    say = progress or (lambda msg: log.info("%s", msg))
    torch.manual_seed(cfg.seed)
    extractor = FeatureExtractor(BackboneSpec(cfg.backbone, cfg.weights, cfg.seed, cfg.input_size), cfg.device)
    precision = resolve_precision(cfg.precision, extractor.device)

    judge = FeatureMemo(extractor)
    if prepared is None:
        prepared = prepare(extractor, PrepKey.of(cfg), say)
        timing.update(prepared.seconds)
    else:  # computed once for every cell of a sweep at this backbone and data set (its cost is the sweep's)
        prepared.check(cfg, linear=True)
        timing.update({f"shared_{k}": v for k, v in prepared.seconds.items()})
    val, test_all = prepared.splits["val"].data, prepared.splits["test"].data
    F_val, F_te = prepared.splits["val"].features, prepared.splits["test"].features
    judge.remember(test_all.images, F_te)
    hp_lin, hp_rbf = prepared.hyperparameters["linear"], prepared.hyperparameters["rbf"]
    svm, rbf, adv = (prepared.classifier(n) for n in ("svm", "svm-rbf", "svm-adv"))
    adv5 = prepared.classifier("svm-adv")
    adv5.calibrate(F_val, val.labels, cfg.target_false_reject)
    clfs = {"svm": svm, "svm-rbf": rbf, "svm-adv": adv, "svm-adv+5%": adv5}

    classes = list(rbf.classes_)
    # Every test sample is attacked (as in the paper); a clean error stays an error at every d_max.
    x = torch.from_numpy(test_all.images).to(extractor.device, torch.float32)
    y_idx = torch.tensor([classes.index(v) for v in test_all.labels], device=x.device)
    k = len(classes)
    targets = (y_idx + 1 + torch.arange(len(y_idx), device=x.device) % (k - 1)) % k
    y_true = y_idx.cpu().numpy()
    clean_labels = {k: c.predict_indices(F_te) for k, c in clfs.items()}
    test_acc = {k: _accuracy(lab, y_true) for k, lab in clean_labels.items()}

    models = {"svm": GuardModel.from_classifier(extractor, svm),
              "svm-rbf": GuardModel.from_classifier(extractor, rbf),
              "svm-adv+5%": GuardModel.from_classifier(extractor, adv5)}
    attackers = [*ATTACKERS, ADAPTIVE_ATTACKER] if cfg.adaptive else list(ATTACKERS)
    d_grid = [float(v) for v in cfg.d_max]
    setting = _Setting(cfg, precision, x, y_idx, y_true, d_grid, judge)
    how = cfg.curve_settings(precision)
    curves: list[CurveRecord] = []
    pass_mean: dict[str, list[float]] = {}
    adv_images: dict[CurveKey, list[np.ndarray]] = {}
    t = time.perf_counter()
    target_ids = targets.cpu().numpy()
    curve_info: dict[CurveKey, MinNormRun | None] = {}
    ensemble, ensemble_wins = cfg.ensemble_settings(precision), {}
    for mode in ("generic", "specific"):
        specific = mode == "specific"
        aims = target_ids if specific else None
        for attacker in attackers:
            run = attacker.key(mode)
            say(f"attacking {run.label} ({mode})")
            problem = CurveProblem(
                models[attacker.classifier], x, y_idx, d_grid, failed_judge(clfs[attacker.classifier], judge, y_true,
                                                                            aims),
                target=targets if specific else None, aware=attacker.aware, deep=attacker.deep,
                # SVM-adv +5% shares SVM-RBF's scores with the highest thresholds: what fools it fools every judge
                strictest=failed_judge(adv5, judge, y_true, aims))
            imgs, curve_info[run] = curve_images(how, problem)
            if not specific:  # the per-crop worst case (error-specific curves: the curve's attack alone)
                imgs, ensemble_wins[run] = ensemble_images(ensemble, problem, imgs)
            adv_images[run] = imgs
            feats = [judge.extract(im) for im in imgs]
            for key in attacker.curve_keys(mode):
                labels = [clfs[key.classifier].predict_indices(f) for f in feats]
                clean = clean_labels[key.classifier]
                curves.append(CurveRecord(
                    key, accuracy=[_accuracy(lab, y_true) for lab in labels],
                    rejected=[float(np.mean(lab == rules.REJECTED)) for lab in labels],
                    mean_l2=[float(np.linalg.norm((im.astype(np.float32) - test_all.images).reshape(len(im), -1),
                                                  axis=1).mean()) for im in imgs],
                    target_success=[float(np.mean(lab == target_ids)) for lab in labels] if specific else None,
                    robust_error=[robust_error(clean, lab, y_true) for lab in labels]))
            if run == CurveKey("svm-rbf", "generic"):
                pass_mean["svm-rbf"] = [float(np.mean([pass_score(a, b) for a, b in zip(test_all.images, im,
                                                                                         strict=True)]))
                                        for im in imgs]
    timing["attacks_s"] = time.perf_counter() - t

    t = time.perf_counter()
    say("sanity checks and Sect. 5 analysis")
    rbf_run = curve_info[CurveKey("svm-rbf", "generic")]
    analysis = _feature_space_analysis(extractor, models["svm-rbf"], x, y_idx, cfg,
                                       None if rbf_run is None else rbf_run.x_adv)
    t_sanity = time.perf_counter()
    sanity = _sanity_checks(setting, curves, test_acc, rbf, models["svm-rbf"],
                            None if rbf_run is None else rbf_run.norms, adv_images[CurveKey("svm-rbf", "generic")])
    timing["sanity_s"] = time.perf_counter() - t_sanity  # part of analysis_s: the checks' own attacks
    examples = _examples(models["svm-rbf"], x, y_idx, adv_images[CurveKey("svm-rbf", "generic")], cfg)
    timing["analysis_s"] = time.perf_counter() - t
    timing["total_s"] = time.perf_counter() - t_start
    return EvalResult(asdict(cfg), d_grid, curves, pass_mean, test_acc,
                      {"svm": hp_lin, "svm-rbf": hp_rbf, "thresholds_+5%": adv5.thresholds_.tolist()},
                      analysis, sanity, timing, examples, _attack_summary(cfg, precision, curve_info, ensemble_wins))


def _attack_summary(cfg: EvalConfig, precision: str, curve_info: dict[CurveKey, MinNormRun | None],
                    ensemble_wins: dict[CurveKey, dict[str, list[int]]]) -> dict:
    """results.json's "attack": how the curves were drawn and, per minimum-norm run (keyed "<attacker> (<mode>)",
    e.g. "svm-adv+5% (adaptive) (generic)"), what it cost; per run, how many crops each member of the ensemble
    broke per d_max ("ensemble")."""
    out: dict = {"curves": cfg.curve_attack, "precision": precision, "fallback_steps": cfg.fallback_steps,
                 "polish_steps": cfg.polish_steps, "ensemble_steps": cfg.ensemble_steps,
                 "ensemble_targets": cfg.ensemble_targets, "runs": {}, "ensemble": {
                     f"{run.label} ({run.mode})": wins for run, wins in ensemble_wins.items()}}
    for run, info in curve_info.items():
        if info is not None:
            norms = np.array(info.norms)
            out["runs"][f"{run.label} ({run.mode})"] = {
                "gradient_evals": info.gradient_evals, "fallback_runs": info.fallback_runs,
                "fallback_wins": info.fallback_wins, "polish_wins": info.polish_wins,
                "median_min_norm": float(np.median(norms)) if np.isfinite(norms).any() else None}
    return out


def _feature_space_analysis(extractor, model, x, y, cfg: EvalConfig, adv: torch.Tensor | None = None) -> dict:
    """Sect. 5: feature-space shift of random noise vs the attack at the same input distance.

    `adv`: attacked crops whose direction to use (the minimum-norm run's); else Algorithm 1 at that distance.
    """
    d = cfg.analysis_distance
    noisy = random_direction_like(x, d, cfg.seed)
    if adv is None:
        adv = PaperAttack(model, eps=d, norm="l2", steps=cfg.steps)(x, y).x_adv
    else:  # a crop misclassified when clean has no minimum-norm direction: Algorithm 1 gives it one
        still = ((adv - x).flatten(1).norm(dim=1) < 1e-3).nonzero()[:, 0]
        if len(still):
            adv = adv.clone()
            adv[still] = PaperAttack(model, eps=d, norm="l2", steps=cfg.steps)(x[still], y[still]).x_adv
    # the attack may stop inside the ball; rescale its perturbation to exactly d where the box allows
    delta = adv - x
    scale = d / delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    adv_d = (x + delta * scale.view(-1, 1, 1, 1)).clamp(0, 255)
    in_noise = (noisy - x).flatten(1).norm(dim=1).cpu().numpy()
    in_adv = (adv_d - x).flatten(1).norm(dim=1).cpu().numpy()
    s_noise = feature_shift(extractor, x, noisy)
    s_adv = feature_shift(extractor, x, adv_d)
    return {"input_l2": d, "input_l2_noise_mean": float(in_noise.mean()), "input_l2_attack_mean": float(in_adv.mean()),
            "feature_shift_noise_mean": float(s_noise.mean()), "feature_shift_noise_std": float(s_noise.std()),
            "feature_shift_attack_mean": float(s_adv.mean()), "feature_shift_attack_std": float(s_adv.std()),
            "ratio_attack_over_noise": float(s_adv.mean() / max(s_noise.mean(), 1e-12))}


def _sanity_checks(s: _Setting, curves: list[CurveRecord], test_acc: dict[str, float], rbf_clf, rbf_model,
                   norms: list[float] | None = None, rbf_images: list[np.ndarray] | None = None) -> list[dict]:
    """Checks that can fail, on the curves and on SVM-RBF (`rbf_clf`, `rbf_model`: its pixels → scores) again;
    `norms`: the error-generic minimum-norm run's on SVM-RBF, when the curves were drawn that way; `rbf_images`:
    that curve's published crops per d_max."""
    cfg, d_grid, x, y, y_true, precision = s.cfg, s.d_grid, s.x, s.y, s.y_true, s.precision
    checks = []
    by_key = {c.key: c for c in curves}

    def add(name, passed, detail):
        checks.append({"check": name, "passed": bool(passed), "detail": detail})

    top = len(d_grid) - 1
    for name in ("svm", "svm-rbf"):
        a = by_key[CurveKey(name, "generic")].accuracy[top]
        add(f"undefended {name}: accuracy → ~0 as d_max grows", a <= 0.1, f"accuracy {a:.3f} at d_max {d_grid[top]:g}")
    for c in curves:
        if c.key.mode != "generic":
            continue
        a0 = c.accuracy[0]  # the adaptive attacker's curve is exempt (its judge's own row is checked)
        add(f"{c.key.label}: clean accuracy at d_max=0 equals its test accuracy",
            c.key.adaptive or abs(a0 - test_acc[c.key.classifier]) < 1e-9,
            f"{a0:.3f} vs {a0 if c.key.adaptive else test_acc[c.key.classifier]:.3f}")
    rbf_specific = by_key.get(CurveKey("svm-rbf", "specific"))
    ts = rbf_specific.target_success[-1] if rbf_specific is not None else 0.0
    add("error-specific attack reaches its target at large d_max (svm-rbf)", ts >= 0.5,
        f"target reached for {ts:.3f} of samples at d_max {d_grid[top]:g}")
    n = len(y_true)
    rbf_failed = failed_judge(rbf_clf, s.judge, y_true, None)
    if cfg.curve_attack == "fmn" and d_grid[top] > 0 and norms is not None:
        # the fast curve against the paper's attack at one d_max, on the same crops and gradients' precision
        # (bench/bench_evaluate.py compares every curve with Algorithm 1 in float32)
        positive = [d for d in d_grid if d > 0]
        fast = by_key[CurveKey("svm-rbf", "generic")].accuracy
        live = [d for d in positive if fast[d_grid.index(d)] > 0]  # where the curve is 0 nothing can be above it
        sweep = PaperAttack(rbf_model, eps=None, norm=cfg.norm, steps=cfg.steps, precision=precision).sweep(
            x, y, live) if live else []
        a_alg1 = [float(np.mean(rbf_failed(r.images(), np.arange(n)))) for r in sweep]
        above = [d for d, a in zip(live, a_alg1, strict=True) if fast[d_grid.index(d)] > a + 1.0 / n]
        add("minimum-norm curve is not above Algorithm 1 at any d_max (svm-rbf)", not above,
            "; ".join([*(f"d_max {d:g}: curve {fast[d_grid.index(d)]:.3f}, Algorithm 1 ({cfg.steps} steps, "
                         f"warm-started, {precision}) {a:.3f}" for d, a in zip(live, a_alg1, strict=True)),
                       f"the curve is 0 at d_max {', '.join(f'{d:g}' for d in positive if d not in live) or '-'}"]))
        # more steps must not help the defender: the minimum norms again with twice the steps, as curves
        twice = FastMinimumNorm(rbf_model, steps=2 * cfg.fmn_steps, patience=FMN_PATIENCE,
                                stop_below=grid_stop(d_grid), precision=precision)
        twice(x, y)
        a_fmn, a_more = ([float(np.mean(np.asarray(v, float) > d)) for d in positive]
                         for v in (norms, twice.best_norms.cpu().numpy()))
        up = [d for d, a, b in zip(positive, a_fmn, a_more, strict=True) if b > a + 1.0 / n]
        add("more attack steps do not raise the minimum-norm curve (svm-rbf)", not up,
            f"share of crops whose minimum norm exceeds d_max {', '.join(f'{d:g}' for d in positive)}: "
            f"{cfg.fmn_steps} steps " + " ".join(f"{v:.2f}" for v in a_fmn)
            + f"; {2 * cfg.fmn_steps} steps " + " ".join(f"{v:.2f}" for v in a_more))
    elif d_grid[top] > 0:
        # more steps must not help the defender: re-run the largest d_max with twice the steps
        base = PaperAttack(rbf_model, eps=d_grid[top], norm=cfg.norm, steps=cfg.steps)(x, y)
        more = PaperAttack(rbf_model, eps=d_grid[top], norm=cfg.norm, steps=2 * cfg.steps)(x, y)
        a_b = float(np.mean(rbf_failed(base.images(), np.arange(n))))
        a_m = float(np.mean(rbf_failed(more.images(), np.arange(n))))
        add("more attack steps do not raise accuracy (svm-rbf)", a_m <= a_b + 1.0 / n,
            f"{cfg.steps} steps: {a_b:.3f}, {2 * cfg.steps} steps: {a_m:.3f}")
    for mode in ("generic", "specific"):
        for c in (c for c in curves if c.key.mode == mode):
            a, name = c.accuracy, c.key.label
            up = rises(a, len(y_true))
            add(f"{name} (error-{mode}): accuracy does not rise with d_max (by more than one sample)", not up,
                " ".join(f"{v:.2f}" for v in a) + (f"; rises after d_max {', '.join(f'{d_grid[i]:g}' for i in up)}"
                                                     if up else ""))
    if rbf_images is not None:
        for check in _left_unbroken_checks(s, by_key[CurveKey("svm-rbf", "generic")].accuracy, rbf_model, rbf_failed,
                                           rbf_images):
            add(*check)
    if norms is not None:
        finite = float(np.mean(np.isfinite(np.asarray(norms, float))))
        add("an unbounded attack reaches 100% (svm-rbf): every crop has a minimum-norm adversarial example",
            finite == 1.0, f"{finite:.2f} of the crops")
    if cfg.binarization > 0 and any(d > 0 for d in d_grid) and cfg.norm in BINARIZATION_NORMS:
        b, d = _binarization(s)
        add(f"binarization test: the attack finds the adversarial example known to exist within d_max {d:g}",
            b.passed, b.detail(d))
    return checks


def _left_unbroken_checks(s: _Setting, curve: list[float], model, failed, images: list[np.ndarray]) -> list[tuple]:
    """Gradient masking and a weak ensemble (Carlini et al. 2019): at the largest d_max where SVM-RBF's curve is
    above 0, a score-based search that never reads a gradient (`SquareSearch`), and APGD-CE with twice the
    ensemble's steps and three restarts, try the crops the curve left unbroken, from its published crops; each
    FAILs when it breaks more than one."""
    free = "a gradient-free attack is not stronger than the gradient ensemble (svm-rbf)"
    more = "more steps and restarts do not break what the ensemble left (svm-rbf)"
    live = [i for i, d in enumerate(s.d_grid) if d > 0 and curve[i] > 0]
    if not live:
        return [(name, True, "the curve is 0 at every d_max > 0: nothing left to break") for name in (free, more)]
    i, cfg = live[-1], s.cfg
    d = s.d_grid[i]
    out = []
    if cfg.square_queries > 0 and cfg.norm in SquareSearch.norms:
        search = SquareSearch(model, eps=d, norm=cfg.norm, queries=cfg.square_queries, seed=cfg.seed)
        tried, broken = attack_what_is_left(search, s.x, s.y, images[i], failed)
        out.append((free, broken <= 1, f"d_max {d:g}: {cfg.square_queries} queries on each of the {tried} crops the "
                                       f"curve left unbroken broke {broken}"))
    if cfg.ensemble_steps > 0:
        steps = 2 * cfg.ensemble_steps
        apgd = APGD(model, eps=d, norm=cfg.norm, steps=steps, restarts=3, seed=cfg.seed + 1, precision=s.precision)
        tried, broken = attack_what_is_left(apgd, s.x, s.y, images[i], failed)
        out.append((more, broken <= 1, f"d_max {d:g}: APGD-CE, {steps} steps, 3 restarts (two from random points) on "
                                       f"each of the {tried} crops the ensemble left unbroken broke {broken}"))
    return out


def _binarization(s: _Setting):
    """Zimmermann et al.'s binarization test (`evaluation.binarization`) of the curves' attack — the error-generic
    one on SVM-RBF, ensemble included — on `cfg.binarization` crops (one per class first), at the middle
    positive d_max."""
    cfg = s.cfg
    positive = [d for d in s.d_grid if d > 0]
    d = positive[len(positive) // 2]
    per_class = [np.flatnonzero(s.y_true == c) for c in np.unique(s.y_true)]
    order = [int(idx[rank]) for rank in range(max(map(len, per_class))) for idx in per_class if rank < len(idx)]
    pick = torch.as_tensor(sorted(order[: cfg.binarization]), device=s.x.device)
    attack = budget_attack(cfg.curve_settings(s.precision), cfg.ensemble_settings(s.precision))
    return binarization_test(s.judge.extractor, s.x[pick], d, attack, seed=cfg.seed, norm=cfg.norm), d


def _examples(model, x, y, generic_imgs, cfg: EvalConfig) -> dict:
    """One crop attacked at increasing d_max, and with a sticker mask (Fig. 7)."""
    from ..attacks import rect_mask

    i = 0
    h, w = x.shape[1:3]
    side = max(2, int(cfg.sticker * min(h, w)))
    rect = ((w - side) // 2, (h - side) // 2, side, side)
    mask = rect_mask((h, w), rect, device=x.device)
    big = max(cfg.d_max) if max(cfg.d_max) > 0 else 1000.0
    sticker = PaperAttack(model, eps=big, norm="l2", steps=cfg.steps, mask=mask)(x[i : i + 1], y[i : i + 1])
    return {"original": x[i].cpu().numpy().astype(np.uint8), "d_max": [float(d) for d in cfg.d_max],
            "adversarial": [im[i] for im in generic_imgs], "sticker": sticker.images()[0], "sticker_rect": rect,
            "sticker_d_max": big, "sticker_success": bool(sticker.success[0])}

