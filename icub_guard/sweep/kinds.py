"""The evaluations a sweep can run per cell, one entry each: config, how to run it in-process, what it shares.

A new evaluation is one more `EvaluationKind` in `REGISTRY`: its config dataclass,
a `run(cfg, prepared)` that returns its result, a `summarise(result)` that gives the results table its curves
and checks, and, if it starts from the same crops, features and classifiers as `evaluate`, `shares=True`
(its config then needs `PrepKey`'s fields) and a `prepared=` argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..evaluation.prepared import Prepared, PrepKey


@dataclass(frozen=True)
class EvaluationKind:
    """One evaluation as a sweep runs it.

    `summarise(result)` → {"x_name", "x", "curves": {label: accuracy per x}, "checks": [{check, passed,
    detail}], "timing", "result": the evaluation's JSON}. `shares`: its cells take a `Prepared` (data,
    features, fitted classifiers computed once per `PrepKey`); `linear`: that preparation includes the
    linear SVM.
    """

    name: str
    config: type
    run: Callable[[object, Prepared | None], object]
    summarise: Callable[[object], dict]
    shares: bool = False
    linear: bool = True

    def prep_key(self, cfg) -> PrepKey | None:
        return PrepKey.of(cfg, self.linear) if self.shares else None


def _run_security(cfg, prepared):
    from ..evaluation import run_security_evaluation

    return run_security_evaluation(cfg, None, prepared)


def _summarise_security(r) -> dict:
    return {"x_name": "d_max", "x": r.d_max,
            "curves": {f"{c.key.label} ({c.key.mode})": c.accuracy for c in r.curves},
            "rejected": {f"{c.key.label} ({c.key.mode})": c.rejected for c in r.curves},
            "checks": r.sanity, "timing": r.timing, "result": r.to_json()}


def _run_defences(cfg, prepared):
    from ..evaluation import run_defence_evaluation

    return run_defence_evaluation(cfg, None, prepared)


def _summarise_defences(r) -> dict:
    curves = {"reject option only": r.undefended["accuracy"]}
    rejected = {"reject option only": r.undefended["rejected"]}
    for d in r.defences:
        for attacker in ("non_adaptive", "adaptive"):
            label = f"{d.name} ({attacker.replace('_', '-')})"
            curves[label], rejected[label] = d.accuracy[attacker], d.rejected[attacker]
    return {"x_name": "d_max", "x": r.d_max, "curves": curves, "rejected": rejected, "checks": r.sanity,
            "timing": r.timing, "result": r.to_json()}


def _run_teaching(cfg, prepared):
    from ..evaluation import run_teaching_evaluation

    return run_teaching_evaluation(cfg)


def _summarise_teaching(r) -> dict:
    rows = r.summary()
    rounds = r.config["rounds"]
    return {"x_name": "round", "x": list(range(1, rounds + 1)),
            "curves": {f"{row['scenario']}, screening {row['screening']}": row["curve"] for row in rows},
            "checks": [], "timing": r.timing, "result": {"config": r.config, "summary": rows, "timing": r.timing}}


def _run_openset(cfg, prepared):
    from ..evaluation.openset import backbone_choices, run_openset_evaluation

    return run_openset_evaluation(cfg, backbone_choices([cfg.weights], cfg.backbone, cfg.input_size or None))


def _summarise_openset(r) -> dict:
    """The attacked untaught crops still rejected per d_max (its curve), AUROC / FPR@95 per score and OOD set (a
    table), and one check: that curve does not rise with d_max by more than one crop."""
    from ..evaluation.curves import rises

    (column,) = r.backbones.values()
    d_max = list(r.config["d_max"])
    curves, checks = {}, []
    if "adversarial_still_rejected" in column:
        still = column["adversarial_still_rejected"]
        curves["untaught crops attacked: still rejected"] = still
        n = r.config["n_adv"] * len(r.config["untaught"])
        up = rises(still, n)
        checks.append({"check": "attacked untaught crops still rejected does not rise with d_max (by more than one "
                                "crop)", "passed": not up,
                       "detail": " ".join(f"{v:.2f}" for v in still)
                       + (f"; rises after d_max {', '.join(f'{d_max[i]:g}' for i in up)}" if up else "")})
    auroc = {f"{score} (AUROC / FPR@95)": {ood: f"{m[score]['auroc']:.3f} / {m[score]['fpr95']:.2f}"
                                           for ood, m in column["ood"].items()}
             for score in next(iter(column["ood"].values())) if score != "rejected_by_guard"}
    return {"x_name": "d_max", "x": d_max, "curves": curves, "checks": checks, "timing": r.timing,
            "tables": {"AUROC / FPR@95 per score (rows) and OOD set (columns)": auroc}, "result": r.to_json()}


def _registry() -> dict[str, EvaluationKind]:
    from ..evaluation import DefenceEvalConfig, EvalConfig, TeachingEvalConfig
    from ..evaluation.openset import OpensetCellConfig

    kinds = [EvaluationKind("evaluate", EvalConfig, _run_security, _summarise_security, shares=True),
             EvaluationKind("evaluate-defences", DefenceEvalConfig, _run_defences, _summarise_defences, shares=True,
                            linear=False),
             EvaluationKind("evaluate-teaching", TeachingEvalConfig, _run_teaching, _summarise_teaching),
             EvaluationKind("evaluate-openset", OpensetCellConfig, _run_openset, _summarise_openset)]
    return {k.name: k for k in kinds}


#: every evaluation a sweep file may name (`evaluation:`), as the CLI's subcommands are named
REGISTRY: dict[str, EvaluationKind] = _registry()
