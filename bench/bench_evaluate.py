"""One security curve two ways: Algorithm 1 per d_max (today's `evaluate`) vs one fast minimum-norm attack.

SVM-RBF on SimWorld7 features (AlexNet, random weights, `--input-size`), the error-generic curve on
`--n-test` crops per class over `evaluate`'s default d_max grid: Algorithm 1 warm-started sweep with
`evaluate`'s 20 steps, against `min_norm_curve` (FMN, then the same judging of whole-pixel crops
within each d_max). Prints both curves, both times, their ratio, and a check that can FAIL: the fast
curve is never above Algorithm 1's (by more than one crop). Covers one curve, not all of `evaluate`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from icub_guard.attacks import PaperAttack, min_norm_curve
from icub_guard.core.datasets import simworld
from icub_guard.core.features import BackboneSpec, FeatureExtractor
from icub_guard.core.pipeline import GuardModel
from icub_guard.core.svm import make_classifier, select_hyperparameters


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--n-test", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="Algorithm 1 steps per d_max (evaluate's default)")
    ap.add_argument("--fmn-steps", type=int, default=30)
    a = ap.parse_args()
    grid = [0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0]
    fx = FeatureExtractor(BackboneSpec("alexnet", "random", 0, a.input_size), "auto")
    train, test = simworld("7", "train", 50), simworld("7", "test", a.n_test)
    X = fx.extract(train.images)
    hp = select_hyperparameters(X, train.labels, "rbf")
    clf = make_classifier("svm-rbf", C=hp["C"], gamma=hp["gamma"]).fit(X, train.labels)
    model = GuardModel.from_classifier(fx, clf)
    classes = list(clf.classes_)
    x = torch.from_numpy(test.images).to(fx.device, torch.float32)
    y = torch.tensor([classes.index(v) for v in test.labels], device=fx.device)
    truth = np.array(test.labels, dtype=object)

    def judge(imgs, idx):
        return clf.predict(fx.extract(imgs)) == truth[idx]

    everyone = np.arange(len(truth))
    t = time.perf_counter()
    sweep = PaperAttack(model, eps=None, steps=a.steps).sweep(x, y, grid[1:])
    alg1 = [float(np.mean(judge(test.images, everyone)))] + [float(np.mean(judge(r.images(), everyone)))
                                                               for r in sweep]
    t_alg1 = time.perf_counter() - t
    t = time.perf_counter()
    fast, info = min_norm_curve(model, x, y, grid, judge, steps=a.fmn_steps)
    t_fast = time.perf_counter() - t
    never_above = all(f <= g + 1 / len(truth) + 1e-12 for f, g in zip(fast, alg1, strict=True))
    print(json.dumps({
        "bench": "evaluate_curve", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "device": str(fx.device), "load": os.getloadavg(), "input_size": a.input_size, "crops": len(truth),
        "d_max": grid, "algorithm1": {"curve": alg1, "seconds": t_alg1, "steps_per_d_max": a.steps},
        "fmn": {"curve": fast, "seconds": t_fast, "steps": a.fmn_steps, "fallback_samples": info["fallback_samples"],
                "median_norm": float(np.median(info["norms"]))},
        "speedup": t_alg1 / t_fast,
        "checks": {"fmn_never_above_algorithm1": "PASS" if never_above else "FAIL"},
    }, indent=2))


if __name__ == "__main__":
    main()
