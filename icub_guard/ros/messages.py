"""The package's own interfaces (`icub_guard_msgs`) and the core's plain records, both ways.

The core names every field of a decision and of a question once (`TeachingSession.decision_payload`,
`query_payload`: plain dicts, no ROS); these functions only move them into the typed messages the nodes
publish, and back into the same dicts for whoever reads them (the teacher page's hub, the demo's watcher,
the teacher node). A missing number (the one-class state's score, no certified radius) is NaN in a
message and None in a dict; an id of 0 in a message is "none".
"""

from __future__ import annotations

import math
from typing import Any

from icub_guard_msgs.msg import (
    AttackReport,
    ClassList,
    Decision,
    DecisionArray,
    GroundTruth,
    Label,
    Query,
    Region,
    RegionArray,
)
from std_msgs.msg import Header

from .. import msg_fields
from ..core.errors import InputError
from ..msg_fields import num as _num

__all__ = ["AttackReport", "ClassList", "Decision", "DecisionArray", "GroundTruth", "Label", "Query", "Region",
           "RegionArray",
           "attack_report",
           "class_list", "decision_body", "decision_msg", "detection_regions", "header_of", "query_body",
           "query_msg", "stamp_of", "teach_fields"]


def _opt(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def stamp_of(header: Header) -> dict[str, int]:
    """A header's stamp as the core's key {"sec", "nanosec"} (`sim.truth.GroundTruth`, the page's crops)."""
    return {"sec": int(header.stamp.sec), "nanosec": int(header.stamp.nanosec)}


def header_of(stamp, frame_id: str = "") -> Header:
    """A header carrying a frame's stamp (a `builtin_interfaces/Time`) and frame id into an output."""
    return Header(stamp=stamp, frame_id=frame_id)


#: no frame has a pixel this far out (RegionOfInterest's offsets are 32-bit); bounds the rounding below
_PIXEL_LIMIT = 2.0**31


def _detection_box(bbox) -> tuple[int, int, int, int]:
    """One vision_msgs BoundingBox2D (float pixels, centre and size) as the (x, y, w, h) box a Region carries.

    Both centre layouts: Pose2D with `position.x/.y` (vision_msgs 4) or with `x/y` (vision_msgs 3 and older).
    A rotated box becomes the axis-aligned box around it: crops are axis-aligned, and the whole object must be in
    its crop. Edges are rounded to the nearest pixel (halves up: the same box on every machine). Not clipped: a
    box partly outside the frame is clipped, and one wholly outside refused, when the frame comes, as for a Region.
    """
    c = bbox.center
    pos = getattr(c, "position", c)
    cx, cy, sx, sy, theta = (float(v) for v in (pos.x, pos.y, bbox.size_x, bbox.size_y, getattr(c, "theta", 0.0)))
    if not all(map(math.isfinite, (cx, cy, sx, sy, theta))):
        raise InputError(f"bbox has a non-finite number (center {cx}, {cy}; size {sx} × {sy}; theta {theta})")
    if sx <= 0 or sy <= 0:
        raise InputError(f"bbox has non-positive size {sx} × {sy}")
    if max(abs(cx), abs(cy), sx, sy) >= _PIXEL_LIMIT:
        raise InputError(f"bbox beyond any frame (center {cx}, {cy}; size {sx} × {sy})")
    if theta:
        cos, sin = abs(math.cos(theta)), abs(math.sin(theta))
        sx, sy = sx * cos + sy * sin, sx * sin + sy * cos
    x0, y0 = math.floor(cx - sx / 2 + 0.5), math.floor(cy - sy / 2 + 0.5)
    w, h = math.floor(cx + sx / 2 + 0.5) - x0, math.floor(cy + sy / 2 + 0.5) - y0
    if w < 1 or h < 1:
        raise InputError(f"bbox {sx} × {sy} covers no whole pixel")
    return x0, y0, w, h


def detection_regions(msg) -> tuple[list[tuple[int, int, int, int]], list[str]]:
    """A detector's vision_msgs/Detection2DArray as the boxes and ids a RegionArray gives `guard_node` (no
    vision_msgs import: its attributes are read). One malformed detection refuses the whole message
    (`InputError`, the detection's index in the reason): half a detector's output would be judged as the whole."""
    boxes, ids = [], []
    for k, det in enumerate(msg.detections):
        try:
            boxes.append(_detection_box(det.bbox))
            ids.append(str(det.id))
        except InputError as exc:
            raise InputError(f"detection {k} (id {str(getattr(det, 'id', ''))[:40]!r}): {exc}") from None
        except (AttributeError, TypeError, ValueError) as exc:  # not a Detection2D: a duck that does not quack
            raise InputError(f"detection {k} is not a Detection2D ({type(exc).__name__}: {exc})") from None
    return boxes, ids


def fill(msg, fields: dict[str, Any]):
    """`msg` with `fields` set (a nested dict fills the nested message): `msg_fields`' dicts as messages."""
    for name, value in fields.items():
        if isinstance(value, dict):
            fill(getattr(msg, name), value)
        else:
            setattr(msg, name, value)
    return msg


def decision_msg(body: dict[str, Any], header: Header) -> Decision:
    """The core's decision record (`Guard.decision_payload`) as a `Decision` stamped like its frame."""
    return fill(Decision(header=header), msg_fields.decision(body))


def decision_body(m: Decision) -> dict[str, Any]:
    """A `Decision` as the core's record (what the teacher page and the watcher read)."""
    r = m.roi
    return {"id": int(m.id), "stamp": stamp_of(m.header), "frame_id": m.header.frame_id,
            "roi": [int(r.x_offset), int(r.y_offset), int(r.width), int(r.height)], "roi_source": m.roi_source,
            "region_id": m.region_id,
            "label": m.label, "accepted": bool(m.accepted), "reason": m.reason,
            "scores": {c: _opt(s) for c, s in zip(m.class_names, m.scores, strict=False)},
            "thresholds": {c: t for c, t in zip(m.class_names, m.thresholds, strict=False) if not math.isnan(t)},
            "margin": _opt(m.margin), "stages": dict(zip(m.stage_names, map(_opt, m.stage_scores), strict=False)),
            "certified_radius": _opt(m.certified_radius), "notes": list(m.notes),
            "latency_ms": float(m.latency_ms), "query_id": int(m.query_id) or None}


def query_msg(body: dict[str, Any], header: Header) -> Query:
    """The core's question record (`Guard.query_payload`) as a `Query` stamped like the frame it is about."""
    top = body.get("top") or []
    return Query(header=header, query_id=int(body["query_id"]), decision_id=int(body.get("decision_id") or 0),
                 reason=str(body["reason"]), top_classes=[str(c) for c, _ in top],
                 top_scores=[_num(s) for _, s in top], known_classes=[str(c) for c in body.get("known_classes", ())],
                 label=str(body.get("label") or ""), teacher=str(body.get("teacher") or ""),
                 ask=str(body.get("ask") or ""))


def query_body(m: Query) -> dict[str, Any]:
    """A `Query` as the core's record; the confirm fields only on a confirm question (`ask` None: anyone)."""
    body: dict[str, Any] = {"query_id": int(m.query_id), "decision_id": int(m.decision_id) or None,
                            "stamp": stamp_of(m.header), "reason": m.reason,
                            "top": [[c, _opt(s)] for c, s in zip(m.top_classes, m.top_scores, strict=False)],
                            "known_classes": list(m.known_classes)}
    if m.reason == "confirm":
        body.update(label=m.label or None, teacher=m.teacher or None, ask=m.ask or None)
    return body


def class_list(classes: list[str], thresholds: dict[str, float], examples: int, header: Header) -> ClassList:
    """The classes known and their thresholds (NaN: no reject threshold, e.g. a classifier without one)."""
    return ClassList(header=header, class_names=list(classes),
                     thresholds=[_num(thresholds.get(c)) for c in classes], examples=int(examples))


def attack_report(info: dict[str, Any], counts: dict[str, int], header: Header) -> AttackReport:
    """The attack node's record of one attacked frame (`AttackNode.perturb`) as an `AttackReport`."""
    return fill(AttackReport(header=header), msg_fields.attack_report(info, counts))


#: Outcome.action → the Teach/Confirm response's `outcome`
OUTCOMES = {"learned": "learned", "quarantined": "held", "refused": "refused"}


def label_msg(outcome, header: Header) -> Label:
    """What became of a label, for every teacher to see (`teacher/labels`)."""
    return Label(header=header, label=outcome.label, teacher=outcome.teacher,
                 outcome=OUTCOMES.get(outcome.action, outcome.action), reason=outcome.describe(),
                 target=outcome.target or "", decision_id=int(outcome.decision_id or 0),
                 query_id=int(outcome.answered or 0))


def label_body(m: Label) -> dict[str, Any]:
    """A `Label` as the core's feedback record (what the teacher page's history reads)."""
    return {"label": m.label, "teacher": m.teacher, "query_id": int(m.query_id) or None,
            "decision_id": int(m.decision_id) or None, "outcome": m.outcome}


def teach_fields(resp, outcome, journal_seq: int | None) -> Any:
    """Fill a Teach or Confirm response from the core's `Outcome` (what became of the label, and why)."""
    resp.outcome = OUTCOMES.get(outcome.action, outcome.action)
    resp.reason = outcome.describe()
    resp.decision_id = int(outcome.decision_id or 0)
    resp.query_id = int(outcome.query.query_id) if outcome.query is not None else 0
    resp.journal_seq = int(journal_seq or 0) if outcome.action == "learned" else 0
    if hasattr(resp, "target"):  # Teach: what the label answered (a plain label: what the guard took it for)
        resp.target = outcome.target or ""
    return resp
