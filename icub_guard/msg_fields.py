"""icub_guard_msgs' messages as plain field dicts, built without ROS: one mapping from the core's records.

The nodes make messages of these (`ros/messages.py`, with rclpy) and the recordings write them as they are
(`recordings/writer.py`, CDR through mcap-ros2-support, no ROS install), so a recording holds exactly what
the live graph publishes and `ros2 bag record` of the demo reads back like `icub-guard record`'s files.
A field left out keeps its message default (0, "", empty); floats the core leaves out are NaN.
"""

from __future__ import annotations

from typing import Any

NAN = float("nan")


def num(v: Any) -> float:
    """A number of the core's (None: not known) as a message's float (NaN)."""
    return NAN if v is None else float(v)


def header(stamp: dict[str, int] | None, frame_id: str = "") -> dict[str, Any]:
    """std_msgs/Header: a stamp {"sec", "nanosec"} (None: zero) and a frame id."""
    s = stamp or {}
    return {"stamp": {"sec": int(s.get("sec", 0)), "nanosec": int(s.get("nanosec", 0))}, "frame_id": str(frame_id)}


def roi(box) -> dict[str, int]:
    """sensor_msgs/RegionOfInterest of a box (x, y, w, h)."""
    x, y, w, h = (int(v) for v in box)
    return {"x_offset": x, "y_offset": y, "width": w, "height": h}


def ground_truth(label: str, frame: int) -> dict[str, Any]:
    """GroundTruth (without its header): what the camera showed in frame number `frame`."""
    return {"label": str(label), "frame": max(0, int(frame))}


def decision(body: dict[str, Any]) -> dict[str, Any]:
    """Decision (without its header) of the core's decision record (`Guard.decision_payload`)."""
    scores, thresholds, stages = body.get("scores") or {}, body.get("thresholds") or {}, body.get("stages") or {}
    names = list(scores) or list(thresholds)
    out = {"id": int(body["id"]), "query_id": int(body.get("query_id") or 0),
           "roi_source": str(body.get("roi_source", "")), "region_id": str(body.get("region_id", "")),
           "label": str(body["label"]), "accepted": bool(body["accepted"]), "reason": str(body["reason"]),
           "class_names": names, "scores": [num(scores.get(c)) for c in names],
           "thresholds": [num(thresholds.get(c)) for c in names], "margin": num(body.get("margin")),
           "stage_names": [str(k) for k in stages], "stage_scores": [num(v) for v in stages.values()],
           "certified_radius": num(body.get("certified_radius")), "notes": [str(n) for n in body.get("notes", ())],
           "latency_ms": float(body.get("latency_ms", 0.0))}
    if body.get("roi") is not None:
        out["roi"] = roi(body["roi"])
    return out


def attack_report(info: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    """AttackReport (without its header) of the attack node's record of one attacked region (`perturb`)."""
    norms = info.get("norms") or {}
    return {"attack": str(info["attack"]), "eps": float(info["eps"]), "norm": str(info["norm"]),
            "target": str(info.get("target") or ""), "reject_aware": bool(info["reject_aware"]),
            "box": roi(info["box"]), "label_before": str(info["label_before"]), "label_after": str(info["label_after"]),
            "accepted_after": bool(info["accepted_after"]), "fooled_own_copy": bool(info["fooled_own_copy"]),
            "success_before_rounding": bool(info["success_before_rounding"]),
            "norm_names": [str(k) for k in norms], "norm_values": [float(v) for v in norms.values()],
            "gradient_evals": int(info.get("gradient_evals") or 0), "time_ms": float(info.get("time_ms", 0.0)),
            "frames": int(counts.get("frames", 0)), "attacked": int(counts.get("attacked", 0)),
            "fooled": int(counts.get("fooled_own_copy", 0))}
