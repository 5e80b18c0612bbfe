"""Helpers for tests that run icub_guard nodes as real processes over rclpy.

DDS stays on localhost and each test session has its own ROS_DOMAIN_ID (set in
conftest.py), so parallel runs never see each other.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from icub_guard_msgs.srv import Teach
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
from rclpy.node import Node
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from icub_guard.ros import messages
from icub_guard.ros.common import EVENT_QOS, FEEDBACK_QOS, FRAME_QOS
from icub_guard.ros.convert import rgb_to_image
from icub_guard.ros.guard_node import LATCHED_QOS
from icub_guard.topology import node_command

ROOT = Path(__file__).resolve().parents[1]


def start_node(module: str, params: dict, log: Path, remaps: dict | None = None) -> subprocess.Popen:
    cmd = node_command(module, None, params, remaps)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Harness(Node):
    """Publishes what a camera/teacher would and records everything the nodes say."""

    def __init__(self, name: str = "test_harness"):
        super().__init__(name)
        self.msgs: dict[str, list] = defaultdict(list)
        self.diag: dict[str, dict[str, str]] = {}
        self.diag_stamps: dict[str, float] = {}
        self.pub_image = self.create_publisher(Image, "image", FRAME_QOS)
        self.pub_roi = self.create_publisher(RegionOfInterest, "roi", EVENT_QOS)
        self.pub_feedback = self.create_publisher(String, "teacher/feedback", FEEDBACK_QOS)
        self.subs = {}
        for topic in ("label", "teacher/feedback"):
            self.subs[topic] = self.create_subscription(String, topic, lambda m, t=topic: self.msgs[t].append(m.data),
                                                        EVENT_QOS)
        # the typed topics, recorded as the core's records (decisions, questions) or the messages themselves
        for topic, kind, record in (("decision", messages.Decision, messages.decision_body),
                                    ("teacher/query", messages.Query, messages.query_body),
                                    ("attack/info", messages.AttackReport, None),
                                    ("ground_truth", messages.GroundTruth, None),
                                    ("teacher/labels", messages.Label, None)):
            self.subs[topic] = self.create_subscription(
                kind, topic, lambda m, t=topic, f=record: self.msgs[t].append(m if f is None else f(m)), EVENT_QOS)
        self.subs["classes"] = self.create_subscription(messages.ClassList, "classes",
                                                        lambda m: self.msgs["classes"].append(m), LATCHED_QOS)
        for topic in ("image_out", "teacher/query_image", "debug_image", "camera_image"):
            self.subs[topic] = self.create_subscription(Image, topic, lambda m, t=topic: self.msgs[t].append(m),
                                                        FRAME_QOS)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, EVENT_QOS)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            self.diag[st.name] = {kv.key: kv.value for kv in st.values}
            self.diag_stamps[st.name] = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=0.05)

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            rclpy.spin_once(self, timeout_sec=0.05)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def wait_matched(self, topic: str, node: str, timeout: float = 30.0) -> None:
        """Until `node`'s publisher on `topic` is matched with our subscription (else early messages are lost)."""
        name = self.resolve_topic_name(topic)

        def matched():
            infos = self.get_publishers_info_by_topic(name)
            return any(i.node_name == node for i in infos) and self.subs[topic].get_publisher_count() >= len(infos)

        self.wait_for(matched, timeout, f"{node}'s publisher on {topic}")

    def wait_subscribed(self, pub, node: str, timeout: float = 60.0) -> None:
        """Until `node` subscribes to `pub`'s topic and our publisher is matched with every subscription on it. A bare
        `get_subscription_count() > 0` is true at once on a topic we subscribe to ourselves (ground_truth), and a
        message published before the node's reader is matched is lost."""
        name = pub.topic_name

        def matched():
            infos = self.get_subscriptions_info_by_topic(name)
            return any(i.node_name == node for i in infos) and pub.get_subscription_count() >= len(infos)

        self.wait_for(matched, timeout, f"{node}'s subscription on {name}")

    def wait_spinning(self, node: str, timeout: float = 60.0) -> None:
        """Until `node` publishes its /diagnostics: its executor runs. Before that, messages wait in its readers and
        are taken together, the image (the first subscription) first: a region or a truth sent just before a frame
        would come after it. Only a status stamped from now on counts: an earlier process of the same name left one."""
        since = time.time() - 0.5

        def spinning():
            return any(name.startswith(f"{node}:") and t >= since for name, t in self.diag_stamps.items())

        self.wait_for(spinning, timeout, f"{node} spinning")

    def decisions(self) -> list[dict]:
        """The guard's decisions, as the core's records."""
        return list(self.msgs["decision"])

    def send_frame(self, rgb: np.ndarray, roi=None, stamp_sec: int | None = None) -> None:
        if roi is not None:
            self.pub_roi.publish(RegionOfInterest(x_offset=int(roi[0]), y_offset=int(roi[1]), width=int(roi[2]),
                                                  height=int(roi[3])))
            self.spin_for(0.02)
        stamp = self.get_clock().now().to_msg()
        if stamp_sec is not None:
            stamp.sec = stamp_sec
        self.pub_image.publish(rgb_to_image(rgb, stamp, "camera"))

    def frame_and_decision(self, rgb, roi=None, timeout: float = 30.0) -> dict:
        """Send one frame and return the guard's decision about it."""
        n = len(self.msgs["decision"])
        self.send_frame(rgb, roi)
        self.wait_for(lambda: len(self.msgs["decision"]) > n, timeout, "a decision")
        return self.decisions()[-1]

    def call(self, srv_type, name: str, request, timeout: float = 20.0):
        client = self.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        fut = client.call_async(request)
        rclpy.spin_until_future_complete(self, fut, timeout_sec=timeout)
        self.destroy_client(client)
        assert fut.done(), f"service {name} did not answer"
        return fut.result()

    def teach(self, label: str, query_id: int = 0, decision_id: int = 0, teacher: str = "",
              node: str = "/guard_node"):
        """A label by the guard's typed teach service; returns its response (outcome, reason, target, ids)."""
        return self.call(Teach, f"{node}/teach", Teach.Request(query_id=query_id, decision_id=decision_id,
                                                               label=label, teacher=teacher))

    def trigger(self, name: str):
        return self.call(Trigger, name, Trigger.Request())

    def set_bool(self, name: str, value: bool):
        return self.call(SetBool, name, SetBool.Request(data=value))

    def describe_param(self, node: str, name: str):
        """(the parameter's type now, its descriptor): what `ros2 param get` / `ros2 param describe` print."""
        got = self.call(GetParameters, f"/{node}/get_parameters", GetParameters.Request(names=[name]))
        desc = self.call(DescribeParameters, f"/{node}/describe_parameters", DescribeParameters.Request(names=[name]))
        return got.values[0].type, desc.descriptors[0]

    def set_param(self, node: str, name: str, value) -> bool:
        if isinstance(value, bool):
            pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
        elif isinstance(value, float):
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        elif isinstance(value, int):
            pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(value))
        res = self.call(SetParameters, f"/{node}/set_parameters",
                        SetParameters.Request(parameters=[ParameterMsg(name=name, value=pv)]))
        return all(r.successful for r in res.results)
