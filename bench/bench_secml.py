"""One security curve: what `evaluate` draws (the fast minimum-norm run and the ensemble on what it left) vs
SecML 0.13's CAttackEvasionPGD and CAttackEvasionPGDLS (the paper's PGD with line search) per d_max.

The same SVM-RBF on SimWorld7 features (AlexNet, random weights, 224 px), the same `--n-test` crops
per class, `evaluate`'s d_max grid, the error-generic curve judged by the same rule. SecML attacks
the same pixels → scores module through its PyTorch wrapper (NCHW in [0, 1], d_max / 255, float32),
`max_iter` = `evaluate`'s Algorithm 1 steps, one run per d_max, as its documentation does. Our
gradient passes run at `--precision` (default float32: equal precision with SecML; "auto" is what
`evaluate` would pick here, bfloat16 on an AMX CPU). Prints the curves, times, the ratios (target:
at least 20 against each) and Algorithm 1's time for the same curve, with checks that can FAIL.

SecML 0.13 pins numpy < 2 and matplotlib 3.0, so it runs in an environment of its own, not `.venv`:
`make bench-secml` builds `.venv-secml` (numpy 1.26, matplotlib 3.8, SecML with --no-deps) and runs this.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

from icub_guard.attacks import PaperAttack, resolve_precision
from icub_guard.attacks.constraints import quantize
from icub_guard.core.features import BackboneSpec, FeatureExtractor
from icub_guard.core.pipeline import GuardModel
from icub_guard.core.svm import make_classifier, select_hyperparameters
from icub_guard.evaluation.curves import CurveProblem, curve_images, ensemble_images
from icub_guard.evaluation.security import EvalConfig
from icub_guard.sim.datasets import simworld


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-test", type=int, default=5)
    ap.add_argument("--no-algorithm1", action="store_true", help="skip timing Algorithm 1's curve")
    ap.add_argument("--no-pgd-ls", action="store_true", help="skip SecML's PGD-LS (the slowest part)")
    ap.add_argument("--precision", default="float32", help="our gradient passes: float32 (equal to SecML), auto")
    a = ap.parse_args()
    try:
        import secml  # noqa: F401
        from secml.adv.attacks.evasion import CAttackEvasionPGD, CAttackEvasionPGDLS
        from secml.array import CArray
        from secml.ml.classifiers import CClassifierPyTorch
    except ImportError as exc:
        sys.exit(f"bench_secml needs SecML 0.13 in its own environment: run `make bench-secml` ({exc})")
    cfg = EvalConfig()
    grid = [float(d) for d in cfg.d_max]
    torch.manual_seed(0)
    fx = FeatureExtractor(BackboneSpec("alexnet", "random", 0, cfg.input_size), "auto")
    train, test = simworld("7", "train", cfg.n_train), simworld("7", "test", a.n_test)
    X = fx.extract(train.images)
    hp = select_hyperparameters(X, train.labels, "rbf", seed=0)
    clf = make_classifier("svm-rbf", C=hp["C"], gamma=hp["gamma"]).fit(X, train.labels)
    model = GuardModel.from_classifier(fx, clf)
    classes = list(clf.classes_)
    x = torch.from_numpy(test.images).to(fx.device, torch.float32)
    y = torch.tensor([classes.index(v) for v in test.labels], device=fx.device)
    truth = np.array(test.labels, dtype=object)
    everyone = np.arange(len(truth))

    def judge(imgs, idx):
        return clf.predict(fx.extract(imgs)) == truth[idx]

    precision = resolve_precision(a.precision, fx.device)
    t = time.perf_counter()  # exactly what `evaluate` runs for this curve: the curve's attack, then the ensemble
    problem = CurveProblem(model, x, y, grid, judge, deep=False)
    images, info = curve_images(cfg.curve_settings(precision), problem)
    images, wins = ensemble_images(cfg.ensemble_settings(precision), problem, images)
    fast = [float(np.mean(judge(im, everyone))) for im in images]
    t_fast = time.perf_counter() - t

    h, w = test.images.shape[1:3]
    net = model.nchw01()
    sclf = CClassifierPyTorch(net, pretrained=True, pretrained_classes=CArray(list(range(len(classes)))),
                              input_shape=(3, h, w), batch_size=len(truth))
    x01 = CArray(x.permute(0, 3, 1, 2).reshape(len(truth), -1).cpu().numpy() / 255.0)
    y_c = CArray(y.cpu().numpy())
    def secml_run(attack_class, **kw) -> tuple[list[float], float]:
        t = time.perf_counter()
        curve = [float(np.mean(judge(test.images, everyone)))]
        for d in grid[1:]:
            pgd = attack_class(sclf, double_init=False, distance="l2", dmax=d / 255.0, lb=0.0, ub=1.0,
                               solver_params={"eta": d / 255.0 / 4, "max_iter": cfg.steps, "eps": 1e-4, **kw})
            _, _, adv_ds, _ = pgd.run(x01, y_c)
            xa = torch.from_numpy(adv_ds.X.tondarray().reshape(len(truth), 3, h, w)).permute(0, 2, 3, 1) * 255.0
            imgs = quantize(xa.to(x.device, torch.float32).clamp(0, 255), x, d, "l2").to(torch.uint8).cpu().numpy()
            curve.append(float(np.mean(judge(imgs, everyone))))
        return curve, time.perf_counter() - t

    secml_curve, t_secml = secml_run(CAttackEvasionPGD)
    ls_curve, t_ls = (None, None) if a.no_pgd_ls else secml_run(CAttackEvasionPGDLS)

    t_alg1, alg1 = None, None
    if not a.no_algorithm1:
        t = time.perf_counter()
        sweep = PaperAttack(model, eps=None, steps=cfg.steps).sweep(x, y, grid[1:])
        alg1 = [float(np.mean(judge(test.images, everyone)))] + [float(np.mean(judge(r.images(), everyone)))
                                                                   for r in sweep]
        t_alg1 = time.perf_counter() - t
    one = 1 / len(truth) + 1e-12
    print(json.dumps({
        "bench": "secml_curve", "machine": f"{platform.machine()}, {os.cpu_count()} cores", "device": str(fx.device),
        "load_after": os.getloadavg(), "torch": torch.__version__, "numpy": np.__version__,
        "secml": sys.modules["secml"].__version__, "crops": len(truth), "d_max": grid,
        "fast": {"curve": fast, "seconds": t_fast, "fmn_steps": cfg.fmn_steps, "precision": precision,
                 "fallback_runs": info.fallback_runs, "ensemble_steps": cfg.ensemble_steps, "ensemble_wins": wins},
        "secml_pgd": {"curve": secml_curve, "seconds": t_secml, "max_iter": cfg.steps, "precision": "float32"},
        "secml_pgd_ls": {"curve": ls_curve, "seconds": t_ls, "max_iter": cfg.steps, "precision": "float32"},
        "algorithm1": {"curve": alg1, "seconds": t_alg1, "steps_per_d_max": cfg.steps, "precision": "float32"},
        "speedup_vs_secml": t_secml / t_fast, "speedup_vs_secml_pgd_ls": None if t_ls is None else t_ls / t_fast,
        "algorithm1_vs_secml": None if t_alg1 is None else t_secml / t_alg1,
        "checks": {"speedup_vs_secml_at_least_20": "PASS" if t_secml >= 20 * t_fast else "FAIL",
                   **({} if t_ls is None else
                      {"speedup_vs_secml_pgd_ls_at_least_20": "PASS" if t_ls >= 20 * t_fast else "FAIL"}),
                   **{f"fast_never_above_{name}": "PASS" if all(f <= s + one for f, s in zip(fast, ref, strict=True))
                      else "FAIL" for name, ref in (("secml_pgd", secml_curve), ("secml_pgd_ls", ls_curve))
                      if ref is not None}},
    }, indent=2))


if __name__ == "__main__":
    main()
