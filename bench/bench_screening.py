"""What screening a teacher's label costs at the paper's scale; prints JSON.

Scale: 28 classes × 100 examples of 4,096-d features (SimWorld28, random AlexNet
weights, as bench_journal.py). A label through `TeachingSession.feedback` is
timed with screening off and on (nearest stored examples, the model's scores,
the teacher's trust, and — with two teachers — the containment count). Labels
are true, from an honest teacher; one that screening holds is asked back and
confirmed, and the confirmation's time is counted in that label's.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from icub_guard.core import Recognizer, RecognizerConfig
from icub_guard.core.screening import ScreeningConfig
from icub_guard.core.session import Feedback, SessionConfig, TeachingSession
from icub_guard.sim.datasets import simworld

from benchstats import stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--labels", type=int, default=60, help="labels timed per case")
    args = ap.parse_args()
    train = simworld("28", "train", args.per_class)
    live = simworld("28", "live", 3)
    rec = Recognizer(RecognizerConfig(weights="random", device="cpu", C=10.0, max_per_class=args.per_class))
    X, Xl = rec.features(train.images), rec.features(live.images)
    out = {"benchmark": "screening", "examples": len(X), "dim": X.shape[1], "cases": {}}
    order = np.random.default_rng(0).choice(len(Xl), args.labels)
    for case, screening, teachers in (("off", False, ["alice"]), ("on", True, ["alice"]),
                                      ("on, two teachers", True, ["alice", "bob"])):
        rec.fit(X, train.labels)
        s = TeachingSession(rec, SessionConfig.defaults(), screening=ScreeningConfig.defaults(enabled=screening))
        ms, asked = [], 0
        for n, i in enumerate(order):
            did = s.observe(Xl[i]).decision_id
            who, truth = teachers[n % len(teachers)], str(live.labels[i])
            t = time.perf_counter()
            out_ = s.feedback(Feedback(truth, decision_id=did, teacher=who))
            if out_.query is not None:
                asked += 1
                s.feedback(Feedback(truth, query_id=out_.query.query_id, teacher=who))
            ms.append(1e3 * (time.perf_counter() - t))
        out["cases"][case] = {"label": stats(ms), "asked_back": asked, "labels": len(order)}
    off, on = out["cases"]["off"]["label"], out["cases"]["on"]["label"]
    out["added_median_ms"] = on["median_ms"] - off["median_ms"]
    out["added_p95_ms"] = on["p95_ms"] - off["p95_ms"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
