"""replay_node: a recording published into a running graph, at its own pace or as fast as the guard takes it.

Publishes   each recorded topic under its recorded name (remap with `-r`), the CDR bytes as recorded
Subscribes  decision (icub_guard_msgs/Decision) when `as_fast_as_guard`: each frame waits for the guard's decision

The recording is read through once before anything is published, so a damaged
file is refused whole (exit 2, the file and the message named), never half
replayed. The graph's own outputs in the file (decisions, attack reports) are
not replayed unless `topics` names them. The process ends when the recording does.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time

import rclpy
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message
from std_msgs.msg import String

from ..core.errors import RecordingError
from ..recordings.reader import iter_messages, topic_summary
from ..recordings.topics import Topics
from . import messages
from .common import EVENT_QOS, FRAME_QOS, GuardedNode, Parameters, exit_process, run_node

IMAGE = "sensor_msgs/msg/Image"


def message_class(schema: str):
    """The rclpy class of a recorded type name (`sensor_msgs/msg/Image`), or None when it is not installed."""
    pkg, _, name = schema.rpartition("/")
    try:
        return getattr(importlib.import_module(pkg.replace("/", ".")), name)
    except (ImportError, AttributeError, ValueError):
        return None


class ReplayNode(GuardedNode):
    def __init__(self, **kwargs):
        super().__init__("replay_node", **kwargs)
        p = Parameters(self, "replay.yaml")
        self.path = p("path", "the recording (.mcap) to publish", read_only=True)
        wanted = [t.strip() for t in p("topics", "topics to publish (comma-separated; empty: all but the graph's "
                                       "outputs)", read_only=True).split(",") if t.strip()]
        self.rate = p("rate", "speed relative to the recording", read_only=True, lo=0.01, hi=1000.0)
        self.fast = p("as_fast_as_guard", "next frame once the guard has decided", read_only=True)
        self.timeout = p("decision_timeout", "seconds to wait for a decision", read_only=True, lo=0.1, hi=3600.0)
        self.wait = p("wait_for_subscribers", "seconds to wait for subscribers before starting", read_only=True,
                      lo=0.0, hi=3600.0)
        if not self.path:
            raise ValueError("parameter path: name the recording to replay")
        found = topic_summary(self.path)  # reads the whole file: a damaged one is refused here
        own = Topics.defaults()
        missing = [t for t in wanted if t not in found]
        if missing:
            raise RecordingError(f"recording {self.path} has no topic {', '.join(missing)}; "
                                 f"its topics: {', '.join(sorted(found))}")
        names = wanted or [t for t in found if t not in (own.decision, own.attack)]
        self.pubs = {}
        #: the recordings' ground truth (std_msgs/String, JSON) goes out as the camera's typed GroundTruth
        self.truth = own.label if found.get(own.label, ("",))[0] == "std_msgs/msg/String" else None
        for topic in names:
            cls = messages.GroundTruth if topic == self.truth else message_class(found[topic][0])
            if cls is None:
                self.get_logger().warning(f"not replaying {topic}: its type {found[topic][0]} is not installed")
                continue
            self.pubs[topic] = self.create_publisher(cls, topic, FRAME_QOS if found[topic][0] == IMAGE else EVENT_QOS)
        self.images = [t for t in self.pubs if found[t][0] == IMAGE]
        self.decided = threading.Condition()
        self.decisions = 0
        if self.fast:
            self.create_subscription(messages.Decision, "decision", self.on_decision, EVENT_QOS)
        self.counts = self.health.counts
        self.thread = threading.Thread(target=self.guarded_play, daemon=True)
        self.thread.start()

    def on_decision(self, msg) -> None:
        with self.decided:
            self.decisions += 1
            self.decided.notify_all()

    def _ready(self) -> bool:
        """Someone listens (the image topic's subscriber, else any); with `as_fast_as_guard`, a guard answers."""
        listened = {t for t, pub in self.pubs.items() if pub.get_subscription_count() > 0}
        images = [t for t in self.images if t in listened]
        subs = images == self.images if images else bool(listened)
        guard = not self.fast or self.count_publishers(self.resolve_topic_name("decision")) > 0
        # every subscriber the graph knows of is matched (else a region published now is lost to the guard)
        matched = all(pub.get_subscription_count() >= self.count_subscribers(t) for t, pub in self.pubs.items())
        return subs and guard and matched

    def guarded_play(self) -> None:
        try:
            self.play()
        except Exception as exc:  # a file changed under us, or the graph went away: said, then the node ends
            self.get_logger().error(f"replay stopped: {type(exc).__name__}: {exc}")
            self.counts["errors"] += 1
        finally:
            if self.context.ok():
                rclpy.try_shutdown(context=self.context)

    def play(self) -> None:
        end = time.monotonic() + self.wait
        while not self._ready() and time.monotonic() < end and self.context.ok():
            time.sleep(0.05)
        if not self._ready():
            self.get_logger().warning("starting before anyone subscribed (or, as fast as the guard, before a guard "
                                      "published decisions)")
        t0, first, settle = time.monotonic(), None, False
        for m in iter_messages(self.path, self.pubs):
            if not self.context.ok():
                return
            if first is None:
                first = m.log_time
            if not self.fast:
                delay = t0 + (m.log_time - first) * 1e-9 / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            elif m.topic in self.images and settle:
                time.sleep(0.02)  # the region and ground truth reach the guard before the frame they go with
            if m.topic in self.images and self.fast:
                with self.decided:
                    before = self.decisions
                    self.pubs[m.topic].publish(m.data)
                    if not self.decided.wait_for(lambda b=before: self.decisions > b, self.timeout):
                        self.counts["decision_timeouts"] += 1
                        self.get_logger().warning(f"no decision within {self.timeout:g} s about frame "
                                                  f"{self.counts['frames']}")
            elif m.topic == self.truth:
                self.pubs[m.topic].publish(self._truth(m.data))
            else:
                self.pubs[m.topic].publish(m.data)
            settle = m.topic not in self.images
            self.counts["frames" if m.topic in self.images else "messages"] += 1
        seconds = time.monotonic() - t0
        self.get_logger().info(f"replayed {self.counts['frames']} frames and {self.counts['messages']} other "
                               f"messages from {self.path} in {seconds:.1f} s"
                               + (f"; {self.decisions} decisions, {self.counts['decision_timeouts']} timeouts"
                                  if self.fast else ""))


    def _truth(self, data: bytes):
        """A recorded ground truth (String: JSON {label, frame, stamp} or a bare label) as a GroundTruth message."""
        text = deserialize_message(data, String).data
        try:
            body = json.loads(text)
        except ValueError:
            body = {"label": text}
        if not isinstance(body, dict):
            body = {"label": str(body)}
        out = messages.GroundTruth(label=str(body.get("label", "")), frame=max(0, int(body.get("frame", 0) or 0)))
        stamp = body.get("stamp")
        if isinstance(stamp, dict):
            out.header.stamp = Time(sec=int(stamp.get("sec", 0)), nanosec=int(stamp.get("nanosec", 0)))
        return out


def main(args=None) -> int:
    """The process entry point (`ros2 run icub_guard replay_node --ros-args -p path:=FILE`)."""
    exit_process(run_node(ReplayNode, args))


if __name__ == "__main__":
    sys.exit(main())
