"""`icub-guard sweep` scaling: the same 8-cell sweep with 1 and with 2 Ray workers; shared extractions. Prints JSON.

The cells are small real `evaluate` runs (resnet18 random weights at 64 px, 3 training crops per class, three
attacked crops per class, 10 steps, d_max 0 and 1000, the ensemble and the slow checks off: a few seconds of
work each, so that Ray's start-up of its workers does not decide the ratio), 2 attacks × 2 calibrations ×
2 seeds: two shared preparations (one per seed), each computed once and used by 4 cells. Each worker count runs
in a fresh process (`icub-guard sweep run --workers N`, Ray started inside it) on a fresh results table.

`speedup` is the 1-worker sweep's wall time (first task submitted to last result, Ray's worker start-up
included) over the 2-worker one's; `process_s` adds Ray's own start and stop. The machine's load average
before and after each run is printed beside it: on a shared machine the speedup says as much about the
neighbours as about the sweep.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SWEEP = {"evaluation": "evaluate", "retries": 0,
         "fixed": {"n_train": 3, "n_val": 3, "n_test": 3, "d_max": [0, 1000], "steps": 10, "fmn_steps": 10,
                   "backbone": "resnet18", "input_size": 64, "device": "cpu", "ensemble_steps": 0,
                   "binarization": 0, "square_queries": 0, "adaptive": False},
         "axes": {"attack": ["fmn", "algorithm1"], "target_false_reject": [0.05, 0.1], "seed": [0, 1]}}


def run(workers: int, tmp: Path) -> dict:
    path = tmp / f"bench-{workers}.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    load_before = os.getloadavg()
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "icub_guard.cli", "-q", "sweep", "run", str(path),
                          "--workers", str(workers)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    process_s = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"sweep with {workers} worker(s) failed:\n{out.stdout}\n{out.stderr}")
    line = out.stdout.strip().splitlines()[-1]  # "8 done, 0 failed, ...; 2 shared preparation(s); 123 s"
    with sqlite3.connect(tmp / f"bench-{workers}.sqlite") as con:
        rows = con.execute("SELECT status, seconds, shared FROM cells").fetchall()
    tokens = {json.loads(s)["token"] for _, _, s in rows}
    return {"workers": workers, "cells": len(rows), "done": sum(r[0] == "done" for r in rows),
            "sweep_wall_s": float(line.rsplit(";", 1)[1].strip().removesuffix(" s")), "process_s": process_s,
            "cell_seconds_sum": sum(r[1] for r in rows), "extractions": len(tokens),
            "load_avg_before": load_before, "load_avg_after": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=1, help="rounds; every other round runs the counts in reverse")
    args = ap.parse_args()
    runs = []
    for i in range(args.repeat):
        for w in args.workers if i % 2 == 0 else args.workers[::-1]:
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(run(w, Path(tmp)))
    wall = {w: statistics.median(r["sweep_wall_s"] for r in runs if r["workers"] == w) for w in args.workers}
    out = {"benchmark": "sweep", "cpus": os.cpu_count(), "sweep": SWEEP, "runs": runs, "median_wall_s": wall,
           "note": "the wall times include Ray starting its workers (each imports torch); other work may have "
                   "been running on this machine: see the load averages"}
    if 1 in wall and 2 in wall:
        out["speedup_2_workers"] = wall[1] / wall[2]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
