"""teacher_node: answers the guard's questions — an oracle, a person, or a liar.

Subscribes  teacher/query (String, JSON icub_guard/query@1), decision (String, JSON),
            ground_truth (String, JSON from sim_camera_node; oracle and malicious modes)
Publishes   teacher/feedback (String, JSON {"query_id"|"decision_id": n, "label": s})

Modes:
* oracle — answers every query with the ground truth of that frame, and (with
  `correct_mistakes`) corrects accepted decisions that name the wrong object, as
  a person watching the robot would.
* interactive — prints the query and the top guesses; a person types the label.
* malicious — an oracle that gives a wrong label for `flip_fraction` of its
  answers (seeded), to study poisoning.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from std_msgs.msg import String

from .common import EVENT_QOS, Health, declare, json_msg, run_node

MODES = ("oracle", "interactive", "malicious")


def _key(stamp: dict) -> tuple[int, int]:
    return int(stamp.get("sec", 0)), int(stamp.get("nanosec", 0))


class TeacherNode(Node):
    def __init__(self, **kwargs):
        super().__init__("teacher_node", **kwargs)
        self.mode = declare(self, "mode", "oracle", "oracle | interactive | malicious", read_only=True)
        if self.mode not in MODES:
            raise ValueError(f"unknown teacher mode {self.mode!r}; choose one of {MODES}")
        self.correct = declare(self, "correct_mistakes", True, "also correct accepted wrong labels (oracle)")
        self.flip = declare(self, "flip_fraction", 0.3, "fraction of wrong answers (malicious)", lo=0.0, hi=1.0)
        seed = declare(self, "seed", 0, "seed of the malicious flips", read_only=True, lo=0, hi=2**31 - 1)
        self.rng = np.random.default_rng(seed)
        self.truth: OrderedDict[tuple[int, int], str] = OrderedDict()
        self.labels: set[str] = set()
        self.health = Health()
        self.pub = self.create_publisher(String, "teacher/feedback", EVENT_QOS)
        self.create_subscription(String, "teacher/query", self.on_query, EVENT_QOS)
        self.create_subscription(String, "ground_truth", self.on_truth, EVENT_QOS)
        if self.mode != "interactive":
            self.create_subscription(String, "decision", self.on_decision, EVENT_QOS)
        self.console_lock = threading.Lock()
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", EVENT_QOS)
        self.create_timer(1.0, self.publish_diagnostics)
        self.get_logger().info(f"teacher ready ({self.mode})")

    def on_truth(self, msg: String) -> None:
        try:
            body = json.loads(msg.data)
            self.truth[_key(body["stamp"])] = str(body["label"])
            self.labels.add(str(body["label"]))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            self.health.reject("ground_truth")
            self.get_logger().warning("ignored malformed ground_truth message", throttle_duration_sec=5.0)
            return
        while len(self.truth) > 500:
            self.truth.popitem(last=False)

    def _answer(self, stamp: dict) -> str | None:
        label = self.truth.get(_key(stamp))
        if label is None:
            return None
        if self.mode == "malicious" and len(self.labels) > 1 and self.rng.random() < self.flip:
            self.health.counts["lies"] += 1
            return str(self.rng.choice(sorted(self.labels - {label})))
        return label

    def on_query(self, msg: String) -> None:
        try:
            q = json.loads(msg.data)
            qid, stamp = int(q["query_id"]), q["stamp"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            self.health.reject("query")
            self.get_logger().warning("ignored malformed query", throttle_duration_sec=5.0)
            return
        if self.mode == "interactive":
            threading.Thread(target=self._ask_person, args=(q,), daemon=True).start()
            return
        label = self._answer(stamp)
        if label is None:
            self.get_logger().warning(f"no ground truth for query {qid}; not answered", throttle_duration_sec=2.0)
            return
        self.health.counts["answers"] += 1
        self.pub.publish(json_msg({"query_id": qid, "label": label}))

    def on_decision(self, msg: String) -> None:
        if not self.correct:
            return
        try:
            d = json.loads(msg.data)
            did, stamp, label, accepted = int(d["id"]), d["stamp"], d["label"], bool(d["accepted"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            self.health.reject("decision")
            return
        truth = self.truth.get(_key(stamp))
        if accepted and truth is not None and label != truth:
            answer = self._answer(stamp)
            self.health.counts["corrections"] += 1
            self.pub.publish(json_msg({"decision_id": did, "label": answer}))

    def publish_diagnostics(self) -> None:
        self.pub_diag.publish(self.health.status(f"{self.get_name()}: teacher", self.mode, DiagnosticStatus.OK,
                                                 self.mode, {"mode": self.mode, "known_labels": len(self.labels)}))

    def _ask_person(self, q: dict) -> None:
        with self.console_lock:
            top = ", ".join(f"{lab} ({s:.2f})" for lab, s in q.get("top", []))
            print(f"\n[query {q['query_id']}] the robot is unsure ({q.get('reason')}). Top guesses: {top or '-'}")
            try:
                text = input("what is this object? (empty to skip) > ").strip()
            except EOFError:
                return
        if text:
            self.pub.publish(json_msg({"query_id": int(q["query_id"]), "label": text}))


def main(args=None) -> int:
    return run_node(TeacherNode, args)


if __name__ == "__main__":
    sys.exit(main())
