"""guard_node: the robot's guarded recogniser — image in, label (or a question) out.

Subscribes  image (sensor_msgs/Image, newest frame only; with image_transport "compressed":
            image/compressed, sensor_msgs/CompressedImage, JPEG or PNG), roi (sensor_msgs/RegionOfInterest),
            regions (icub_guard_msgs/RegionArray: every region of the frames to come, e.g. a detector's),
            detections (vision_msgs/Detection2DArray, where vision_msgs is installed: taken as regions),
            teacher/feedback (std_msgs/String: what a person types, a label or JSON {"query_id"|"decision_id": n,
            "label": s, "teacher": name})
Publishes   label (String), decision (icub_guard_msgs/Decision; with regions, only when there is one),
            decisions (icub_guard_msgs/DecisionArray: every region of each frame, while someone listens),
            classes (icub_guard_msgs/ClassList,
            transient-local: the latest survives for a late subscriber), debug_image (Image),
            teacher/query (icub_guard_msgs/Query; reason "confirm": a label held, asked back),
            teacher/query_image (Image), teacher/labels (icub_guard_msgs/Label: what became of every label),
            /diagnostics (per-teacher trust and counts included)
Services    node-private ~/teach (icub_guard_msgs/Teach), ~/confirm (Confirm), ~/forget (Forget),
            ~/forget_teacher (ForgetTeacher), ~/save_model, ~/reset_model (std_srvs/Trigger), ~/set_learning
            (SetBool). Between a message and what is published: `core.guard.Guard`; the messages: `ros.messages`.
"""

from __future__ import annotations

import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from icub_guard_msgs.srv import Confirm, Forget, ForgetTeacher, Teach
from rcl_interfaces.msg import SetParametersResult
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from ..core.errors import GuardError, InputError
from ..core.guard import Guard, GuardConfig
from ..core.recognizer import RecognizerConfig
from ..core.screening import ScreeningConfig
from ..core.session import Feedback, LearningDisabled, Outcome, SessionConfig
from ..core.validation import DEFAULT_TEACHER, check_label, check_teacher
from ..defences import DEFENCES
from . import common, messages
from .common import EVENT_QOS, FEEDBACK_QOS, FRAME_QOS, GuardedNode
from .convert import compressed_to_rgb, draw_decision, image_to_rgb, rgb_to_image

try:  # optional: a detector's output as it is, where vision_msgs is installed (no wheel of it on PyPI)
    from vision_msgs.msg import Detection2DArray
except ImportError:
    Detection2DArray = None

