"""teacher_node: answers the guard's questions — an oracle, a person, or a liar.

Subscribes  teacher/query (icub_guard_msgs/Query), decision (icub_guard_msgs/Decision),
            ground_truth (icub_guard_msgs/GroundTruth from sim_camera_node; oracle and malicious modes)
Calls       <guard>/teach (icub_guard_msgs/Teach) with every label; the outcomes (learned, held, refused, ...)
            are counted in /diagnostics as `outcome.<outcome>`
Publishes   /diagnostics

Every label carries the `name` parameter as its `teacher`, so the guard can weigh, contain and undo
each teacher. A `confirm` question (a label the guard holds and asks back) is answered only when it
names no teacher (`ask` null) or this one.

Modes (the policies are `core.session.OracleTeacher` / `MaliciousTeacher`, shared with the in-process demo):
* oracle — answers every query with the ground truth of that frame, and (with
  `correct_mistakes`) corrects accepted decisions that name the wrong object.
* interactive — prints the query and the top guesses; a person types the label.
* malicious — an oracle that gives a wrong label for `flip_fraction` of its answers (seeded).
* strategic — lies (with `flip_fraction`) only where the robot is unsure, naming its best wrong guess.

Imports no torch: it starts in a fraction of a second and in little memory.
"""

from __future__ import annotations

import sys
import threading

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from icub_guard_msgs.srv import Teach

from ..core.errors import InputError
from ..core.rules import Reason
from ..core.validation import check_teacher
from ..sim.teachers import make_teacher
from ..sim.truth import GroundTruth
from . import common, messages
from .common import EVENT_QOS, GuardedNode, Parameters, exit_process, run_node

MODES = ("oracle", "interactive", "malicious", "strategic")


class TeacherNode(GuardedNode):
    def __init__(self, **kwargs):
        super().__init__("teacher_node", **kwargs)
        p = Parameters(self, "teacher.yaml")
        self.mode = p("mode", "oracle | interactive | malicious | strategic", read_only=True)
        if self.mode not in MODES:
            raise ValueError(f"unknown teacher mode {self.mode!r}; choose one of {MODES}")
        correct = p("correct_mistakes", "also correct accepted wrong labels (oracle, malicious)", read_only=True)
        flip = p("flip_fraction", "fraction of wrong answers (malicious)", read_only=True, lo=0.0, hi=1.0)
        seed = p("seed", "seed of the malicious flips", read_only=True, lo=0, hi=2**31 - 1)
        name = p("name", "the teacher's name, sent with every label (1..32 printable characters)", read_only=True)
        self.name = check_teacher(name)  # a bad name is a start-up error
        self.policy = make_teacher("oracle" if self.mode == "interactive" else self.mode, correct, flip, seed,
                                   self.name)
        guard = p("guard", "the guard node whose teach service gets the labels", read_only=True).rstrip("/")
        self.truth = GroundTruth()
        self.teach = self.create_client(Teach, f"{guard}/teach", qos_profile=common.CLIENT_QOS)
        self.create_subscription(messages.Query, "teacher/query", self.on_query, EVENT_QOS)
        self.create_subscription(messages.GroundTruth, "ground_truth", self.on_truth, EVENT_QOS)
        if self.mode != "interactive":
            self.create_subscription(messages.Decision, "decision", self.on_decision, EVENT_QOS)
        self.console_lock = threading.Lock()
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", EVENT_QOS)
        self.create_health_timer(1.0, self.publish_diagnostics)
        self.get_logger().info(f"teacher ready ({self.mode})")

    def on_truth(self, msg) -> None:
        try:
            self.truth.add(messages.stamp_of(msg.header), msg.label)
        except InputError as exc:
            self.reject_input("ground_truth", exc)
            return
        self.policy.observe_label(msg.label)

    def on_query(self, msg) -> None:
        if msg.ask and msg.ask != self.name:
            return  # a confirm question for another teacher
        q = messages.query_body(msg)
        if self.mode == "interactive":
            threading.Thread(target=self._ask_person, args=(q,), daemon=True).start()
            return
        top = [(c, s) for c, s in q["top"] if s is not None]
        label = self.policy.answer(self.truth.get(q["stamp"]), top)
        if label is None:
            self.get_logger().warning(f"no ground truth for query {msg.query_id}; not answered",
                                      throttle_duration_sec=2.0)
            return
        self.health.counts["answers"] += 1
        self._send(Teach.Request(query_id=msg.query_id, label=label, teacher=self.name))

    def on_decision(self, msg) -> None:
        correction = self.policy.review(msg.accepted, msg.label, self.truth.get(messages.stamp_of(msg.header)),
                                        asked=msg.query_id != 0)
        if correction is not None:
            self.health.counts["corrections"] += 1
            self._send(Teach.Request(decision_id=msg.id, label=correction, teacher=self.name))

    def _send(self, request) -> None:
        """A label to the guard's teach service; its outcome is counted when the answer comes."""
        if not self.teach.service_is_ready():
            self.health.counts["guard_unavailable"] += 1
            self.get_logger().warning(f"{self.teach.srv_name} is not available; label not sent",
                                      throttle_duration_sec=2.0)
            return
        self.teach.call_async(request).add_done_callback(self._taught)

    def _taught(self, future) -> None:
        res = future.result()
        if res is None:
            return
        self.health.counts[f"outcome.{res.outcome}"] += 1
        if self.mode == "interactive":
            with self.console_lock:
                print(f"  -> {res.outcome}: {res.reason}")

    def publish_diagnostics(self) -> None:
        self.pub_diag.publish(self.diagnostics("teacher", self.mode, DiagnosticStatus.OK, self.mode,
            {"mode": self.mode, "name": self.name, "known_labels": len(self.truth.labels), **self.policy.counts}))

    def _ask_person(self, q: dict) -> None:
        top = q.get("top") if isinstance(q.get("top"), list) else []
        shown = ", ".join(f"{t[0]} ({t[1]:.2f})" for t in top
                          if isinstance(t, list) and len(t) == 2 and isinstance(t[1], int | float))
        with self.console_lock:
            if q.get("reason") == Reason.CONFIRM:
                print(f"\n[query {q['query_id']}] the robot asks back: is this {q.get('label')!r}? "
                      f"(taught by {q.get('teacher')!r}). Top guesses: {shown or '-'}")
            else:
                print(f"\n[query {q['query_id']}] the robot is unsure ({q.get('reason')}). "
                      f"Top guesses: {shown or '-'}")
            try:
                text = input("what is this object? (empty to skip) > ").strip()
            except EOFError:
                return
        if text:
            self._send(Teach.Request(query_id=int(q["query_id"]), label=text, teacher=self.name))


def main(args=None) -> int:
    """The process entry point (`ros2 run icub_guard teacher_node`): runs the node, then ends the process."""
    exit_process(run_node(TeacherNode, args))


if __name__ == "__main__":
    sys.exit(main())
