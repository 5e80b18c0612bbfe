"""Security curves: the crops a camera would publish at every d_max for one attacker, and the curves' records.

`curve_images` draws one attacker's crops over a d_max grid, either from one fast minimum-norm
attack (`min_norm_images`: FMN's smallest perturbation per sample, scaled out to every d_max, with
Algorithm 1 as the fallback where it stopped short) or by the paper's Algorithm 1 per d_max,
warm-started. A `CurveProblem` says what is attacked and who judges; `CurveSettings` how (from
`EvalConfig.curve_settings`). `FeatureMemo` computes each distinct crop's features once for the
many judgements; `failed_judge` is the evaluation's success test; `rises` finds where a curve
rises with d_max. `CurveKey` / `CurveRecord` are the evaluation's curves as typed records.

`ensemble_images` makes a curve the per-crop worst case over an ensemble: where the curve's own
attack left a crop unbroken at a d_max, APGD-CE and APGD-T (Croce & Hein 2020) try it at that
budget, from the published crop; a crop counts as correct only if every member failed on it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..attacks import FastMinimumNorm, PaperAttack
from ..attacks.apgd import APGD, APGDT
from ..attacks.constraints import lp_norm, quantize
from ..core import rules

FMN_PATIENCE = 6

#: `judge(images uint8, idx) -> bool per sample`
Judge = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: `run(x, y, target, d_max, start) -> uint8 crops`: Algorithm 1 at one budget from `start`
BudgetAttack = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", float, torch.Tensor], np.ndarray]


# ------------------------------------------------------------------ records
@dataclass(frozen=True)
class CurveKey:
    """Which curve: the classifier that judges the crops, the attack's mode, and whether the attacker was the
    reject-aware (adaptive) one. As an attacker's key, `classifier` is the classifier whose scores it attacks."""

    classifier: str
    mode: str  # "generic" | "specific"
    adaptive: bool = False

    @property
    def label(self) -> str:
        """The curve's name in the reports: the classifier, with " (adaptive)" for the reject-aware attacker."""
        return f"{self.classifier} (adaptive)" if self.adaptive else self.classifier


@dataclass(frozen=True)
class CurveRecord:
    """One curve of the security evaluation, per d_max (d_max 0: clean)."""

    key: CurveKey
    accuracy: list[float]
    rejected: list[float]
    mean_l2: list[float]
    target_success: list[float] | None = None  # error-specific only: fraction classified as their target
    robust_error: list[float] | None = None  # Stutz et al. 2020's, at the operating threshold (`metrics.robust_error`)


@dataclass(frozen=True)
class MinNormRun:
    """What one minimum-norm run cost and found."""

    norms: list[float]  # per sample, inf where no adversarial was found
    gradient_evals: int
    fallback_runs: int
    fallback_wins: int
    polish_wins: int
    x_adv: torch.Tensor | None = None  # FMN's own (unquantised) result


# ------------------------------------------------------------------ judging
class FeatureMemo:
    """`extract` with each distinct crop's features computed once.

    The evaluation judges the same crops many times: the attack's own success test, then every
    classifier at every d_max, where a crop broken at a small budget is published unchanged at the
    larger ones. Keyed by the crop's bytes, so a changed pixel is a new crop.
    """

    def __init__(self, extractor):
        self.extractor = extractor
        self._memo: dict[bytes, np.ndarray] = {}

    def extract(self, images: np.ndarray) -> np.ndarray:
        arr = np.asarray(images)
        keys = [hashlib.blake2b(im.tobytes(), digest_size=16).digest() for im in arr]
        new = list({k: i for i, k in enumerate(keys) if k not in self._memo}.items())
        if new:
            feats = self.extractor.extract(arr[[i for _, i in new]])
            self._memo.update((k, f) for (k, _), f in zip(new, feats, strict=True))
        return np.stack([self._memo[k] for k in keys])

    def remember(self, images: np.ndarray, features: np.ndarray) -> None:
        """Features already extracted elsewhere (a sweep's shared test split): not extracted again."""
        for im, f in zip(np.asarray(images), features, strict=True):
            self._memo[hashlib.blake2b(im.tobytes(), digest_size=16).digest()] = f


def failed_judge(clf, judge: FeatureMemo, y_true: np.ndarray, targets: np.ndarray | None) -> Judge:
    """Where the attack on `clf` has not succeeded: not fooled (`rules.fooled`, ACCURACY_RULE), or not the target
    (`y_true`, `targets`: class indices)."""

    def failed(images: np.ndarray, idx: np.ndarray) -> np.ndarray:
        labels = clf.predict_indices(judge.extract(images))
        if targets is not None:
            return labels != targets[idx]
        return ~rules.fooled(labels, y_true[idx])

    return failed


