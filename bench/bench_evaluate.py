"""The whole `icub-guard evaluate` two ways on the same samples: Algorithm 1 per d_max vs the fast minimum-norm run.

Runs `run_security_evaluation` with `attack="algorithm1"`, float32 (the paper's procedure, what
`evaluate` did before the fast attack) and then with the defaults (`auto` = one fast minimum-norm attack per
attacker, Algorithm 1 as the fallback), same configuration and seed, one after the other. Prints
both wall times, their ratio (target: at least 5), every curve, and checks that can FAIL: on each
attacked classifier's own curve (svm, svm-rbf, the adaptive svm-adv+5%; error-generic and
-specific), and on the reject-blind rows (svm-adv, svm-adv+5% judged on SVM-RBF's crops, which the
fast run's deeper steps take as deep as a sweep), the fast curve is never above Algorithm 1's by
more than one crop. Then the default once more without its ensemble (`ensemble_steps=0`: the curves
before APGD-CE and APGD-T joined): the ensemble may cost at most 1.5× that run, and its curves are never
above it. Runs ~15 min on 2 CPU cores (`--no-algorithm1`: the ensemble's comparison alone);
`--device cuda` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

from icub_guard.core.features import resolve_device
from icub_guard.evaluation import EvalConfig, run_security_evaluation

ATTACKED = (("svm", False), ("svm-rbf", False), ("svm-adv+5%", True))  # (classifier, adaptive attacker)
REJECT_BLIND = (("svm-adv", False), ("svm-adv+5%", False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-test", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--no-algorithm1", action="store_true", help="only the ensemble vs the default without it")
    a = ap.parse_args()
    runs = {}
    for name, attack, ensemble in (("algorithm1", "algorithm1", 0), ("auto", "auto", EvalConfig.ensemble_steps),
                                   ("no_ensemble", "auto", 0)):
        if name == "algorithm1" and a.no_algorithm1:
            continue
        cfg = EvalConfig(n_test=a.n_test, device=a.device, input_size=a.input_size, attack=attack,
                         precision="float32" if attack == "algorithm1" else "auto",  # before: float32
                         ensemble_steps=ensemble)
        runs[name] = run_security_evaluation(cfg, progress=lambda msg: None)
    fast, bare = runs["auto"], runs["no_ensemble"]
    ensemble_above = {f"{c.key.mode}/{c.key.label}": [round(x - y, 3) for x, y in zip(
        c.accuracy, bare.curve(c.key.classifier, c.key.mode, c.key.adaptive).accuracy, strict=True)]
        for c in fast.curves}
    ensemble = {"seconds": fast.timing["total_s"], "without_seconds": bare.timing["total_s"],
                "timing": fast.timing, "without_timing": bare.timing,  # phases: attacks, sanity checks, …
                "ratio": fast.timing["total_s"] / bare.timing["total_s"], "members": fast.attack.get("ensemble"),
                "minus_without": ensemble_above,
                "checks": {"at_most_1.5x_the_default_without_it":
                           "PASS" if fast.timing["total_s"] <= 1.5 * bare.timing["total_s"] else "FAIL",
                           "never_above_the_default_without_it":
                           "PASS" if all(v <= 1e-9 for d in ensemble_above.values() for v in d) else "FAIL"}}
    if a.no_algorithm1:
        print(json.dumps({"bench": "evaluate_ensemble", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                          "device": str(resolve_device(a.device)), "load_after": os.getloadavg(),
                          "crops": a.n_test * 7, "ensemble": ensemble}, indent=2))
        return
    slow = runs["algorithm1"]
    n = a.n_test * 7  # SimWorld7: seven classes
    def minus_algorithm1(curves) -> dict[str, list[float]]:
        out = {}
        for mode in ("generic", "specific"):
            for name, adaptive in curves:
                f, s = fast.curve(name, mode, adaptive), slow.curve(name, mode, adaptive)
                out[f"{mode}/{f.key.label}"] = [a - b for a, b in zip(f.accuracy, s.accuracy, strict=True)]
        return out

    def within_a_crop(diffs: dict) -> str:  # one crop is 1/n
        return "PASS" if all(v <= 1 / n + 1e-9 for d in diffs.values() for v in d) else "FAIL"

    above, blind = minus_algorithm1(ATTACKED), minus_algorithm1(REJECT_BLIND)
    checks = {"speedup_at_least_5": "PASS" if slow.timing["total_s"] >= 5 * fast.timing["total_s"] else "FAIL",
              "fast_never_above_algorithm1_by_more_than_one_crop": within_a_crop(above),
              # SVM-adv (+5%) judging SVM-RBF's crops: the deeper steps must take them as deep as a sweep
              "reject_blind_rows_never_above_algorithm1_by_more_than_one_crop": within_a_crop(blind)}
    print(json.dumps({
        "bench": "evaluate_whole", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "device": str(resolve_device(a.device)),
        "load_after": os.getloadavg(), "input_size": a.input_size, "crops": n, "d_max": slow.d_max,
        "algorithm1": {"seconds": slow.timing["total_s"], "timing": slow.timing, "accuracy": slow.accuracy},
        "fast": {"seconds": fast.timing["total_s"], "timing": fast.timing, "accuracy": fast.accuracy,
                 "attack": fast.attack},
        "speedup": slow.timing["total_s"] / fast.timing["total_s"], "ensemble": ensemble,
        "fast_minus_algorithm1_on_attacked_curves": {k: [round(v, 3) for v in d] for k, d in above.items()},
        "fast_minus_algorithm1_on_reject_blind_rows": {k: [round(v, 3) for v in d] for k, d in blind.items()},
        "sanity_fail": {"algorithm1": [c["check"] for c in slow.sanity if not c["passed"]],
                        "fast": [c["check"] for c in fast.sanity if not c["passed"]]},
        "checks": checks,
    }, indent=2))


if __name__ == "__main__":
    main()
