"""guard_node end to end: image published → label received, vs the bare backbone. Prints JSON.

Starts guard_node as a real process (localhost DDS, its own domain id), teaches it
SimWorld7 through its feedback topic, then measures (1) latency: one frame at a
time, publish → label; (2) rate: frames published at 4× the guard's speed for
`--seconds`, labels received per second (the guard keeps only the newest frame).
The reference is the bare backbone forward (batch 1) on the same crops, in-process.
`--defences` sets the node's `defences` parameter (e.g. "multicrop" or "kde,bu"): run it once
bare and once per list for each defence's added latency on the node.

`messages` compares, in this process, what one frame's decision costs to publish and read as the typed
`icub_guard_msgs/Decision` (build from the core's record, serialize, deserialize, back to the record)
against the JSON-in-`std_msgs/String` it replaced (dumps, serialize, deserialize, loads), for 7 classes;
`--messages-only` runs just that (no node, seconds).

`regions` measures, in this process, one frame with 8 regions (`Guard.frame_regions`: one batched forward)
against one region, at the node's input size; the target is at most 2x. `--regions-only` runs just that.
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
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header, String

from icub_guard.core import jsonio
from icub_guard.core.features import SHIPPED_WEIGHTS, BackboneSpec, FeatureExtractor
from icub_guard.ros import messages
from icub_guard.ros.convert import rgb_to_image
from icub_guard.sim.world import TabletopSim, simworld_objects

from benchstats import median_seconds
from ros_harness import Harness, start_node, stop


def message_cost(repeats: int = 3000) -> dict:
    """Microseconds per decision, typed message vs JSON string, each way end to end (median of 5 runs)."""
    classes = ["mug", "duck", "teddy", "ball", "car", "phone", "book"]
    rng = np.random.default_rng(0)
    body = {"schema": "icub_guard/decision@1", "id": 12345, "label": "duck", "accepted": True, "reason": "accepted",
            "scores": {c: float(v) for c, v in zip(classes, rng.normal(size=7), strict=True)}, "margin": 0.31,
            "thresholds": dict.fromkeys(classes, 0.0), "stages": {"classifier": 0.4}, "certified_radius": None,
            "notes": [], "query_id": None, "roi": [10, 20, 64, 64], "roi_source": "topic", "latency_ms": 41.5,
            "stamp": {"sec": 1, "nanosec": 2}, "frame_id": "camera"}
    header = Header(frame_id="camera")

    def typed():  # the core's record is strict JSON already (`decision_payload`): both start from it
        m = messages.decision_msg(body, header)
        return messages.decision_body(deserialize_message(serialize_message(m), messages.Decision))

    def as_json():
        m = String(data=jsonio.dumps(body))
        return jsonio.loads(deserialize_message(serialize_message(m), String).data)

    out = {}
    for name, fn in (("typed_us", typed), ("json_us", as_json)):
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(repeats):
                fn()
            runs.append(1e6 * (time.perf_counter() - t) / repeats)
        out[name] = float(np.median(runs))
    out["bytes"] = {"typed": len(serialize_message(messages.decision_msg(body, header))),
                    "json": len(serialize_message(String(data=jsonio.dumps(body))))}
    return out


def region_cost(input_size: int, frames, repeats: int = 8, weights: str = "random") -> dict:
    """Milliseconds per frame with 1 and with 8 regions (medians), a trained 7-class guard, in this process
    (`weights`: random AlexNet, or simworld, simworld2: the project's SimNets), and the backbone's forward alone on
    the same crops: the floor a frame's ratio can reach on this machine."""
    from icub_guard.core.guard import Guard
    from icub_guard.core.recognizer import Recognizer, RecognizerConfig

    torch.manual_seed(0)
    rec = Recognizer(RecognizerConfig(weights=weights, input_size=input_size, device="cpu"))
    rec.fit(np.stack([rec.crop(f.image, f.roi)[0] for f in frames[:21]]), [f.label for f in frames[:21]])
    guard = Guard(rec)
    image = np.concatenate([np.concatenate([f.image for f in frames[21 + 4 * r: 25 + 4 * r]], 1) for r in (0, 1)])
    side = frames[0].image.shape[0]
    boxes = [(side * (k % 4) + 8, side * (k // 4) + 8, side - 16, side - 16) for k in range(8)]
    crops = np.stack([rec.crop(image, b)[0] for b in boxes])
    out = {}
    for n in (1, 8):
        out[f"{n}_regions_ms"] = 1e3 * median_seconds(lambda n=n: guard.frame_regions(image, boxes[:n]), repeats)
        out[f"forward_{n}_ms"] = 1e3 * median_seconds(lambda n=n: rec.features(crops[:n]), repeats)
    out["ratio_8_to_1"] = out["8_regions_ms"] / out["1_regions_ms"]
    out["forward_ratio_8_to_1"] = out["forward_8_ms"] / out["forward_1_ms"]
    out["torch_threads"] = torch.get_num_threads()
    out["backbone"] = rec.extractor.spec.id
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input-size", type=int, help="default: the backbone's own (AlexNet 224, SimNet 64)")
    ap.add_argument("--weights", default="random", choices=("random", *SHIPPED_WEIGHTS),
                    help="random AlexNet, or one of the project's trained SimNets (`weights: simworld2`)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--defences", default="", help="the guard's defences parameter (empty: the reject option alone)")
    ap.add_argument("--messages-only", action="store_true", help="only the typed-vs-JSON message cost")
    ap.add_argument("--regions-only", action="store_true", help="only the 8-regions-vs-1 frame cost")
    args = ap.parse_args()
    if args.input_size is None:
        args.input_size = 64 if args.weights in SHIPPED_WEIGHTS else 224
    cost = message_cost()
    if args.messages_only:
        print(json.dumps({"benchmark": "decision_message", "load": os.getloadavg(), "messages": cost}, indent=2))
        return
    with TabletopSim(simworld_objects("7"), 128, seed=0) as sim:
        frames = [sim.render(k, i, stream=3) for i in range(6) for k in range(7)]
    regions = region_cost(args.input_size, frames, weights=args.weights)
    if args.regions_only:
        print(json.dumps({"benchmark": "guard_regions", "input_size": args.input_size, "load": os.getloadavg(),
                          "regions": regions}, indent=2))
        return
    work = Path(tempfile.mkdtemp())
    proc = start_node("guard_node", {"weights": args.weights, "input_size": args.input_size, "device": "cpu",
                                     "model_path": "", "query_rate_limit": 100.0, "debug_image": False,
                                     "defences": args.defences},
                      work / "guard.log")
    rclpy.init()
    h = Harness("bench_guard")
    try:
        h.wait_for(lambda: any("guard_node" in k for k in h.diag), 120, "guard_node up")
        for f in frames[:21]:  # teach 3 frames of each object (the guard's teach service)
            d = h.frame_and_decision(f.image, f.roi)
            key = {"query_id": d["query_id"]} if d["query_id"] is not None else {"decision_id": d["id"]}
            h.teach(f.label, **key)
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
        "regions": regions,
        "messages": {**cost, "typed_minus_json_share_of_node_ms": (cost["typed_us"] - cost["json_us"]) / 1e3
                     / float(np.median(node_ms)) if node_ms else None},
    }, indent=2))


if __name__ == "__main__":
    main()
