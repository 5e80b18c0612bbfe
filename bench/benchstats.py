"""What every benchmark reports about a list of timings, and the one way a call is timed."""

from __future__ import annotations

import time

import numpy as np


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)), "max_ms": float(a.max()),
            "n": len(a)}


def median_seconds(fn, reps: int) -> float:
    """The median wall time of `fn()` over `reps` calls after one warm-up (a CUDA device synchronised per call)."""
    import torch

    fn()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t.append(time.perf_counter() - t0)
    return float(np.median(t))
