"""Each defence's added latency per frame on the guard's path, against the bare guard. Prints JSON.

The guard's frame path in-process (`guard_node.on_image` minus ROS): features of one crop, the
classifier's decision, then `OnlineDefences.review` on the crop. A recogniser learns SimWorld7
(`--n-train` crops per class) first; detectors are fitted before timing starts (the first frame,
fit included, is reported apart). Frames of every configuration are interleaved in a rotating
order, so the machine's noise (large on a shared 2-core VM) falls on all of them alike. Multi-crop
runs its 5 views as one batch, smoothing its n0 + n noisy copies in batches of `batch`: the
forwards per frame are reported beside the milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

# Frames back to back (not 100 ms apart as from a camera) make numpy's OpenBLAS threads, still
# spinning after the classifier's product, fight torch's threads for the 2 cores: every forward then
# takes 2-4x longer (measured: bare frame 35-65 ms, 17 ms with this). One BLAS thread avoids it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch

from icub_guard.core import Recognizer, RecognizerConfig
from icub_guard.defences.online import OnlineDefences
from icub_guard.sim.datasets import simworld

SPECS = ("noise", "blur", "shift", "noise,blur,shift", "multicrop", "resize_pad", "jpeg", "mahalanobis", "open_set",
         "kde", "bu", "kde,bu", "smoothing", "smoothing:n0=8:n=32:alpha=0.05")
#: network forwards per frame beyond the guard's own one (detectors alone reuse its features)
FORWARDS = {"multicrop": 5, "smoothing": 16 + 128, "smoothing:n0=8:n=32:alpha=0.05": 8 + 32, "mahalanobis": 0,
            "open_set": 0, "kde": 0, "bu": 0, "kde,bu": 0}


def one_frame(rec: Recognizer, online: OnlineDefences, crop: np.ndarray) -> float:
    t = time.perf_counter()
    f = rec.features(crop[None])
    online.review(rec, rec.classify_features(f)[0], crop, f)
    return 1e3 * (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--n-train", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--specs", nargs="+", default=list(SPECS), help="defence lists to time (default: all)")
    a = ap.parse_args()
    train, test = simworld("7", "train", a.n_train), simworld("7", "test", 4)
    rec = Recognizer(RecognizerConfig(weights="random", input_size=a.input_size, device=a.device, crop_size=64))
    rec.fit(rec.features(train.images), train.labels)
    crops = test.images
    configs = {"bare": OnlineDefences([]), **{spec: OnlineDefences(spec.split(",")) for spec in a.specs}}
    fit_ms = {}
    for spec, online in configs.items():  # fits the detectors (and warms up)
        t = time.perf_counter()
        online.review(rec, rec.classify_features(rec.features(crops[:1]))[0], crops[0])
        fit_ms[spec] = 1e3 * (time.perf_counter() - t)
    times: dict[str, list[float]] = {spec: [] for spec in configs}
    # interleaved in a rotating order, so this machine's noise hits every config alike; smoothing (its big
    # noisy batches churn the allocator and slow whatever runs next) in a block of its own, after
    light = [s for s in configs if not s.startswith("smoothing")]
    for group in (light, ["bare", *(s for s in configs if s.startswith("smoothing"))]):
        for i in range(a.repeats if group is light else max(5, a.repeats // 3)):
            order = group[i % len(group):] + group[: i % len(group)]
            for spec in order:
                times[spec].append(one_frame(rec, configs[spec], crops[i % len(crops)]))
    bare = np.array(times.pop("bare"))
    rows = {}
    for spec, ms in times.items():
        ms = np.array(ms)
        rows[spec] = {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
                      "added_median_ms": float(np.median(ms) - np.median(bare)),
                      "x_bare": float(np.median(ms) / np.median(bare)), "network_forwards": 1 + FORWARDS.get(spec, 1),
                      "first_frame_with_fit_ms": fit_ms[spec]}
    print(json.dumps({"bench": "defences", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                      "device": str(rec.extractor.device), "torch_threads": torch.get_num_threads(),
                      "load": os.getloadavg(), "input_size": a.input_size, "classes": len(rec.classes),
                      "examples": rec.n_examples,
                      "bare": {"median_ms": float(np.median(bare)), "p95_ms": float(np.percentile(bare, 95))},
                      "defences": rows}, indent=2))


if __name__ == "__main__":
    main()
