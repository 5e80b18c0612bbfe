"""What every benchmark reports about a list of timings."""

from __future__ import annotations

import numpy as np


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)), "max_ms": float(a.max()),
            "n": len(a)}
