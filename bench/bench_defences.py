"""Each defence's added latency per frame on the guard's path, against the bare guard. Prints JSON.

The guard's frame path in-process (`guard_node.on_image` minus ROS): features of one crop, the
classifier's decision, then `OnlineDefences.review` on the crop. A recogniser learns SimWorld7
(`--n-train` crops per class) first; detectors are fitted before timing starts (their refit after a
label is timed separately). Multi-crop runs its 5 views as one batch, smoothing its n0 + n noisy
copies in batches of `batch`: the forwards per frame are reported beside the milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from icub_guard.core import Recognizer, RecognizerConfig
from icub_guard.core.datasets import simworld
from icub_guard.defences.online import OnlineDefences

SPECS = ("noise", "blur", "shift", "noise,blur,shift", "multicrop", "resize_pad", "jpeg", "mahalanobis", "open_set",
         "smoothing", "smoothing:n0=8:n=32:alpha=0.05")
#: network forwards per frame beyond the guard's own one (detectors alone reuse its features)
FORWARDS = {"multicrop": 5, "smoothing": 16 + 128, "smoothing:n0=8:n=32:alpha=0.05": 8 + 32, "mahalanobis": 0,
            "open_set": 0}


def frame_ms(rec: Recognizer, online: OnlineDefences, crops: np.ndarray, repeats: int) -> np.ndarray:
    out = []
    for i in range(repeats):
        c = crops[i % len(crops)]
        t = time.perf_counter()
        f = rec.features(c[None])
        online.review(rec, rec.classify_features(f)[0], c, f)
        out.append(1e3 * (time.perf_counter() - t))
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--n-train", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    train, test = simworld("7", "train", a.n_train), simworld("7", "test", 4)
    rec = Recognizer(RecognizerConfig(weights="random", input_size=a.input_size, device=a.device, crop_size=64))
    rec.fit(rec.features(train.images), train.labels)
    crops = test.images
    frame_ms(rec, OnlineDefences([]), crops, 5)  # warm-up
    bare = frame_ms(rec, OnlineDefences([]), crops, a.repeats)
    rows = {}
    for spec in SPECS:
        online = OnlineDefences(spec.split(","))
        t = time.perf_counter()
        online.review(rec, rec.classify_features(rec.features(crops[:1]))[0], crops[0])  # fits detectors
        fit_ms = 1e3 * (time.perf_counter() - t)
        ms = frame_ms(rec, online, crops, a.repeats if not spec.startswith("smoothing") else max(5, a.repeats // 4))
        rows[spec] = {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
                      "added_median_ms": float(np.median(ms) - np.median(bare)),
                      "x_bare": float(np.median(ms) / np.median(bare)), "network_forwards": 1 + FORWARDS.get(spec, 1),
                      "first_frame_with_fit_ms": fit_ms}
    print(json.dumps({"bench": "defences", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                      "device": str(rec.extractor.device), "torch_threads": torch.get_num_threads(),
                      "load": os.getloadavg(), "input_size": a.input_size, "classes": len(rec.classes),
                      "examples": rec.n_examples,
                      "bare": {"median_ms": float(np.median(bare)), "p95_ms": float(np.percentile(bare, 95))},
                      "defences": rows}, indent=2))


if __name__ == "__main__":
    main()