def rises(curve, n_samples: int) -> list[int]:
    """Indices i where curve[i+1] exceeds curve[i] by more than one sample's worth (d_max 0 included)."""
    return [i for i, (a, b) in enumerate(itertools.pairwise(curve)) if b > a + 1.0 / n_samples + 1e-12]


# ------------------------------------------------------------------ drawing a curve
@dataclass(frozen=True)
class CurveProblem:
    """One attacker's curve: what it attacks and who judges.

    `failed`: where the attack has not yet succeeded (error-generic: still correct under the
    evaluation's rule; error-specific: not accepted as the target). `aware`: the reject-aware
    attacker. `deep`: other classifiers than the attacked one judge these crops (the reject-blind
    attacker's): every crop is judged at every d_max, and published successes are polished.
    `strictest`: the `failed` of the judge that counts fewest crops as fooled — polishing runs only
    from the published successes where it is still True (default: all).
    """

    model: object  # pixels → scores
    x: torch.Tensor
    y: torch.Tensor
    d_grid: tuple[float, ...] | list[float]
    failed: Judge
    target: torch.Tensor | None = None  # error-specific
    aware: bool = False
    deep: bool = True
    strictest: Judge | None = None


@dataclass(frozen=True)
class MinNormSettings:
    """How `min_norm_images` runs: FMN's steps and patience, the gradient passes' precision (judging and gains:
    float32), `near_miss` (see `min_norm_images`), and the Algorithm 1 runs `fallback` and `polish`."""

    steps: int = 30
    patience: int = FMN_PATIENCE
    precision: str = "float32"
    near_miss: float = 1.2
    fallback: BudgetAttack | None = None
    polish: BudgetAttack | None = None


@dataclass(frozen=True)
class CurveSettings:
    """How the evaluation draws a curve (`EvalConfig.curve_settings`): `attack` "fmn" (one minimum-norm run for
    every d_max, Algorithm 1 for fallback and polish) or "algorithm1" (per d_max, warm-started)."""

    attack: str
    norm: str
    steps: int  # Algorithm 1's, per d_max
    fmn_steps: int
    fallback_steps: int
    polish_steps: int
    precision: str  # of the gradient passes
    patience: int = FMN_PATIENCE


@dataclass(frozen=True)
class EnsembleSettings:
    """The members that attack what the curve's own attack left unbroken: APGD-CE and APGD-T (DLR-T loss,
    `targets` best wrong classes; error-generic curves only), `steps` each; none when `steps` is 0."""

    steps: int = 20
    targets: int = 3
    precision: str = "float32"
    norm: str = "l2"


#: the ensemble's members, in the order they run (the curve's own attack first)
MEMBERS = ("curve", "carried", "apgd-ce", "apgd-t")


def ensemble_images(settings: EnsembleSettings, problem: CurveProblem, images: list[np.ndarray]
                    ) -> tuple[list[np.ndarray], dict[str, list[int]]]:
    """The per-crop worst case over the ensemble, per d_max (ascending), and how many crops each member broke
    first per d_max: "curve" (the curve's own attack), "carried" (broken at a smaller d_max, that crop is
    inside this budget too), "apgd-ce", "apgd-t". Members run only on crops still unbroken, each crop stops
    once broken, and a crop that any member broke is never replaced: never weaker than a member alone."""
    out = [im.copy() for im in images]
    x, y, target, failed = problem.x, problem.y, problem.target, problem.failed
    wins = {m: [0] * len(out) for m in MEMBERS}
    n = len(x)
    last: np.ndarray | None = None  # the crop that broke each sample at the largest d_max so far
    broke = np.zeros(n, bool)
    for i, d in sorted(enumerate(float(v) for v in problem.d_grid), key=lambda t: t[1]):
        ok = failed(out[i], np.arange(n))  # still correct (generic) / not the target (specific)
        wins["curve"][i] = int((~ok).sum())
        if d <= 0 or settings.steps <= 0:
            broke |= ~ok
            last = out[i].copy() if last is None else np.where((~ok)[:, None, None, None], out[i], last)
            continue
        idx = np.flatnonzero(ok & broke)
        if len(idx):
            won = ~failed(last[idx], idx)
            out[i][idx[won]], ok[idx[won]] = last[idx[won]], False
            wins["carried"][i] = int(won.sum())
        members = [("apgd-ce", APGD(problem.model, eps=d, norm=settings.norm, steps=settings.steps,
                                    reject_aware=problem.aware, precision=settings.precision))]
        if target is None:
            members.append(("apgd-t", APGDT(problem.model, eps=d, norm=settings.norm, steps=settings.steps,
                                            n_targets=settings.targets, reject_aware=problem.aware,
                                            precision=settings.precision)))
        for name, attack in members:
            idx = np.flatnonzero(ok)
            if not len(idx):
                break
            t = torch.as_tensor(idx, device=x.device)
            start = torch.from_numpy(out[i][idx]).to(x.device, x.dtype)
            cand = attack(x[t], y[t], None if target is None else target[t], x_init=start).images()
            won = ~failed(cand, idx)
            out[i][idx[won]], ok[idx[won]] = cand[won], False
            wins[name][i] = int(won.sum())
        broke |= ~ok
        last = out[i].copy() if last is None else np.where((~ok)[:, None, None, None], out[i], last)
    return out, wins


