"""Issue 19's cross-check at full size: `evaluate`'s attack against torchattacks' APGD on the same 35 crops.

The setting of `bench_secml.py` and `evaluate`'s defaults: SimWorld7, AlexNet (random weights) at 224 px,
SVM-RBF and SVM-adv +5% (thresholds calibrated for 5% more false rejects), `--n-test` crops per class.
Ours: the curve's fast minimum-norm attack and then the ensemble (APGD-CE, APGD-T) on what it left, as
`evaluate` runs it — the reject-blind attacker on SVM-RBF, the reject-aware one on SVM-adv +5%.
Theirs (torchattacks, through `GuardModel.nchw01()`): APGD (CE loss) and APGD-T (DLR, every wrong class),
`--steps` each; against the reject option on threshold-aware logits (each class's score minus its threshold, the
true class's lifted to max(z_y, 0): a wrong class must be accepted, not just the true one rejected — with a separate
"rejected" logit torchattacks stops at the first rejection, which is no success), the per-crop worst case of the two.
Every crop is judged as published (whole pixels within d_max) by the evaluation's rule: correct unless
accepted with a wrong label. Checks that can FAIL: ours is at most each peer's accuracy at every d_max, within
one crop. Runs ~20 min on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from icub_guard.attacks import resolve_precision
from icub_guard.attacks.constraints import quantize
from icub_guard.core import rules
from icub_guard.core.features import BackboneSpec, FeatureExtractor
from icub_guard.core.pipeline import GuardModel
from icub_guard.core.svm import make_classifier, select_hyperparameters
from icub_guard.evaluation.curves import CurveProblem, curve_images, ensemble_images
from icub_guard.evaluation.security import EvalConfig
from icub_guard.sim.datasets import load_dataset


class TrueOrRejected(torch.nn.Module):
    """NCHW [0, 1] → the reject option's logits for a margin attack: each class's score minus its threshold, the
    true class's lifted to max(z_y, 0) ("true or rejected"), so argmax ≠ y means a wrong class accepted above both.

    The labels of the batch being attacked are set by `label_aware` before every forward pass of an attack."""

    def __init__(self, net: torch.nn.Module, thresholds: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("thr", thresholds.float())
        self.y: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x) - self.thr
        if self.y is None or len(self.y) != len(z):
            raise RuntimeError("TrueOrRejected needs the batch's labels (label_aware)")
        zy = z.gather(1, self.y[:, None]).clamp_min(0)
        return z.scatter(1, self.y[:, None], zy)


def label_aware(attack_cls):
    """A torchattacks APGD class that tells `TrueOrRejected` the labels of each batch it attacks (its whole input,
    then each restart's and each target's subset)."""

    class LabelAware(attack_cls):
        def perturb(self, x, y, *args, **kwargs):
            self.model.y = y
            return super().perturb(x, y, *args, **kwargs)

        def attack_single_run(self, x, y):
            self.model.y = y
            return super().attack_single_run(x, y)

    return LabelAware


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-test", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="torchattacks' APGD steps (its default: 10)")
    ap.add_argument("--d-max", type=float, nargs="+", default=[250.0, 500.0, 1000.0])
    ap.add_argument("--precision", default="float32", help="our gradient passes (float32: as torchattacks)")
    ap.add_argument("--only", choices=("svm-rbf", "adaptive"), help="one of the two curves")
    a = ap.parse_args()
    import torchattacks as ta

    cfg = EvalConfig(n_test=a.n_test)
    grid = [0.0, *a.d_max]
    torch.manual_seed(0)
    fx = FeatureExtractor(BackboneSpec(cfg.backbone, cfg.weights, cfg.seed, cfg.input_size), "auto")
    precision = resolve_precision(a.precision, fx.device)
    train, val, test = (load_dataset(cfg.dataset, s, n, seed=cfg.seed)
                        for s, n in (("train", cfg.n_train), ("val", cfg.n_val), ("test", a.n_test)))
    F_tr, F_val = fx.extract(train.images), fx.extract(val.images)
    hp = select_hyperparameters(F_tr, train.labels, "rbf", seed=cfg.seed)
    rbf = make_classifier("svm-rbf", C=hp["C"], gamma=hp["gamma"]).fit(F_tr, train.labels)
    adv5 = make_classifier("svm-adv", C=hp["C"], gamma=hp["gamma"]).fit(F_tr, train.labels)
    adv5.calibrate(F_val, val.labels, cfg.target_false_reject)
    classes = list(rbf.classes_)
    x = torch.from_numpy(test.images).to(fx.device, torch.float32)
    y = torch.tensor([classes.index(v) for v in test.labels], device=fx.device)
    y_np, n, every = y.cpu().numpy(), len(y), np.arange(len(y))

    def judge(clf):
        def failed(images, idx):  # still correct: not accepted with a wrong label
            return ~rules.fooled(clf.predict_indices(fx.extract(images)), y_np[idx])
        return failed

    out: dict = {}
    for name, clf, aware in (("svm-rbf", rbf, False), ("svm-adv+5% (adaptive)", adv5, True)):
        if a.only and a.only not in name:
            continue
        model, failed = GuardModel.from_classifier(fx, clf), judge(clf)
        t = time.perf_counter()
        problem = CurveProblem(model, x, y, grid, failed, aware=aware, deep=False)
        images, _ = curve_images(cfg.curve_settings(precision), problem)
        images, wins = ensemble_images(cfg.ensemble_settings(precision), problem, images)
        ours = [float(np.mean(failed(im, every))) for im in images]
        t_ours = time.perf_counter() - t
        net = model.nchw01() if not aware else TrueOrRejected(model.nchw01(), model.thresholds)
        x01 = x.permute(0, 3, 1, 2) / 255.0
        k = len(classes)
        apgd, apgdt = (label_aware(c) if aware else c for c in (ta.APGD, ta.APGDT))
        peers = {"APGD-CE": lambda d, net=net, c=apgd: c(net, norm="L2", eps=d / 255, steps=a.steps, loss="ce", seed=0),
                 "APGD-T": lambda d, net=net, k=k, c=apgdt: c(net, norm="L2", eps=d / 255, steps=a.steps, n_classes=k,
                                                              seed=0)}
        theirs, published, t_theirs = {}, {}, {}
        for peer, make in peers.items():
            t = time.perf_counter()
            theirs[peer], published[peer] = [ours[0]], [images[0]]
            for d in grid[1:]:
                xa = make(d)(x01, y).permute(0, 2, 3, 1) * 255.0
                crops = quantize(xa.to(x).clamp(0, 255), x, d, "l2").to(torch.uint8).cpu().numpy()
                published[peer].append(crops)
                theirs[peer].append(float(np.mean(failed(crops, every))))
            t_theirs[peer] = time.perf_counter() - t
        worst = [float(np.mean(failed(published["APGD-CE"][i], every) & failed(published["APGD-T"][i], every)))
                 for i in range(len(grid))]
        one = 1 / n + 1e-9
        out[name] = {"ours": ours, "ours_seconds": t_ours, "ensemble_wins": wins, **theirs,
                     "peers_worst_case": worst, "peer_seconds": t_theirs,
                     "checks": {f"ours_at_most_{peer}_within_one_crop": "PASS" if all(
                         o <= c + one for o, c in zip(ours, curve, strict=True)) else "FAIL"
                                for peer, curve in (*theirs.items(), ("peers_worst_case", worst))}}
    print(json.dumps({"bench": "crosscheck_torchattacks", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                      "device": str(fx.device), "load_after": os.getloadavg(), "torchattacks": ta.__version__,
                      "crops": n, "d_max": grid, "precision": precision, "torchattacks_steps": a.steps,
                      "curves": out}, indent=2))


if __name__ == "__main__":
    main()
