"""guard_node end to end: image published → label received, vs the bare backbone. Prints JSON.

Starts guard_node as a real process (localhost DDS, its own domain id), teaches it
SimWorld7 through its feedback topic, then measures (1) latency: one frame at a
time, publish → label; (2) rate: frames published at 4× the guard's speed for
`--seconds`, labels received per second (the guard keeps only the newest frame).
The reference is the bare backbone forward (batch 1) on the same crops, in-process.
`--defences` sets the node's `defences` parameter (e.g. "multicrop" or "kde,bu"): run it once
bare and once per list for each defence's added latency on the node.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

import rclpy
import torch
from std_msgs.msg import String

from icub_guard.core.features import BackboneSpec, FeatureExtractor
from icub_guard.ros.convert import rgb_to_image
from icub_guard.sim.world import TabletopSim, simworld_objects

from ros_harness import Harness, start_node, stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--defences", default="", help="the guard's defences parameter (empty: the reject option alone)")
    args = ap.parse_args()
    with TabletopSim(simworld_objects("7"), 128, seed=0) as sim:
        frames = [sim.render(k, i, stream=3) for i in range(6) for k in range(7)]
    work = Path(tempfile.mkdtemp())
    proc = start_node("guard_node", {"weights": "random", "input_size": args.input_size, "device": "cpu",
                                     "model_path": "", "query_rate_limit": 100.0, "debug_image": False,
                                     "defences": args.defences},
                      work / "guard.log")
    rclpy.init()
    h = Harness("bench_guard")
    try:
        h.wait_for(lambda: any("guard_node" in k for k in h.diag), 120, "guard_node up")
        for f in frames[:21]:  # teach 3 frames of each object
            d = h.frame_and_decision(f.image, f.roi)
            key = {"query_id": d["query_id"]} if d["query_id"] is not None else {"decision_id": d["id"]}
            h.pub_feedback.publish(String(data=json.dumps({**key, "label": f.label})))
            h.spin_for(0.05)
        h.spin_for(1.0)
        lat = []
        test = frames[21:]
        for i in range(args.frames):
            f = test[i % len(test)]
            n = len(h.msgs["label"])
            t0 = time.perf_counter()
            h.send_frame(f.image)
            h.wait_for(lambda n=n: len(h.msgs["label"]) > n, 30, "label")
            lat.append(1e3 * (time.perf_counter() - t0))
        period = max(np.median(lat) / 4e3, 0.002)
        n0, t0, sent = len(h.msgs["label"]), time.perf_counter(), 0
        msgs = [rgb_to_image(f.image) for f in test]
        while time.perf_counter() - t0 < args.seconds:
            h.pub_image.publish(msgs[sent % len(msgs)])
            sent += 1
            rclpy.spin_once(h, timeout_sec=0.0)  # take in labels without blocking
            time.sleep(period)
        h.spin_for(1.0)
        got = len(h.msgs["label"]) - n0
        decisions = h.decisions()[-got:]
        node_ms = [d["latency_ms"] for d in decisions]
    finally:
        h.destroy_node()
        rclpy.shutdown()
        stop(proc)
    fx = FeatureExtractor(BackboneSpec("alexnet", "random", 0, args.input_size), "cpu")
    crops = [torch.from_numpy(f.image[None]).float() for f in test]
    with torch.inference_mode():
        pre = [fx.preprocess(c) for c in crops]
        fx.trunk(pre[0])
        t = time.perf_counter()
        for i in range(args.frames):
            fx.trunk(pre[i % len(pre)])
        bare = 1e3 * (time.perf_counter() - t) / args.frames
    print(json.dumps({
        "benchmark": "guard_end_to_end", "input_size": args.input_size, "classes": 7, "defences": args.defences,
        "load": os.getloadavg(),
        "latency_ms": {"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95))},
        "node_processing_ms_median": float(np.median(node_ms)) if node_ms else None,
        "flood": {"published_per_s": sent / args.seconds, "labels_per_s": got / args.seconds},
        "bare_backbone_forward_ms": bare,
        "latency_over_bare": float(np.median(lat) / bare),
    }, indent=2))


if __name__ == "__main__":
    main()
