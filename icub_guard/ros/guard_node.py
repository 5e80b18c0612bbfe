"""guard_node: the robot's guarded recogniser — image in, label (or a question) out.

Subscribes  image (sensor_msgs/Image, newest frame only), roi (sensor_msgs/RegionOfInterest),
            teacher/feedback (std_msgs/String: a label, or JSON {"query_id"|"decision_id": n, "label": s,
            "teacher": name})
Publishes   label (String), decision (String, JSON icub_guard/decision@1), debug_image (Image),
            teacher/query (String, JSON icub_guard/query@1; reason "confirm": a label held, asked back),
            teacher/query_image (Image), /diagnostics (per-teacher trust and counts included)
Services    teacher/confirm (std_srvs/Trigger); node-private ~/save_model, ~/reset_model (Trigger),
            ~/set_learning (SetBool), ~/forget_teacher and ~/forget (diagnostic_msgs/AddDiagnostics:
            the request's one string is the teacher's name, or the decision id; success and message back)

The teaching protocol (ids, when to ask, feedback, screening, undo) is `core.session.TeachingSession`
with `core.screening`; this node converts messages, holds parameters and publishes.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from dataclasses import fields
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from diagnostic_msgs.srv import AddDiagnostics
from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from ..core.errors import GuardError, InputError
from ..core.features import build_extractor
from ..core.journal import LabelJournal
from ..core.recognizer import Recognizer, RecognizerConfig
from ..core.screening import ScreeningConfig
from ..core.session import LearningDisabled, Outcome, SessionConfig, TeachingSession, parse_class_thresholds
from ..defences import DEFENCES
from ..defences.online import OnlineDefences, parse_specs
from .common import EVENT_QOS, FEEDBACK_QOS, FRAME_QOS, GuardedNode, Parameters, exit_process, json_msg, qos, run_node
from .convert import image_to_rgb, rgb_to_image
from .saver import BackgroundSaver

#: runtime parameters that are the teaching session's settings
SESSION_PARAMS = ("threshold", "class_thresholds", "query_on_reject", "query_margin", "query_rate_limit",
                  "learning_enabled")
#: runtime parameters that are the label screening's settings: parameter name → ScreeningConfig field
SCREENING_PARAMS = {ScreeningConfig.parameter(f.name): f.name for f in fields(ScreeningConfig)}
SCREENING_HELP = {
    "enabled": ("screen teachers' labels: learn, ask back (confirm) or refuse", None),
    "quarantine_at": ("suspicion from which a label is held and asked back", (0.0, 1.0)),
    "refuse_at": ("suspicion from which a label is refused at once", (0.0, 1.0)),
    "max_answers": ("answers to a label asked back before it is refused (two must agree)", (2, 10)),
    "audit_rate": ("share of passing labels asked back at random", (0.0, 1.0)),
    "neighbours": ("nearest stored examples consulted", (1, 100000)),
    "min_examples": ("no evidence before the model holds this many examples", (1, 100000)),
    "evidence_gain": ("log-odds of suspicion per unit of evidence", (0.0, 100.0)),
    "margin_scale": ("score margin at which the model's disagreement counts fully", (1e-6, 100.0)),
    "prior_trust": ("a new teacher's trust", (0.01, 0.99)),
    "prior_weight": ("how many labels the trust prior is worth", (0.1, 1e6)),
    "max_teacher_share": ("containment: most of a class one teacher may teach unconfirmed", (0.0, 1.0)),
    "share_min_examples": ("classes smaller than this are not capped", (1, 100000)),
}


class GuardNode(GuardedNode):
    def __init__(self, **kwargs):
        super().__init__("guard_node", **kwargs)
        p = Parameters(self, "guard.yaml")
        backbone = p("backbone", "alexnet | vgg16 | resnet18 | resnet50", read_only=True)
        weights = p("weights", "imagenet | random | auto | path to a checkpoint", read_only=True)
        input_size = p("input_size", "network input size (px)", read_only=True, lo=32, hi=1024)
        device = p("device", "auto | cpu | cuda | cuda:N", read_only=True)
        seed = p("seed", "seed for random weights", read_only=True, lo=0, hi=2**31 - 1)
        classifier = p("classifier", "svm | svm-rbf | svm-adv | rls", read_only=True)
        C = p("C", "SVM C", read_only=True, lo=1e-6, hi=1e6)
        gamma = p("gamma", "RBF gamma; 0 = median heuristic", read_only=True, lo=0.0, hi=1e6)
        budget = p("max_per_class", "examples kept per class (0 = unbounded)", read_only=True, lo=0, hi=100000)
        roi_mode = p("roi_mode", "full | fixed | auto (used when no roi message is fresh)", read_only=True)
        roi_fixed = p("roi_fixed", "x, y, w, h for roi_mode fixed", read_only=True)
        crop_size = p("crop_size", "crop side fed to the network (px)", read_only=True, lo=8, hi=1024)
        self.defences = OnlineDefences(parse_specs(p(
            "defences", f"defences in order, comma-separated: {', '.join(DEFENCES)} "
            "(name:key=value sets a parameter); empty: the reject option alone")),
            seed=seed)
        self.roi_timeout = p("roi_timeout", "seconds a roi message stays valid", lo=0.0, hi=60.0)
        session = {
            "threshold": p("threshold", "threshold of new classes; setting it at runtime resets all classes",
                           lo=-10.0, hi=10.0),
            "class_thresholds": p("class_thresholds", 'JSON {"class": threshold} overriding threshold'),
            "query_on_reject": p("query_on_reject", "ask the teacher when a frame is rejected"),
            "query_margin": p("query_margin", "also ask when top-2 score margin is below this", lo=0.0, hi=10.0),
            "query_rate_limit": p("query_rate_limit", "max teacher queries per second (0 = never ask)", lo=0.0,
                                  hi=100.0),
            "learning_enabled": p("learning_enabled", "learn from teacher feedback"),
        }
        screening = {}
        for param, name in SCREENING_PARAMS.items():
            text, bounds = SCREENING_HELP[name]
            screening[name] = p(param, text, **({} if bounds is None else {"lo": bounds[0], "hi": bounds[1]}))
        self.model_path = p("model_path", "model file loaded at start and saved to", read_only=True)
        self.autosave = p("autosave", "save the model after every update")
        self.publish_debug = p("debug_image", "publish debug_image")
        period = p("diagnostics_period", "seconds between /diagnostics messages", lo=0.1, hi=60.0)
        image_qos = qos(p("image_qos_reliability", "QoS of the image subscription: best_effort | reliable",
                          read_only=True), p("image_qos_depth", "its queue depth", read_only=True, lo=1, hi=100000))
        out_qos = qos(p("publisher_qos_reliability", "QoS of label, decision, queries: reliable | best_effort",
                        read_only=True), p("publisher_qos_depth", "their queue depth", read_only=True, lo=1, hi=100000))

        fx, degraded = build_extractor(backbone, weights, seed, input_size, device)
        self.degraded = [degraded] if degraded else []
        self.journal_problem: str | None = None
        cfg = RecognizerConfig(backbone=backbone, weights=fx.spec.weights, seed=seed, input_size=input_size,
                               device=device, classifier=classifier, C=C, gamma=gamma if gamma > 0 else "median",
                               max_per_class=budget or None, roi_mode=roi_mode,
                               roi_fixed=tuple(roi_fixed) if roi_mode == "fixed" else None, crop_size=crop_size)
        self.rec = Recognizer(cfg, extractor=fx)
        journal = LabelJournal.beside(self.model_path) if self.model_path else None
        self.session = TeachingSession(self.rec, SessionConfig(**session), journal=journal,
                                       screening=ScreeningConfig(**screening))
        self.crops: OrderedDict[int, tuple[np.ndarray, object, str]] = OrderedDict()  # decision → crop, stamp, frame
        if self.model_path:
            # a model file that cannot be read is a start-up error (exit 2, the reason said): never overwritten
            replayed = self.session.restore(self.model_path)
            self.get_logger().info(f"model {self.model_path}: {len(self.rec.classes)} classes, "
                                   f"{self.rec.n_examples} examples ({replayed} replayed from the label journal)")
        self.saver = BackgroundSaver(lambda: self.session.snapshot(self.model_path), self._save_failed)
        self.roi: tuple[tuple[int, int, int, int], float] | None = None
        self.last_error = "-"

        self.pub_label = self.create_publisher(String, "label", out_qos)
        self.pub_decision = self.create_publisher(String, "decision", out_qos)
        self.pub_debug = self.create_publisher(Image, "debug_image", FRAME_QOS)
        self.pub_query = self.create_publisher(String, "teacher/query", out_qos)
        self.pub_query_img = self.create_publisher(Image, "teacher/query_image", out_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", EVENT_QOS)
        self.create_subscription(Image, "image", self.on_image, image_qos)
        self.create_subscription(RegionOfInterest, "roi", self.on_roi, EVENT_QOS)
        self.create_subscription(String, "teacher/feedback", self.on_feedback, FEEDBACK_QOS,
                                 event_callbacks=SubscriptionEventCallbacks(message_lost=self.on_feedback_lost))
        self.create_service(Trigger, "teacher/confirm", self.on_confirm)
        self.create_service(Trigger, "~/save_model", self.on_save)
        self.create_service(Trigger, "~/reset_model", self.on_reset)
        self.create_service(SetBool, "~/set_learning", self.on_set_learning)
        self.create_service(AddDiagnostics, "~/forget_teacher", self.on_forget_teacher)
        self.create_service(AddDiagnostics, "~/forget", self.on_forget)
        self.add_on_set_parameters_callback(self.validate_params)
        self.add_post_set_parameters_callback(self.apply_params)
        self.create_timer(period, self.publish_diagnostics)
        self.get_logger().info(f"ready: {fx.spec.id} on {fx.device}, classifier {classifier}, "
                               f"{len(self.rec.classes)} classes known")

    # ------------------------------------------------------------- state
    def _save(self, reason: str) -> str | None:
        """Save now, in this thread (the save_model service); returns the error, if any."""
        if not self.model_path or self.rec.classifier is None:
            return None
        self.saver.flush()  # no background write may land after this one
        try:
            self.session.snapshot(self.model_path)
            self.health.counts["saves"] += 1
            return None
        except (OSError, GuardError) as exc:
            self._save_failed(exc)
            return str(exc)

    def _save_failed(self, exc: Exception) -> None:
        self.health.counts["save_errors"] += 1
        self.get_logger().error(f"saving {self.model_path} failed: {exc}")

    def destroy_node(self):
        saver = getattr(self, "saver", None)  # None when start-up failed before it existed
        if saver is not None and not saver.close(timeout=60.0):
            self.get_logger().error("model not fully saved before shutdown (timeout)")
        return super().destroy_node()

    # --------------------------------------------------------- callbacks
    def on_roi(self, msg: RegionOfInterest) -> None:
        self.roi = ((int(msg.x_offset), int(msg.y_offset), int(msg.width), int(msg.height)), time.monotonic())

    def on_image(self, msg: Image) -> None:
        t0 = time.perf_counter()
        try:
            rgb = image_to_rgb(msg)
            roi = None
            if self.roi is not None and time.monotonic() - self.roi[1] <= self.roi_timeout:
                roi = self.roi[0]
            crop, r = self.rec.crop(rgb, roi)
        except InputError as exc:
            self._bad_input("image", exc)
            return
        try:
            feats = self.rec.features(crop)
            decision = self.defences.review(self.rec, self.rec.classify_features(feats)[0], crop, feats)
            step = self.session.observe(feats, decision=decision)
            d = step.decision
        except Exception as exc:  # a robot's recogniser must outlive a bug: log loudly, count, go on
            self.health.counts["internal_errors"] += 1
            self.get_logger().error(f"recognition failed: {exc!r}", throttle_duration_sec=1.0)
            return
        latency = 1e3 * (time.perf_counter() - t0)  # recognition: the decision's latency_ms
        stamp = {"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec}
        self.crops[step.decision_id] = (crop, msg.header.stamp, msg.header.frame_id)  # for questions asked later
        while len(self.crops) > self.session.config.max_pending:
            self.crops.popitem(last=False)
        if step.query is not None:
            self.pub_query.publish(json_msg(self.session.query_payload(step, stamp=stamp)))
            self.pub_query_img.publish(rgb_to_image(crop, msg.header.stamp, msg.header.frame_id))
        self.pub_decision.publish(json_msg(self.session.decision_payload(
            step, stamp=stamp, frame_id=msg.header.frame_id, roi=list(r.as_tuple()),
            roi_source="topic" if roi is not None else self.rec.config.roi_mode, latency_ms=latency)))
        self.pub_label.publish(String(data=d.label))
        if self.publish_debug and self.pub_debug.get_subscription_count() > 0:
            self.pub_debug.publish(rgb_to_image(self._draw(rgb, r.as_tuple(), d), msg.header.stamp,
                                                msg.header.frame_id))
        self.health.frame(1e3 * (time.perf_counter() - t0))  # /diagnostics: the whole frame, publishing included

    def on_feedback(self, msg: String) -> None:
        try:
            outcome = self.session.feedback(msg.data)
        except LearningDisabled as exc:
            self.get_logger().info(str(exc))
            return
        except InputError as exc:
            self._bad_input("feedback", exc)
            return
        except OSError as exc:  # the journal could not be written: learned in memory, not acknowledged
            self._journal_failed(exc)
            return
        self._settled(outcome, "feedback")

    def _settled(self, outcome: Outcome, source: str) -> None:
        """Log what became of a label; ask the confirm question of a label held; save a learned one."""
        self.get_logger().info(outcome.describe())
        if outcome.query is not None:
            extra = {}
            held = self.crops.get(outcome.query.decision_id or -1)
            if held is not None:
                crop, stamp, frame_id = held
                extra["stamp"] = {"sec": stamp.sec, "nanosec": stamp.nanosec}
            self.pub_query.publish(json_msg(self.session.query_payload(outcome.query, **extra)))
            if held is not None:
                self.pub_query_img.publish(rgb_to_image(crop, stamp, frame_id))
        if outcome.report is not None:
            self._learned(outcome.report, source)
            self._augment(outcome)

    def _augment(self, outcome: Outcome) -> None:
        """`adv_augment` among the defences: the label's crop, attacked, is learned too (same teacher, decision)."""
        held = self.crops.get(outcome.decision_id if outcome.decision_id is not None else -1)
        if self.defences.augment is None or held is None:
            return
        feats = self.defences.augmented_features(self.rec, held[0], outcome.label)
        if feats is None:
            return
        try:
            self.session.learn_extra(feats, outcome.label, outcome.teacher, outcome.decision_id, "adversarial")
        except OSError as exc:
            self._journal_failed(exc)
            return
        self.health.counts["augmented"] += 1

    def _journal_failed(self, exc: OSError) -> None:
        self.health.counts["journal_errors"] += 1
        self.journal_problem = f"label journal not writable: {exc}"
        self.get_logger().error(f"label journal write failed ({exc}); the label is not acknowledged")

    def on_feedback_lost(self, info) -> None:
        """DDS says feedback never reached us (a peer's queue overflowed): counted, never silent."""
        self.health.counts["feedback_lost"] += int(info.total_count_change)
        self.get_logger().warning(f"{info.total_count_change} teacher feedback message(s) lost in transport",
                                  throttle_duration_sec=1.0)

    def _learned(self, report, source: str) -> None:
        self.get_logger().info(f"learned {report.label!r} from {source} "
                               f"({'new class' if report.new_class else 'known'}; {report.n_classes} classes, "
                               f"{1e3 * report.seconds:.1f} ms)")
        if self.autosave and self.model_path:
            self.saver.request()  # a snapshot in the background; the label itself is already in the journal

    def _core_call(self, resp, action, bad_input: str | None = None) -> tuple[bool, object]:
        """A service's call into the core: a refusal (`InputError`, counted as `bad_input`) or a journal that
        could not be written (`OSError`: not acknowledged) is the response's failure message."""
        try:
            return True, action()
        except InputError as exc:
            if bad_input is not None:
                self.health.reject(bad_input)
            resp.success, resp.message = False, str(exc)
        except OSError as exc:
            self._journal_failed(exc)
            resp.success, resp.message = False, f"not stored durably: {exc}"
        return False, None

    def on_confirm(self, req, resp):
        ok, outcome = self._core_call(resp, self.session.confirm)
        if not ok:
            return resp
        self._settled(outcome, "confirm")
        resp.success = outcome.action == "learned"
        resp.message = (f"learned confirmed label {outcome.label!r}" if resp.success
                        else f"label {outcome.label!r} {outcome.action} (suspicion {outcome.verdict.suspicion:.2f})")
        return resp

    def on_forget_teacher(self, req, resp):
        """Undo a teacher: every example it taught is removed, the model re-solved (journaled, then saved)."""
        return self._forget(resp, lambda: self.session.forget_teacher(req.load_namespace),
                            f"teacher {req.load_namespace[:40]!r}")

    def on_forget(self, req, resp):
        """Undo one decision's label (the request's string is the decision id)."""
        text = req.load_namespace.strip()
        if not text.isdigit() or len(text) > 18:
            resp.success, resp.message = False, f"decision id must be a whole number, got {text[:40]!r}"
            self.health.reject("forget")
            return resp
        return self._forget(resp, lambda: self.session.forget_decision(int(text)), f"decision {text}")

    def _forget(self, resp, action, what: str):
        ok, removed = self._core_call(resp, action, bad_input="forget")
        if not ok:
            return resp
        self.get_logger().warning(f"forgot {what}: {len(removed)} examples removed, "
                                  f"{len(self.rec.classes)} classes left")
        if self.autosave and self.model_path and self.rec.classifier is not None:
            self.saver.request()
        resp.success, resp.message = True, f"forgot {what}: {len(removed)} examples removed"
        return resp

    def on_save(self, req, resp):
        if not self.model_path:
            resp.success, resp.message = False, "parameter model_path is empty"
        elif self.rec.classifier is None:
            resp.success, resp.message = False, "nothing learned yet"
        else:
            err = self._save("save_model request")
            resp.success, resp.message = err is None, err or f"saved {self.model_path}"
        return resp

    def on_reset(self, req, resp):
        self.saver.flush()  # a pending autosave must not resurrect the old model
        self.session.reset()  # and its journal
        if self.model_path:
            Path(self.model_path).unlink(missing_ok=True)  # a restart must not bring the old model back
        resp.success, resp.message = True, "model reset: no classes known"
        self.get_logger().warning("model reset by request")
        return resp

    def on_set_learning(self, req, resp):
        self.set_parameters([rclpy.parameter.Parameter("learning_enabled", value=bool(req.data))])
        resp.success, resp.message = True, f"learning {'on' if req.data else 'off'}"
        return resp

    def validate_params(self, params) -> SetParametersResult:
        """On-set: refuse a change that the session would not accept (nothing is applied here)."""
        changes = {prm.name: prm.value for prm in params if prm.name in SESSION_PARAMS}
        screening = {SCREENING_PARAMS[prm.name]: prm.value for prm in params if prm.name in SCREENING_PARAMS}
        try:
            for prm in params:
                if prm.name == "defences":
                    parse_specs(prm.value)
            if "class_thresholds" in changes:
                changes["class_thresholds"] = parse_class_thresholds(changes["class_thresholds"])
            current = {k: getattr(self.session.config, k) for k in SESSION_PARAMS}
            SessionConfig(**{**current, **changes})
            now = {f.name: getattr(self.session.screen.config, f.name) for f in fields(ScreeningConfig)}
            ScreeningConfig(**{**now, **screening})
        except ValueError as exc:  # InputError included
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def apply_params(self, params) -> None:
        """Post-set: the change was accepted; apply it."""
        changes = {prm.name: prm.value for prm in params if prm.name in SESSION_PARAMS}
        if "class_thresholds" in changes:
            changes["class_thresholds"] = parse_class_thresholds(changes["class_thresholds"])
        if changes:
            self.session.configure(**changes)
        screening = {SCREENING_PARAMS[prm.name]: prm.value for prm in params if prm.name in SCREENING_PARAMS}
        if screening:
            self.session.configure_screening(**screening)
        for prm in params:
            if prm.name in ("autosave", "roi_timeout"):
                setattr(self, prm.name, prm.value)
            elif prm.name == "debug_image":
                self.publish_debug = prm.value
            elif prm.name == "defences":
                self.defences = OnlineDefences(parse_specs(prm.value), seed=self.defences.seed)
                self.get_logger().info(f"defences: {', '.join(self.defences.specs) or 'none (reject option alone)'}")

    # ----------------------------------------------------------- helpers
    def _bad_input(self, where: str, exc: Exception) -> None:
        """Log and count a rejected message; nothing is learned from it, the node goes on."""
        self.health.reject(where)
        self.get_logger().warning(f"rejected {where}: {exc}", throttle_duration_sec=1.0)
        self.last_error = f"{where}: {exc}"

    @staticmethod
    def _draw(rgb: np.ndarray, roi, d) -> np.ndarray:
        img = rgb.copy()
        x, y, w, h = roi
        color = (0, 200, 0) if d.accepted else (230, 40, 40)
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), color, 1)
        top = max(d.scores.values()) if d.scores else float("nan")
        cv2.putText(img, f"{d.label} {top:.2f}", (x, max(10, y - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, color, 1)
        return img

    def publish_diagnostics(self) -> None:
        issues = [*self.degraded, *([self.journal_problem] if self.journal_problem else [])]
        level = DiagnosticStatus.WARN if issues else DiagnosticStatus.OK
        fx = self.rec.extractor
        self.pub_diag.publish(self.diagnostics("recognition", f"{fx.spec.id}@{fx.device}", level,
            "; ".join(issues) or "ok",
            {"device": fx.device, "backbone": fx.spec.id, "classes": len(self.rec.classes),
             "examples": self.rec.n_examples, "learning": self.session.config.learning_enabled,
             "model_path": self.model_path or "-",
             "saves": self.saver.saves + self.health.counts["saves"],
             **self.session.counts,  # the protocol's own counts: queries, accepted/rejected, learned, …
             **{f"teacher.{name}.{k}": f"{v:.3f}" if isinstance(v, float) else v
                for name, rec in self.session.teachers().items() for k, v in rec.items()},
             "last_error": self.last_error}))


def main(args=None) -> int:
    """The process entry point (`ros2 run icub_guard guard_node`): runs the node, then ends the process."""
    exit_process(run_node(GuardNode, args))


if __name__ == "__main__":
    sys.exit(main())
