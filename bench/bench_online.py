"""Online update latency vs a full retrain at the paper's scale; prints JSON.

Scale: 28 classes × 100 examples = 2,800 examples of 4,096-d AlexNet fc7
features (SimWorld28, random weights: same geometry class as real features,
L2-normalised). Measures one teacher label of a known class and of a new class
(features given, and crop given so the backbone forward is included), with and
without the per-class budget that makes every label evict one example; and the
classification of one frame's features at that scale.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from icub_guard.core import Recognizer, RecognizerConfig
from icub_guard.core.svm import OneVsAllSVC
from icub_guard.sim.datasets import simworld

from benchstats import stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--labels", type=int, default=40, help="teacher labels timed per case")
    ap.add_argument("--C", type=float, default=10.0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    train = simworld("28", "train", args.per_class)
    live = simworld("28", "live", 2)
    render_s = time.perf_counter() - t0
    rec = Recognizer(RecognizerConfig(weights="random", device="cpu", C=args.C))
    t0 = time.perf_counter()
    X = rec.features(train.images)
    Xl = rec.features(live.images)
    extract_s = time.perf_counter() - t0
    gamma = float(OneVsAllSVC(gamma="median").fit(X[:64], train.labels[:64]).gamma_)

    def fresh(budget):
        return OneVsAllSVC(kernel="rbf", C=args.C, gamma=gamma, reject=True, max_per_class=budget)

    t0 = time.perf_counter()
    fresh(None).fit(X, train.labels)
    full_s = time.perf_counter() - t0
    clf = fresh(None).fit(X, train.labels)
    clf.decision_function(Xl[:1])
    dec = []
    for i in range(40):
        t = time.perf_counter()
        clf.decision_function(Xl[i : i + 1])
        dec.append(1e3 * (time.perf_counter() - t))
    out = {"benchmark": "online_update", "examples": len(X), "classes": len(set(train.labels)), "dim": X.shape[1],
           "setup": {"render_s": render_s, "extract_s": extract_s}, "full_retrain_s": full_s,
           "decision_one_frame": stats(dec), "cases": {}}
    rng = np.random.default_rng(0)
    for budget in (None, args.per_class):
        name = "unbounded" if budget is None else f"budget_{budget}_per_class"
        clf = fresh(budget).fit(X, train.labels)
        rec.classifier, rec._model = clf, None
        known, crop_ms, new = [], [], []
        for i in rng.choice(len(Xl), args.labels):
            t = time.perf_counter()
            clf.partial_fit(Xl[i : i + 1], [live.labels[i]])
            known.append(1e3 * (time.perf_counter() - t))
        for i in rng.choice(len(Xl), max(5, args.labels // 4)):
            t = time.perf_counter()
            rec.learn(live.images[i], live.labels[i])  # crop → features → update
            crop_ms.append(1e3 * (time.perf_counter() - t))
        for j in range(max(5, args.labels // 8)):
            x = Xl[rng.integers(len(Xl))] + 0.05 * rng.normal(size=X.shape[1]).astype(np.float32)
            t = time.perf_counter()
            clf.partial_fit((x / np.linalg.norm(x))[None], [f"newobject{j}"])
            new.append(1e3 * (time.perf_counter() - t))
        out["cases"][name] = {"known_class_features": stats(known), "known_class_crop": stats(crop_ms),
                              "new_class_features": stats(new),
                              "known_median_over_full_retrain": float(np.median(known) / 1e3 / full_s),
                              "examples_after": clf.n_examples_}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