def budget_attack(settings: CurveSettings, ensemble: EnsembleSettings):
    """The evaluation's attack at one d_max — the curve's own attack, then the ensemble on what it left — as
    `attack(model, x, y, d_max, failed) -> uint8 crops` (the binarization test examines this)."""

    def attack(model, x: torch.Tensor, y: torch.Tensor, d_max: float, failed: Judge) -> np.ndarray:
        problem = CurveProblem(model, x, y, [0.0, d_max], failed, deep=False)
        images, _ = curve_images(settings, problem)
        return ensemble_images(ensemble, problem, images)[0][-1]

    return attack


def attack_what_is_left(attack, x: torch.Tensor, y: torch.Tensor, images: np.ndarray, failed: Judge
                        ) -> tuple[int, int]:
    """A check's stronger (or different) `attack` on the crops an evaluation left correct (`failed` still True for
    its published `images`), from those crops: (crops tried, crops it broke)."""
    left = np.flatnonzero(failed(images, np.arange(len(images))))
    if not len(left):
        return 0, 0
    t = torch.as_tensor(left, device=x.device)
    found = attack(x[t], y[t], x_init=torch.from_numpy(images[left]).to(x.device, x.dtype)).images()
    return len(left), int((~failed(found, left)).sum())


def grid_stop(d_grid) -> float | None:
    """FMN's `stop_below` for a curve over `d_grid`: below 75% of the smallest positive d_max, refining is moot."""
    smallest = min((float(d) for d in d_grid if d > 0), default=None)
    return None if smallest is None else 0.75 * smallest


