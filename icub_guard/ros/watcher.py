"""demo_watcher: scores the guard's decisions against the simulator's ground truth, per phase.

A thin adapter: the typed messages (`ros.messages`) in, the truth is a `GroundTruth`, and the
scoring is `Tally`, the same rule the in-process demo uses. The teacher's answers are the labels the
guard announces on `teacher/labels` (they go to its teach service).
"""

from __future__ import annotations

import time
from collections import deque

import rclpy
from rclpy.node import Node
from std_srvs.srv import SetBool

from ..core.errors import InputError
from ..sim.truth import GroundTruth, Tally
from . import messages
from .common import EVENT_QOS, FEEDBACK_QOS


class Watcher(Node):
    def __init__(self):
        super().__init__("demo_watcher")
        self.truth = GroundTruth(capacity=5000)
        self.attacked: set[tuple[int, int]] = set()
        self.phase = "learning"
        self.tally = {"learning": Tally(), "attack": Tally()}
        self.latency: deque[float] = deque(maxlen=200)
        self.times: deque[float] = deque(maxlen=50)
        self.classes = 0
        self.create_subscription(messages.GroundTruth, "/ground_truth", self.on_truth, EVENT_QOS)
        self.create_subscription(messages.Decision, "/decision", self.on_decision, EVENT_QOS)
        self.create_subscription(messages.Query, "/teacher/query", lambda m: self._count("queries"), EVENT_QOS)
        self.create_subscription(messages.AttackReport, "/attack/info", self.on_attack, EVENT_QOS)
        self.create_subscription(messages.Label, "/teacher/labels", lambda m: self._count("answers"), FEEDBACK_QOS)
        self.attack_client = self.create_client(SetBool, "/attack_node/enable")
        self.learning_client = self.create_client(SetBool, "/guard_node/set_learning")

    def _count(self, key: str) -> None:
        self.tally[self.phase].counts[key] += 1

    def on_truth(self, msg) -> None:
        try:
            self.truth.add(messages.stamp_of(msg.header), msg.label)
        except InputError:
            self._count("bad_messages")

    def on_attack(self, msg) -> None:
        self.attacked.add(GroundTruth.key(messages.stamp_of(msg.header)))

    def on_decision(self, msg) -> None:
        stamp = messages.stamp_of(msg.header)
        truth = self.truth.get(stamp)
        if truth is None:
            return
        self.latency.append(float(msg.latency_ms))
        self.times.append(time.monotonic())
        self.classes = max(self.classes, len(msg.class_names))
        scores = {c: s for c, s in zip(msg.class_names, msg.scores, strict=False) if s == s}  # NaN: no score
        top = max(scores, key=scores.get) if scores else None
        self.tally[self.phase].add(bool(msg.accepted), msg.label, truth, GroundTruth.key(stamp) in self.attacked, top)

    def call(self, client, value: bool, timeout: float = 10.0) -> bool:
        if not client.wait_for_service(timeout_sec=timeout):
            return False
        fut = client.call_async(SetBool.Request(data=value))
        rclpy.spin_until_future_complete(self, fut, timeout_sec=timeout)
        return fut.done() and fut.result().success

    def line(self) -> str:
        t = self.tally[self.phase]
        s = t.counts
        rate = (len(self.times) - 1) / (self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0
        lat = sorted(self.latency)[len(self.latency) // 2] if self.latency else float("nan")
        base = (f"[{self.phase:8s}] frames {s['frames']:4d}  accuracy {t.accuracy:.2f}  rejected {t.reject_rate:.2f}"
                f"  queries {s['queries']:3d}  classes {self.classes}  {rate:4.1f} Hz  {lat:5.1f} ms")
        if self.phase == "attack":
            base += (f"  | attacked {s['attacked']}: caught {t.rate('caught', of='attacked'):.2f} "
                     f"fooled {t.rate('fooled', of='attacked'):.2f}")
        return base
