"""Attack speed vs the physical limit of a gradient attack; default `evaluate` wall time. Prints JSON.

One gradient step of any attack needs one forward + backward pass of the whole
pixels → scores chain; the bare backbone's forward + backward on the same batch
is the floor. `--evaluate` also times a default `icub-guard evaluate` run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from icub_guard.attacks import BIM, PaperAttack
from icub_guard.core import GuardModel, make_classifier
from icub_guard.core.features import BackboneSpec, FeatureExtractor
from icub_guard.sim.datasets import simworld


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--evaluate", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    fx = FeatureExtractor(BackboneSpec("alexnet", "random", 0, args.input_size), args.device)
    train = simworld("7", "train", 20)
    clf = make_classifier("svm-rbf", C=10.0).fit(fx.extract(train.images), train.labels)
    model = GuardModel.from_classifier(fx, clf)
    test = simworld("7", "test", max(1, args.batch // 7 + 1)).subset(slice(0, args.batch))
    x = torch.from_numpy(test.images).to(fx.device, torch.float32)
    y = torch.tensor([list(clf.classes_).index(v) for v in test.labels], device=fx.device)
    sync = torch.cuda.synchronize if fx.device.type == "cuda" else (lambda: None)

    def bare_step():
        xx = fx.preprocess(x).detach().requires_grad_(True)
        fx.trunk(xx).sum().backward()

    bare_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        bare_step()
    sync()
    bare = (time.perf_counter() - t0) / args.steps
    out = {"benchmark": "attacks", "device": str(fx.device), "batch": args.batch, "input_size": args.input_size,
           "bare_forward_backward_s": bare, "bare_images_per_s": args.batch / bare, "attacks": {}}
    for name, atk in (("paper_l2", PaperAttack(model, eps=1000.0, steps=args.steps)),
                      ("bim_linf", BIM(model, eps=8.0, steps=args.steps))):
        atk(x[:2], y[:2])  # warm-up
        sync()
        t0 = time.perf_counter()
        r = atk(x, y)
        sync()
        dt = time.perf_counter() - t0
        n = r.gradient_evals
        out["attacks"][name] = {"seconds": dt, "gradient_evals": n, "iterations_per_s": n / dt,
                                "image_iterations_per_s": n * args.batch / dt,
                                "fraction_of_bare_limit": (n * args.batch / dt) / (args.batch / bare),
                                "success_rate": r.success_rate}
    if args.evaluate:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "icub_guard.cli", "-q", "evaluate", "--weights", "random",
                            "--out", d], check=True, capture_output=True)
            out["evaluate_default_wall_s"] = time.perf_counter() - t0
            res = json.load(open(f"{d}/results.json"))
            out["evaluate_default_sanity_passed"] = all(c["passed"] for c in res["sanity"])
            out["evaluate_default_timing"] = res["timing"]
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