def min_norm_images(problem: CurveProblem, settings: MinNormSettings | None = None
                    ) -> tuple[list[np.ndarray], MinNormRun]:
    """Per d_max, the crops a camera would publish under one minimum-norm attack: what a d_max sweep gives.

    Per sample and d_max, of the crops that succeed (`problem.failed` False) the published one has
    the highest attacker's gain, as a warm-started Algorithm 1 sweep's gain never falls with d_max
    (what a reject option sees of a blind attacker): FMN's direction scaled out to d_max, and the
    crop published at the smaller d_max (inside this budget too). Where neither succeeds: the
    minimum-norm point pushed a little past the boundary (by what rounding to whole pixels can
    undo, 64), then `settings.fallback` (Algorithm 1 from the scaled point) for samples FMN found
    nothing for, or whose minimum norm is within `near_miss` × d_max: there one budget's attack may
    succeed where the minimum-norm search stopped short. Where nothing succeeds, the scaled crop.
    `problem.deep=False` when only the attacked classifier judges the crops: a crop that succeeded
    at a smaller d_max is then kept without judging the scaled one (fewer forward passes).
    `settings.polish`: run from every published success (those `problem.strictest` still counts
    as failed, when given), its crop replaces the published one where it still succeeds with a
    higher gain — for crops that other classifiers judge (a reject option sees how deep a blind
    attacker went, not whether it crossed).
    """
    settings = settings or MinNormSettings()
    model, x, y, target, failed = problem.model, problem.x, problem.y, problem.target, problem.failed
    fallback, polish, polish_needed = settings.fallback, settings.polish, problem.strictest
    attack = FastMinimumNorm(model, steps=settings.steps, patience=settings.patience, reject_aware=problem.aware,
                             stop_below=grid_stop(problem.d_grid), precision=settings.precision)
    res = attack(x, y, target)
    norms = attack.best_norms.detach().cpu().numpy()
    delta = (res.x_adv - x).detach()
    length = lp_norm(delta, "l2").clamp_min(1e-6)
    everyone = np.arange(len(norms))
    clean = x.round().clamp(0, 255).to(torch.uint8).cpu().numpy()

    def at(idx, radius):  # delta's direction at l2 length `radius`, as whole pixels within it
        r = torch.as_tensor(radius, dtype=x.dtype, device=x.device)
        xa = (x[idx] + delta[idx] * (r / length[idx]).view(-1, 1, 1, 1)).clamp(*attack.box)
        return quantize(xa, x[idx], float(r.max()), "l2").to(torch.uint8).cpu().numpy()

    def gain(images, idx):
        with torch.no_grad():
            xi = torch.from_numpy(images).to(x.device, x.dtype)
            return attack.gain(attack.scores(xi), y[idx], None if target is None else target[idx]).cpu().numpy()

    def take(out, ok, idx, cand) -> int:  # where `cand` succeeds, it replaces a crop that did not
        won = ~failed(cand, idx)
        out[idx[won]], ok[idx[won]] = cand[won], False
        return int(won.sum())

    images: list[np.ndarray] = []
    broken = ~failed(clean, everyone)  # d_max 0
    last = clean.copy()
    fallback_runs = fallback_wins = polish_wins = 0
    for d in (float(v) for v in problem.d_grid):
        if d <= 0:
            images.append(clean.copy())
            continue
        judged = everyone if problem.deep else np.flatnonzero(~broken)  # not deep: a success so far is kept unjudged
        out, ok = last.copy(), np.ones(len(norms), bool)
        if len(judged):
            out[judged] = at(judged, torch.full((len(judged),), d))
            ok[judged] = failed(out[judged], judged)
        keep = broken & ok
        both = np.flatnonzero(broken & ~ok)  # both succeed: the higher gain is published
        if len(both):
            g = gain(np.concatenate([out[both], last[both]]), np.concatenate([both, both]))
            keep[both[g[len(both):] > g[: len(both)]]] = True
        out[keep], ok[keep] = last[keep], False
        near = np.flatnonzero(ok & (norms <= d + 1e-6))
        if len(near):
            r = torch.clamp(torch.as_tensor(norms[near], dtype=x.dtype, device=x.device) + 64.0, max=d)
            take(out, ok, near, at(near, r))
        short = np.flatnonzero(ok & ((norms <= settings.near_miss * d) | ~np.isfinite(norms)))
        if fallback is not None and len(short):
            start = torch.from_numpy(out[short]).to(x.device, x.dtype)
            fb = fallback(x[short], y[short], None if target is None else target[short], d, start)
            fallback_runs += len(short)
            fallback_wins += take(out, ok, short, fb)
        won = np.flatnonzero(~ok)
        if polish is not None and polish_needed is not None and len(won):
            won = won[polish_needed(out[won], won)]
        if polish is not None and len(won):
            cand = polish(x[won], y[won], None if target is None else target[won], d,
                          torch.from_numpy(out[won]).to(x.device, x.dtype))
            still = won[~failed(cand, won)]
            if len(still):
                pos = np.searchsorted(won, still)
                g = gain(np.concatenate([cand[pos], out[still]]), np.concatenate([still, still]))
                up = g[: len(still)] > g[len(still):]
                out[still[up]] = cand[pos[up]]
                polish_wins += int(up.sum())
        broken = broken | ~ok
        last[~ok] = out[~ok]
        images.append(out)
    return images, MinNormRun(norms.tolist(), res.gradient_evals, fallback_runs, fallback_wins, polish_wins,
                              res.x_adv.detach())


def min_norm_curve(problem: CurveProblem, settings: MinNormSettings | None = None
                   ) -> tuple[list[float], MinNormRun]:
    """Accuracy at every d_max from one minimum-norm attack (`min_norm_images`, error-generic):
    `problem.failed` is the judge (still correct under the evaluation's rule)."""
    images, info = min_norm_images(problem, settings)
    everyone = np.arange(problem.x.shape[0])
    return [float(np.mean(problem.failed(im, everyone))) for im in images], info


def curve_images(settings: CurveSettings, problem: CurveProblem) -> tuple[list[np.ndarray], MinNormRun | None]:
    """The attacked crops at every d_max (d_max 0: the clean ones), by `settings.attack`; the minimum-norm run's
    record (None for Algorithm 1 per d_max)."""
    model, aware, norm, precision = problem.model, problem.aware, settings.norm, settings.precision
    if settings.attack == "fmn":
        def algorithm1(steps):  # one budget, from the minimum-norm direction (or a published crop)
            def run(xs, ys, ts, d, start):
                attack = PaperAttack(model, eps=d, norm=norm, steps=steps, reject_aware=aware, precision=precision)
                return attack(xs, ys, ts, x_init=start).images()

            return run

        return min_norm_images(problem, MinNormSettings(
            steps=settings.fmn_steps, patience=settings.patience, precision=precision,
            fallback=algorithm1(settings.fallback_steps),
            polish=algorithm1(settings.polish_steps) if problem.deep else None))
    x, d_grid = problem.x, problem.d_grid
    clean = x.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    nonzero = [d for d in d_grid if d > 0]
    sweep = PaperAttack(model, eps=None, norm=norm, steps=settings.steps, reject_aware=aware,
                        precision=precision).sweep(x, problem.y, nonzero, problem.target)
    return [clean] * (len(d_grid) - len(nonzero)) + [r.images() for r in sweep], None