#: The classes topic is latched: a subscriber that comes late still gets the latest list.
LATCHED_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class GuardNode(GuardedNode):
    def __init__(self, **kwargs):
        super().__init__("guard_node", **kwargs)
        p = common.Parameters(self, "guard.yaml")
        r = common.declare_settings(p, RecognizerConfig, read_only=True)
        defences = p("defences", f"defences in order, comma-separated: {', '.join(DEFENCES)} "
                     "(name:key=value sets a parameter); empty: the reject option alone")
        self.roi_timeout = p("roi_timeout", "seconds a roi message stays valid", lo=0.0, hi=60.0)
        session = common.declare_settings(p, SessionConfig)
        session["class_thresholds"] = p("class_thresholds", 'JSON {"class": threshold} overriding threshold')
        screening = common.declare_settings(p, ScreeningConfig)
        model_path = common.resolve_model_path(p("model_path", "model file loaded at start and saved to "
                                                 "(relative: under $ROS_HOME/icub_guard; empty: nothing saved)",
                                                 read_only=True))
        autosave = p("autosave", "save the model after every update")
        recover = p("recover_journal", "start from a damaged label journal: keep it aside, recover every record that "
                    "verifies, name the lost ones (else a damaged journal stops the start)", read_only=True)
        self.debug_image = p("debug_image", "publish debug_image")
        period = p("diagnostics_period", "seconds between /diagnostics messages (steady clock)", lo=0.1, hi=60.0)
        self.service_queue_depth = p("service_queue_depth", "requests each service queues while the node is busy",
                                     read_only=True, lo=1, hi=100000)
        image_qos = common.qos_parameters(p, "image", "the image subscription")
        transport = p("image_transport", "camera input: raw (image, sensor_msgs/Image) | compressed "
                      "(image/compressed, sensor_msgs/CompressedImage: JPEG or PNG)", read_only=True)
        if transport not in ("raw", "compressed"):
            raise ValueError(f"image_transport must be raw or compressed, got {transport!r}")
        out_qos = common.qos_parameters(p, "publisher", "label, decision and the teacher's queries")

        self.guard = Guard.build(GuardConfig(RecognizerConfig(**r), SessionConfig(**session),
                                             ScreeningConfig(**screening), defences, model_path, autosave, recover),
                                 save_failed=self._save_failed)
        for note in self.guard.notes:  # e.g. random backbone weights: on /rosout, not only stderr
            self.get_logger().warning(note)
        # an unreadable model file or damaged journal is a start-up error (exit 2, the reason said), files untouched
        restored = self.guard.restore()
        (self.get_logger().error if self.guard.problem else self.get_logger().info)(restored)
        self.roi: tuple[tuple[int, int, int, int], float] | None = None
        self.regions: tuple[list[tuple[int, int, int, int]], list[str], float] | None = None

        self.pub_label = self.create_publisher(String, "label", out_qos)
        self.pub_decision = self.create_publisher(messages.Decision, "decision", out_qos)
        self.pub_decisions = self.create_publisher(messages.DecisionArray, "decisions", out_qos)
        self.pub_classes = self.create_publisher(messages.ClassList, "classes", LATCHED_QOS)
        self.classes_sent: tuple | None = None
        self.pub_debug = self.create_publisher(Image, "debug_image", FRAME_QOS)
        self.pub_query = self.create_publisher(messages.Query, "teacher/query", out_qos)
        self.pub_query_img = self.create_publisher(Image, "teacher/query_image", out_qos)
        self.pub_labels = self.create_publisher(messages.Label, "teacher/labels", FEEDBACK_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", EVENT_QOS)
        if transport == "compressed":
            self.decode = compressed_to_rgb
            self.create_subscription(CompressedImage, "image/compressed", self.on_image, image_qos)
        else:
            self.decode = image_to_rgb
            self.create_subscription(Image, "image", self.on_image, image_qos)
        self.create_subscription(RegionOfInterest, "roi", self.on_roi, EVENT_QOS)
        self.create_subscription(messages.RegionArray, "regions", self.on_regions, EVENT_QOS)
        if Detection2DArray is not None:
            self.create_subscription(Detection2DArray, "detections", self.on_detections, EVENT_QOS)
        else:
            self.get_logger().info("vision_msgs is not installed: no `detections` (Detection2DArray) subscription; "
                                   "`regions` (RegionArray) takes a detector's boxes")
        self.create_subscription(String, "teacher/feedback", self.on_feedback, FEEDBACK_QOS,
                                 event_callbacks=self.count_lost("feedback"))
        self.create_service(Teach, "~/teach", self.on_teach)
        self.create_service(Confirm, "~/confirm", self.on_confirm)
        self.create_service(Trigger, "~/save_model", self.on_save)
        self.create_service(Trigger, "~/reset_model", self.on_reset)
        self.create_service(SetBool, "~/set_learning", self.on_set_learning)
        self.create_service(ForgetTeacher, "~/forget_teacher", self.on_forget_teacher)
        self.create_service(Forget, "~/forget", self.on_forget)
        self.add_on_set_parameters_callback(self.validate_params)
        self.add_post_set_parameters_callback(self.apply_params)
        self.create_health_timer(period, self.publish_diagnostics)
        self.publish_classes()
        fx = self.guard.rec.extractor
        self.get_logger().info(f"ready: {fx.spec.id} on {fx.device}, classifier {r['classifier']}, "
                               f"{len(self.guard.classes)} classes known")

    def destroy_node(self):
        guard = getattr(self, "guard", None)  # None when start-up failed before it existed
        if guard is not None and not guard.close(timeout=60.0):
            self.get_logger().error("model not fully saved before shutdown (timeout)")
        return super().destroy_node()

    # --------------------------------------------------------- messages
    def on_roi(self, msg: RegionOfInterest) -> None:
        self.roi = ((int(msg.x_offset), int(msg.y_offset), int(msg.width), int(msg.height)), time.monotonic())

    def on_regions(self, msg) -> None:
        """Every region of the frames to come (valid for `roi_timeout`, like `roi`); an empty array clears them."""
        boxes = [(int(r.roi.x_offset), int(r.roi.y_offset), int(r.roi.width), int(r.roi.height)) for r in msg.regions]
        self._set_regions(boxes, [r.id for r in msg.regions])

    def on_detections(self, msg) -> None:
        """A detector's Detection2DArray, taken as a RegionArray (boxes on the pixel grid, each `id` its region id).
        One malformed detection refuses the message (counted as `rejected_input.detections`); the regions stay."""
        try:
            boxes, ids = messages.detection_regions(msg)
        except InputError as exc:
            self.reject_input("detections", exc)
            return
        self._set_regions(boxes, ids)

    def _set_regions(self, boxes: list[tuple[int, int, int, int]], ids: list[str]) -> None:
        """The regions of the frames to come, from either topic; none clears them (one region per frame again)."""
        self.regions = (boxes, ids, time.monotonic()) if boxes else None

    def on_image(self, msg: Image | CompressedImage) -> None:
        t0 = time.perf_counter()
        now = time.monotonic()
        regions = self.regions if self.regions is not None and now - self.regions[2] <= self.roi_timeout else None
        roi = self.roi[0] if self.roi is not None and now - self.roi[1] <= self.roi_timeout else None
        try:
            rgb = self.decode(msg)
            frames = (self.guard.frame_regions(rgb, regions[0], source=msg.header) if regions is not None
                      else [self.guard.frame(rgb, roi, source=msg.header)])
        except InputError as exc:
            self.reject_input("image" if regions is None else "regions", exc)
            return
        stamp, frame_id = msg.header.stamp, msg.header.frame_id
        out = []
        for i, f in enumerate(frames):
            if f.query is not None:
                self._ask(f.step, f.crop, msg.header)
            body = self.guard.decision_payload(f, **({"region_id": regions[1][i]} if regions is not None else {}))
            out.append(messages.decision_msg(body, msg.header))
        if len(out) == 1:  # the single-region topics, as they always were
            self.pub_decision.publish(out[0])
            self.pub_label.publish(String(data=frames[0].decision.label))
        if self.pub_decisions.get_subscription_count() > 0:
            self.pub_decisions.publish(messages.DecisionArray(header=msg.header, decisions=out))
        if self.debug_image and self.pub_debug.get_subscription_count() > 0:
            for f in frames:  # every region drawn
                rgb = draw_decision(rgb, f.roi.as_tuple(), f.decision)
            self.pub_debug.publish(rgb_to_image(rgb, stamp, frame_id))
        self.health.frame(1e3 * (time.perf_counter() - t0))  # /diagnostics: the whole frame, publishing included

    def on_feedback(self, msg: String) -> None:
        try:
            self._settled(self.guard.feedback(msg.data))
        except LearningDisabled as exc:
            self.get_logger().info(str(exc))
        except InputError as exc:
            self.reject_input("feedback", exc)
        except OSError as exc:  # the journal could not be written: not acknowledged
            self._journal_failed(exc)

    def _settled(self, outcome: Outcome) -> None:
        """Log and announce what became of a label; ask the confirm question of a label held; a new class is
        announced."""
        self.get_logger().info(outcome.describe())
        self.pub_labels.publish(messages.label_msg(outcome, messages.header_of(self.get_clock().now().to_msg())))
        if outcome.problem:
            self.get_logger().error(outcome.problem)
        if outcome.query is not None:  # about a frame seen before: its crop and header were kept with it
            seen = self.guard.seen(outcome.query.decision_id)
            self._ask(outcome.query, seen and seen.crop, seen and seen.source)
        self.publish_classes()

    def _ask(self, item, crop, header) -> None:
        """A question to the teacher, and its crop, stamped as the frame it is about."""
        head = header if header is not None else messages.header_of(self.get_clock().now().to_msg())
        self.pub_query.publish(messages.query_msg(self.guard.query_payload(item), head))
        if crop is not None and header is not None:
            self.pub_query_img.publish(rgb_to_image(crop, header.stamp, header.frame_id))

    def publish_classes(self) -> None:
        """The classes and their thresholds on the latched `classes` topic, when they changed."""
        thresholds = self.guard.session.thresholds()
        state = (tuple(self.guard.classes), tuple(thresholds.items()), self.guard.rec.n_examples)
        if state != self.classes_sent:
            self.classes_sent = state
            self.pub_classes.publish(messages.class_list(
                self.guard.classes, thresholds, self.guard.rec.n_examples,
                messages.header_of(self.get_clock().now().to_msg())))

    def _journal_failed(self, exc: OSError) -> None:
        self.health.counts["journal_errors"] += 1
        self.guard.problem = f"label journal not writable: {exc}"
        self.get_logger().error(f"label journal write failed ({exc}); the label is not acknowledged")

    def _save_failed(self, exc: Exception) -> None:
        self.health.counts["save_errors"] += 1
        self.get_logger().error(f"saving {self.guard.model_path} failed: {exc}")

    # --------------------------------------------------------- services
    def _respond(self, resp, action, done, bad_input: str | None = None):
        """A service's call into the guard; `done(result)` gives (success, message). A refusal (`InputError`,
        counted as `bad_input`) or a journal that could not be written (`OSError`: not acknowledged) is the
        response's failure message."""
        try:
            resp.success, resp.message = done(action())
        except InputError as exc:
            if bad_input is not None:
                self.health.reject(bad_input)
            resp.success, resp.message = False, str(exc)
        except OSError as exc:
            self._journal_failed(exc)
            resp.success, resp.message = False, f"not stored durably: {exc}"
        return resp

    def on_teach(self, req, resp):
        """A teacher's label by service: the response says what became of it (learned, held, refused) and why."""
        def label() -> Outcome:
            if req.query_id and req.decision_id:
                raise InputError("name at most one of query_id and decision_id")
            # checked before the session is touched: a bad label never closes the question it names
            teacher = check_teacher(req.teacher or DEFAULT_TEACHER)
            return self.guard.feedback(Feedback(check_label(req.label), int(req.query_id) or None,
                                                int(req.decision_id) or None, teacher))
        return self._settle_call(resp, label, "teach")

    def on_confirm(self, req, resp):
        """The teacher says the last decision was right: learned like a label (screened first)."""
        return self._settle_call(resp, lambda: self.guard.confirm(check_teacher(req.teacher or DEFAULT_TEACHER)),
                                 None)

    def _settle_call(self, resp, action, bad_input: str | None):
        """A label by service: `outcome` learned | held | refused, or ignored (learning off), invalid (refused
        before screening, counted as `bad_input`), failed (the journal could not store it: not acknowledged)."""
        try:
            outcome = action()
        except LearningDisabled as exc:
            resp.outcome, resp.reason = "ignored", str(exc)
            return resp
        except InputError as exc:
            if bad_input is not None:
                self.reject_input(bad_input, exc)
            resp.outcome, resp.reason = "invalid", str(exc)
            return resp
        except OSError as exc:
            self._journal_failed(exc)
            resp.outcome, resp.reason = "failed", f"not stored durably: {exc}"
            return resp
        self._settled(outcome)
        journal = self.guard.session.journal
        return messages.teach_fields(resp, outcome, journal.last_seq if journal is not None else None)

    def on_forget_teacher(self, req, resp):
        """Undo a teacher: every example it taught is removed, the model re-solved (journaled, then saved)."""
        return self._respond(resp, lambda: self.guard.forget_teacher(req.teacher),
                             lambda ids: self._forgot(resp, ids, f"teacher {req.teacher[:40]!r}"), "forget")

    def on_forget(self, req, resp):
        """Undo one decision's label."""
        return self._respond(resp, lambda: self.guard.forget_decision(int(req.decision_id)),
                             lambda ids: self._forgot(resp, ids, f"decision {req.decision_id}"), "forget")

    def _forgot(self, resp, removed: list[int], what: str) -> tuple[bool, str]:
        self.get_logger().warning(f"forgot {what}: {len(removed)} examples removed, {len(self.guard.classes)} left")
        resp.removed = len(removed)
        self.publish_classes()
        return True, f"forgot {what}: {len(removed)} examples removed"

    def on_save(self, req, resp):
        try:
            resp.success, resp.message = True, self.guard.save()
        except (InputError, OSError, GuardError) as exc:
            resp.success, resp.message = False, str(exc)
        return resp

    def on_reset(self, req, resp):
        self.guard.reset()
        self.publish_classes()
        resp.success, resp.message = True, "model reset: no classes known"
        self.get_logger().warning("model reset by request")
        return resp

    def on_set_learning(self, req, resp):
        self.set_parameters([rclpy.parameter.Parameter("learning_enabled", value=bool(req.data))])
        resp.success, resp.message = True, f"learning {'on' if req.data else 'off'}"
        return resp

    # ------------------------------------------------------- parameters
    def validate_params(self, params) -> SetParametersResult:
        """On-set: refuse a change that the guard would not accept (nothing is applied here)."""
        try:
            self.guard.check_settings({p.name: p.value for p in params})
        except ValueError as exc:  # InputError included
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def apply_params(self, params) -> None:
        """Post-set: the change was accepted; apply it."""
        for line in self.guard.apply_settings({p.name: p.value for p in params}):
            self.get_logger().info(line)
        for prm in params:
            if prm.name in ("roi_timeout", "debug_image"):  # the node's own
                setattr(self, prm.name, prm.value)
        self.publish_classes()  # thresholds may have changed

    def publish_diagnostics(self) -> None:
        issues = [*self.guard.notes, *([self.guard.problem] if self.guard.problem else [])]
        fx = self.guard.rec.extractor
        self.pub_diag.publish(self.diagnostics(
            "recognition", f"{fx.spec.id}@{fx.device}", DiagnosticStatus.WARN if issues else DiagnosticStatus.OK,
            "; ".join(issues) or "ok", {**self.guard.status(), "last_error": self.health.last_error}))


def main(args=None) -> int:
    """The process entry point (`ros2 run icub_guard guard_node`): runs the node, then ends the process."""
    common.exit_process(common.run_node(GuardNode, args))


if __name__ == "__main__":
    sys.exit(main())
