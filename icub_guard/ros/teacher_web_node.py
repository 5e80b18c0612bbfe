"""teacher_web_node: the teacher page — the robot's view, its questions and its learning, in a browser.

Subscribes  debug_image (Image: the camera view with the guard's decision drawn on it; only while a page is
            open, so the guard draws nothing for nobody), decision (icub_guard_msgs/Decision), teacher/query
            (icub_guard_msgs/Query), teacher/query_image (Image: the crop a question is about), teacher/labels
            (icub_guard_msgs/Label: every teacher's labels, for the history), /diagnostics (the guard's learning
            state and counts)
Publishes   /diagnostics (pages connected, labels sent, refused requests)
Calls       <guard>/teach (icub_guard_msgs/Teach: each label; the page shows what became of it),
            <guard>/set_learning (SetBool), <guard>/save_model (Trigger), <guard>/forget (icub_guard_msgs/Forget:
            a taught label the page says was wrong is forgotten before its correction is sent)

Serves the page (`icub_guard/web`) on http://host:port/ — 127.0.0.1 by default; bound anywhere else it
requires an access token, generated and logged at start unless the `token` parameter sets one. The
server runs in its own thread; this node only converts messages (`web.hub` holds the page's state).
Imports no torch: it starts in about a second, beside the guard, in its own process.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from icub_guard_msgs.srv import Forget, Teach
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool, Trigger

from ..core.errors import InputError
from ..core.validation import check_teacher
from ..web.hub import TeacherHub
from ..web.server import ServerConfig, ServerThread, TeacherPage
from . import messages
from .common import CLIENT_QOS, EVENT_QOS, FEEDBACK_QOS, FRAME_QOS, GuardedNode, Parameters, exit_process, run_node
from .convert import image_to_rgb


class TeacherWebNode(GuardedNode):
    def __init__(self, **kwargs):
        super().__init__("teacher_web_node", **kwargs)
        p = Parameters(self, "teacher_web.yaml")
        cfg = ServerConfig(
            host=p("host", "address to serve on; anything but the loopback requires a token", read_only=True),
            port=p("port", "TCP port (0: any free port)", read_only=True, lo=0, hi=65535),
            token=p("token", "access token; empty: none on the loopback, generated elsewhere", read_only=True),
            max_message_bytes=p("max_message_bytes", "largest message a page may send", read_only=True,
                                lo=64, hi=1 << 20),
            rate=p("rate_limit", "labels and actions a second per page", read_only=True, lo=0.1, hi=1000.0),
            burst=p("rate_burst", "burst of labels and actions per page", read_only=True, lo=1, hi=10000),
            default_teacher=check_teacher(p("name", "teacher name the page starts with", read_only=True)),
        ).with_token()
        self.frame_period = 1.0 / p("frame_max_fps", "most frames a second sent to a page", lo=0.1, hi=60.0)
        self.jpeg_quality = p("jpeg_quality", "JPEG quality of the live view", lo=10, hi=100)
        self.service_timeout = p("service_timeout", "seconds to wait for the guard's services", lo=0.1, hi=60.0)
        guard = p("guard", "the guard node whose services the page calls", read_only=True).rstrip("/")
        self.guard_status = f"{guard.rsplit('/', 1)[-1]}: recognition"  # its /diagnostics status name
        self.add_post_set_parameters_callback(self._apply)

        self.hub = TeacherHub()
        self.page = TeacherPage(self.hub, self, cfg)
        self.server = ServerThread(self.page)
        try:
            port = self.server.start()
        except OSError as exc:  # a start-up configuration error: the address is taken or not ours
            raise ValueError(f"cannot serve the teacher page on {cfg.host}:{cfg.port}: {exc}") from exc
        self.url = cfg.url(port)
        self.last_frame = 0.0

        self.teach_client = self.create_client(Teach, f"{guard}/teach", qos_profile=CLIENT_QOS)
        self.learning_client = self.create_client(SetBool, f"{guard}/set_learning")
        self.save_client = self.create_client(Trigger, f"{guard}/save_model")
        self.forget_client = self.create_client(Forget, f"{guard}/forget")
        self.frames_sub = None  # debug_image is subscribed only while a page is open: no page, no cost to the guard
        self.create_timer(0.5, self.watch_pages)
        self.create_subscription(messages.Decision, "decision", self.on_decision, EVENT_QOS)
        self.create_subscription(messages.Query, "teacher/query", self.on_query, EVENT_QOS)
        self.create_subscription(Image, "teacher/query_image", self.on_query_image, EVENT_QOS)
        self.create_subscription(messages.Label, "teacher/labels", self.on_label, FEEDBACK_QOS)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, EVENT_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", EVENT_QOS)
        self.create_health_timer(1.0, self.publish_diagnostics)
        self.create_timer(5.0, lambda: self.server.call(self.hub.expire))
        self.get_logger().info(f"teacher page: {self.url}")

    def watch_pages(self) -> None:
        if self.hub.wanted and self.frames_sub is None:
            self.frames_sub = self.create_subscription(Image, "debug_image", self.on_frame, FRAME_QOS)
        elif not self.hub.wanted and self.frames_sub is not None:
            self.destroy_subscription(self.frames_sub)
            self.frames_sub = None

    def _apply(self, params) -> None:
        for prm in params:
            if prm.name == "frame_max_fps":
                self.frame_period = 1.0 / prm.value
            elif prm.name in ("jpeg_quality", "service_timeout"):
                setattr(self, prm.name, prm.value)

    def destroy_node(self):
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
        return super().destroy_node()

    # ---------------------------------------------------------- from ROS
    def _jpeg(self, msg: Image) -> bytes:
        rgb = image_to_rgb(msg)
        ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(self.jpeg_quality)])
        if not ok:
            raise InputError("JPEG encoding failed")
        return buf.tobytes()

    def on_frame(self, msg: Image) -> None:
        now = time.monotonic()
        if not self.hub.wanted or now - self.last_frame < self.frame_period:
            return  # nobody watching, or faster than the page is served: not even decoded
        try:
            jpeg = self._jpeg(msg)
        except InputError as exc:
            self.reject_input("debug_image", exc)
            return
        self.last_frame = now
        self.health.frame(1e3 * (time.monotonic() - now))
        self.server.call(self.hub.on_frame, jpeg)

    def on_decision(self, msg) -> None:
        self.server.call(self.hub.on_decision, messages.decision_body(msg))

    def on_query(self, msg) -> None:
        self.server.call(self.hub.on_query, messages.query_body(msg))

    def on_label(self, msg) -> None:
        """Any teacher's label, as the guard settled it: the question it answered closes, the history shows it."""
        self.server.call(self.hub.on_feedback, messages.label_body(msg))

    def on_query_image(self, msg: Image) -> None:
        try:
            url = "data:image/jpeg;base64," + base64.b64encode(self._jpeg(msg)).decode()
        except InputError as exc:
            self.reject_input("query_image", exc)
            return
        stamp = {"sec": int(msg.header.stamp.sec), "nanosec": int(msg.header.stamp.nanosec)}
        self.server.call(self.hub.on_crop, stamp, url)

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name == self.guard_status:
                self.server.call(self.hub.on_status, {kv.key: kv.value for kv in st.values})

    # ------------------------------------------------ the page's requests (server thread)
    async def teach(self, body: dict) -> tuple[bool, str]:
        """A label to the guard's teach service: (learned or held, what became of it and why)."""
        req = Teach.Request(query_id=body.get("query_id") or 0, decision_id=body.get("decision_id") or 0,
                            label=body["label"], teacher=body.get("teacher") or "")
        res = await self._call(self.teach_client, req)
        if isinstance(res, tuple):
            return res
        return res.outcome in ("learned", "held"), f"{res.outcome}: {res.reason}"

    async def set_learning(self, on: bool) -> tuple[bool, str]:
        return _answer(await self._call(self.learning_client, SetBool.Request(data=bool(on))))

    async def save(self) -> tuple[bool, str]:
        return _answer(await self._call(self.save_client, Trigger.Request()))

    async def forget(self, decision_id: int) -> tuple[bool, str]:
        return _answer(await self._call(self.forget_client, Forget.Request(decision_id=int(decision_id))))

    async def _call(self, client, request):
        """A guard service, awaited in the server's loop (the response arrives on ROS's executor thread);
        (False, why) when it is not there or did not answer in time."""
        if not client.service_is_ready():
            return False, f"{client.srv_name} is not available: is the guard running?"
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def finished(fut) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(fut.result()))

        client.call_async(request).add_done_callback(finished)
        try:
            res = await asyncio.wait_for(done, self.service_timeout)
        except TimeoutError:
            return False, f"{client.srv_name} did not answer within {self.service_timeout:g} s"
        return res

    def publish_diagnostics(self) -> None:
        address = self.url.split("?")[0]  # never the token
        self.pub_diag.publish(self.diagnostics("page", address, DiagnosticStatus.OK, address,
                                               {"pages": len(self.hub.clients), **self.page.stats}))


def _answer(res) -> tuple[bool, str]:
    return res if isinstance(res, tuple) else (bool(res.success), str(res.message))


def main(args=None) -> int:
    """The process entry point (`ros2 run icub_guard teacher_web_node`): runs the node, then ends the process."""
    exit_process(run_node(TeacherWebNode, args))


if __name__ == "__main__":
    sys.exit(main())
