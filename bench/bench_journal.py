"""What durability costs a label at the paper's scale; prints JSON.

Scale: 28 classes × 100 examples of 4,096-d features (SimWorld28, random AlexNet
weights, as bench_online.py). A teacher label through `TeachingSession.feedback`
is timed with and without the label journal (append + fdatasync before it
returns); the difference is what an acknowledgement that survives kill -9 costs.
Also: one snapshot (model file + compaction) and a start-up that replays
the journal's tail. The journal lives in --dir (default: a temp folder on the
disk the model would use).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from icub_guard.core import Recognizer, RecognizerConfig
from icub_guard.core.journal import LabelJournal
from icub_guard.core.session import Feedback, SessionConfig, TeachingSession
from icub_guard.sim.datasets import simworld

from benchstats import stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--labels", type=int, default=60, help="labels timed per case")
    ap.add_argument("--dir", help="folder for the model and its journal (default: a temp folder)")
    args = ap.parse_args()
    train = simworld("28", "train", args.per_class)
    live = simworld("28", "live", 3)
    rec = Recognizer(RecognizerConfig(weights="random", device="cpu", C=10.0, max_per_class=args.per_class))
    X, Xl = rec.features(train.images), rec.features(live.images)
    folder = Path(args.dir or tempfile.mkdtemp(prefix="icub_guard_bench_journal_"))
    out = {"benchmark": "journal", "examples": len(X), "dim": X.shape[1], "folder": str(folder), "cases": {}}
    rng = np.random.default_rng(0)
    order = rng.choice(len(Xl), args.labels)
    for case in ("no_journal", "journal"):
        rec.fit(X, train.labels)
        model = folder / f"{case}.npz"
        journal = LabelJournal.beside(model) if case == "journal" else None
        s = TeachingSession(rec, SessionConfig.defaults(), journal=journal)
        s.restore(model)
        ms = []
        for i in order:
            did = s.observe(Xl[i]).decision_id
            t = time.perf_counter()
            s.feedback(Feedback(str(live.labels[i]), decision_id=did))
            ms.append(1e3 * (time.perf_counter() - t))
        out["cases"][case] = {"label": stats(ms)}
        if journal is not None:
            appends = []
            for i in order[:30]:
                t = time.perf_counter()
                journal.append(Xl[i : i + 1], str(live.labels[i]))
                appends.append(1e3 * (time.perf_counter() - t))
            out["cases"][case]["append_fdatasync_only"] = stats(appends)
            t = time.perf_counter()
            s.snapshot(model)
            out["cases"][case]["snapshot_and_compact_s"] = time.perf_counter() - t
            for i in order[:20]:  # a tail to replay
                s.feedback(Feedback(str(live.labels[i]), decision_id=s.observe(Xl[i]).decision_id))
            fresh = TeachingSession(Recognizer(rec.config, extractor=rec.extractor), SessionConfig.defaults(),
                                    journal=LabelJournal.beside(model))
            t = time.perf_counter()
            n = fresh.restore(model)
            out["cases"][case]["startup_load_and_replay"] = {"seconds": time.perf_counter() - t, "replayed": n}
            out["cases"][case]["files"] = sorted(p.name for p in folder.iterdir() if p.name.startswith("journal"))
    a, b = out["cases"]["no_journal"]["label"], out["cases"]["journal"]["label"]
    out["added_by_journal_ms"] = {"median": b["median_ms"] - a["median_ms"], "p95": b["p95_ms"] - a["p95_ms"]}
    out["target"] = "p95 added <= 5 ms"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
