"""guard_node: the robot's guarded recogniser — image in, label (or a question) out.

Subscribes  image (sensor_msgs/Image, newest frame only), roi (sensor_msgs/RegionOfInterest),
            teacher/feedback (std_msgs/String: a label, or JSON {"query_id"|"decision_id": n, "label": s})
Publishes   label (String), decision (String, JSON icub_guard/decision@1), debug_image (Image),
            teacher/query (String, JSON icub_guard/query@1), teacher/query_image (Image), /diagnostics
Services    teacher/confirm, save_model, reset_model (std_srvs/Trigger), set_learning (std_srvs/SetBool)
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from ..core.errors import GuardError, InputError
from ..core.features import build_extractor
from ..core.recognizer import Recognizer, RecognizerConfig
from ..core.validation import UNKNOWN, check_label
from .common import DECISION_SCHEMA, EVENT_QOS, FRAME_QOS, QUERY_SCHEMA, Health, declare, json_msg, run_node
from .convert import image_to_rgb, rgb_to_image
from .saver import BackgroundSaver

MAX_PENDING = 64  # queries and recent decisions kept for feedback; older ones are forgotten


class GuardNode(Node):
    def __init__(self, **kwargs):
        super().__init__("guard_node", **kwargs)
        p = lambda *a, **k: declare(self, *a, **k)
        backbone = p("backbone", "alexnet", "alexnet | vgg16 | resnet18 | resnet50", read_only=True)
        weights = p("weights", "auto", "imagenet | random | auto | path to a checkpoint", read_only=True)
        input_size = p("input_size", 224, "network input size (px)", read_only=True, lo=32, hi=1024)
        device = p("device", "auto", "auto | cpu | cuda | cuda:N", read_only=True)
        seed = p("seed", 0, "seed for random weights", read_only=True, lo=0, hi=2**31 - 1)
        classifier = p("classifier", "svm-adv", "svm | svm-rbf | svm-adv | rls", read_only=True)
        C = p("C", 10.0, "SVM C", read_only=True, lo=1e-6, hi=1e6)
        gamma = p("gamma", 0.0, "RBF gamma; 0 = median heuristic", read_only=True, lo=0.0, hi=1e6)
        budget = p("max_per_class", 100, "examples kept per class (0 = unbounded)", read_only=True, lo=0, hi=100000)
        roi_mode = p("roi_mode", "full", "full | fixed | auto (used when no roi message is fresh)", read_only=True)
        roi_fixed = p("roi_fixed", [0, 0, 0, 0], "x, y, w, h for roi_mode fixed", read_only=True)
        crop_size = p("crop_size", 64, "crop side fed to the network (px)", read_only=True, lo=8, hi=1024)
        self.roi_timeout = p("roi_timeout", 0.5, "seconds a roi message stays valid", lo=0.0, hi=60.0)
        self.threshold = p("threshold", 0.0, "threshold of new classes; setting it at runtime resets all classes",
                           lo=-10.0, hi=10.0)
        self.class_thresholds = p("class_thresholds", "", 'JSON {"class": threshold} overriding threshold')
        self.query_on_reject = p("query_on_reject", True, "ask the teacher when a frame is rejected")
        self.query_margin = p("query_margin", 0.0, "also ask when top-2 score margin is below this", lo=0.0, hi=10.0)
        self.query_rate = p("query_rate_limit", 2.0, "max teacher queries per second", lo=0.0, hi=100.0)
        self.learning = p("learning_enabled", True, "learn from teacher feedback")
        self.model_path = p("model_path", "", "model file loaded at start and saved to", read_only=True)
        self.autosave = p("autosave", True, "save the model after every update")
        self.publish_debug = p("debug_image", True, "publish debug_image")
        period = p("diagnostics_period", 1.0, "seconds between /diagnostics messages", lo=0.1, hi=60.0)

        fx, degraded = build_extractor(backbone, weights, seed, input_size, device)
        self.degraded = [degraded] if degraded else []
        cfg = RecognizerConfig(backbone=backbone, weights=fx.spec.weights, seed=seed, input_size=input_size,
                               device=device, classifier=classifier, C=C, gamma=gamma if gamma > 0 else "median",
                               max_per_class=budget or None, roi_mode=roi_mode,
                               roi_fixed=tuple(roi_fixed) if roi_mode == "fixed" else None, crop_size=crop_size)
        self.rec = Recognizer(cfg, extractor=fx)
        self.health = Health()
        self.autosave_blocked: str | None = None
        self._load_model()
        self.saver = BackgroundSaver(lambda: self.rec.save(self.model_path), self._save_failed)

        self.roi: tuple[tuple[int, int, int, int], float] | None = None
        self.next_id = 1
        self.pending: OrderedDict[int, tuple[np.ndarray, str]] = OrderedDict()  # query id → (features, stamp)
        self.recent: OrderedDict[int, tuple[np.ndarray, str]] = OrderedDict()  # decision id → (features, label)
        self.latest_query: int | None = None
        self.last_query_time = -math.inf
        self.last_error = "-"

        self.pub_label = self.create_publisher(String, "label", EVENT_QOS)
        self.pub_decision = self.create_publisher(String, "decision", EVENT_QOS)
        self.pub_debug = self.create_publisher(Image, "debug_image", FRAME_QOS)
        self.pub_query = self.create_publisher(String, "teacher/query", EVENT_QOS)
        self.pub_query_img = self.create_publisher(Image, "teacher/query_image", EVENT_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", EVENT_QOS)
        self.create_subscription(Image, "image", self.on_image, FRAME_QOS)
        self.create_subscription(RegionOfInterest, "roi", self.on_roi, EVENT_QOS)
        self.create_subscription(String, "teacher/feedback", self.on_feedback, EVENT_QOS)
        self.create_service(Trigger, "teacher/confirm", self.on_confirm)
        self.create_service(Trigger, "save_model", self.on_save)
        self.create_service(Trigger, "reset_model", self.on_reset)
        self.create_service(SetBool, "set_learning", self.on_set_learning)
        self.add_on_set_parameters_callback(self.on_params)
        self._apply_thresholds()
        self.create_timer(period, self.publish_diagnostics)
        self.get_logger().info(f"ready: {fx.spec.id} on {fx.device}, classifier {classifier}, "
                               f"{len(self.rec.classes)} classes known")

    # ------------------------------------------------------------- state
    def _load_model(self) -> None:
        if not self.model_path or not Path(self.model_path).exists():
            return
        try:
            self.rec.load_state(self.model_path)
            self.get_logger().info(f"loaded {self.model_path}: {len(self.rec.classes)} classes, "
                                   f"{self.rec.n_examples} examples")
        except GuardError as exc:
            # keep the file for inspection; do not overwrite it with an empty model
            self.autosave_blocked = f"could not load {self.model_path}: {exc}"
            self.get_logger().error(self.autosave_blocked + " — starting empty, autosave off until save_model")

    def _save(self, reason: str) -> str | None:
        """Save now, in this thread (the save_model service); returns the error, if any."""
        if not self.model_path or self.rec.classifier is None:
            return None
        self.saver.flush()  # no background write may land after this one
        try:
            self.rec.save(self.model_path)
            self.health.counts["saves"] += 1
            return None
        except (OSError, GuardError) as exc:
            self._save_failed(exc)
            return str(exc)

    def _save_failed(self, exc: Exception) -> None:
        self.health.counts["save_errors"] += 1
        self.get_logger().error(f"saving {self.model_path} failed: {exc}")

    def destroy_node(self):
        if not self.saver.close(timeout=60.0):
            self.get_logger().error("model not fully saved before shutdown (timeout)")
        return super().destroy_node()

    def _apply_thresholds(self, reset_all: bool = False, new_class: str | None = None) -> None:
        """The model's thresholds (calibrated ones survive a reload) with the node's settings on top.

        `threshold` goes to a newly learned class, or to every class when it is set at
        runtime (`reset_all`); `class_thresholds` entries always win.
        """
        clf = self.rec.classifier
        if clf is None or not clf.reject:
            return
        classes = self.rec.classes
        t = np.array(clf.thresholds_, dtype=np.float64)
        if reset_all:
            t[:] = self.threshold
        if new_class is not None:
            t[classes.index(new_class)] = self.threshold
        overrides = json.loads(self.class_thresholds) if self.class_thresholds else {}
        for name, value in overrides.items():
            if name in classes:
                t[classes.index(name)] = float(value)
        self.rec.set_thresholds(t)

    def _new_id(self) -> int:
        i, self.next_id = self.next_id, self.next_id + 1
        return i

    @staticmethod
    def _remember(store: OrderedDict, key: int, value) -> None:
        store[key] = value
        while len(store) > MAX_PENDING:
            store.popitem(last=False)

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
            d = self.rec.classify_features(feats)[0]
        except Exception as exc:  # a robot's recogniser must outlive a bug: log loudly, count, go on
            self.health.counts["internal_errors"] += 1
            self.get_logger().error(f"recognition failed: {exc!r}", throttle_duration_sec=1.0)
            return
        latency = 1e3 * (time.perf_counter() - t0)
        self.health.frame(latency)
        self.health.counts["rejected" if not d.accepted else "accepted"] += 1
        did = self._new_id()
        self._remember(self.recent, did, (feats, d.label))
        query_id = self._maybe_query(d, did, feats, crop, msg)
        stamp = {"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec}
        clf = self.rec.classifier
        thresholds = ({c: float(t) for c, t in zip(self.rec.classes, clf.thresholds_, strict=True)}
                      if clf is not None and clf.reject else {})
        self.pub_decision.publish(json_msg({
            "schema": DECISION_SCHEMA, "id": did, "stamp": stamp, "frame_id": msg.header.frame_id,
            "roi": list(r.as_tuple()), "roi_source": "topic" if roi is not None else self.rec.config.roi_mode,
            "label": d.label, "accepted": d.accepted, "reason": d.reason, "scores": d.scores,
            "margin": None if math.isnan(d.margin) else d.margin, "thresholds": thresholds,
            "latency_ms": latency, "query_id": query_id}))
        self.pub_label.publish(String(data=d.label))
        if self.publish_debug and self.pub_debug.get_subscription_count() > 0:
            self.pub_debug.publish(rgb_to_image(self._draw(rgb, r.as_tuple(), d), msg.header.stamp,
                                                msg.header.frame_id))

    def _maybe_query(self, d, did: int, feats, crop, msg) -> int | None:
        reason = None
        if not d.accepted and self.query_on_reject:
            reason = d.reason if d.reason != "below_threshold" else "rejected"
        elif d.accepted and self.query_margin > 0 and d.margin < self.query_margin:
            reason = "low_margin"
        now = time.monotonic()
        if reason is None or (self.query_rate > 0 and now - self.last_query_time < 1.0 / self.query_rate):
            return None
        if self.query_rate == 0:
            return None
        self.last_query_time = now
        qid = did
        self._remember(self.pending, qid, (feats, d.label))
        self.latest_query = qid
        self.health.counts["queries"] += 1
        self.pub_query.publish(json_msg({
            "schema": QUERY_SCHEMA, "query_id": qid, "decision_id": did,
            "stamp": {"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec},
            "reason": reason, "top": d.top(3), "known_classes": self.rec.classes}))
        self.pub_query_img.publish(rgb_to_image(crop, msg.header.stamp, msg.header.frame_id))
        return qid

    def on_feedback(self, msg: String) -> None:
        try:
            text = msg.data.strip()
            if text.startswith("{"):
                try:
                    body = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise InputError(f"feedback is not valid JSON: {exc}") from exc
                if not isinstance(body, dict) or "label" not in body:
                    raise InputError('feedback JSON needs "label" and "query_id" or "decision_id"')
                label = check_label(body["label"])
                if "query_id" in body:
                    key, store = body["query_id"], self.pending
                elif "decision_id" in body:
                    key, store = body["decision_id"], self.recent
                else:
                    raise InputError('feedback JSON needs "query_id" or "decision_id"')
                if not isinstance(key, int) or key not in store:
                    raise InputError(f"unknown or expired id {key!r}")
            else:
                label = check_label(text)
                if self.latest_query is None or self.latest_query not in self.pending:
                    raise InputError("plain-label feedback but no open query")
                key, store = self.latest_query, self.pending
            if not self.learning:
                self.health.counts["feedback_ignored_learning_off"] += 1
                self.get_logger().info(f"learning is off: ignored feedback {label!r}")
                return
            feats, _ = store.pop(key) if store is self.pending else store[key]
            if store is self.pending and key == self.latest_query:
                self.latest_query = None
            self._learn(feats, label, "feedback")
        except InputError as exc:
            self._bad_input("feedback", exc)

    def _learn(self, feats, label: str, source: str) -> None:
        report = self.rec.learn(feats, label)
        self._apply_thresholds(new_class=report.label if report.new_class else None)
        self.health.counts["learned"] += 1
        self.get_logger().info(f"learned {label!r} from {source} ({'new class' if report.new_class else 'known'}; "
                               f"{report.n_classes} classes, {1e3 * report.seconds:.1f} ms)")
        if self.autosave and not self.autosave_blocked and self.model_path:
            self.saver.request()  # written in the background; flushed before shutdown

    def on_confirm(self, req, resp):
        last = next(reversed(self.recent), None)
        if last is None or self.recent[last][1] == UNKNOWN:
            resp.success, resp.message = False, "no accepted prediction to confirm"
            return resp
        if not self.learning:
            resp.success, resp.message = False, "learning is disabled"
            return resp
        feats, label = self.recent[last]
        self._learn(feats, label, "confirm")
        resp.success, resp.message = True, f"learned confirmed label {label!r}"
        return resp

    def on_save(self, req, resp):
        if not self.model_path:
            resp.success, resp.message = False, "parameter model_path is empty"
        elif self.rec.classifier is None:
            resp.success, resp.message = False, "nothing learned yet"
        else:
            err = self._save("save_model request")
            self.autosave_blocked = None if err is None else self.autosave_blocked
            resp.success, resp.message = err is None, err or f"saved {self.model_path}"
        return resp

    def on_reset(self, req, resp):
        self.saver.flush()  # a pending autosave must not resurrect the old model
        self.rec.reset()
        self.pending.clear()
        self.recent.clear()
        self.latest_query = None
        if self.model_path and Path(self.model_path).exists() and self.autosave and not self.autosave_blocked:
            Path(self.model_path).unlink()
        resp.success, resp.message = True, "model reset: no classes known"
        self.get_logger().warning("model reset by request")
        return resp

    def on_set_learning(self, req, resp):
        self.learning = bool(req.data)
        self.set_parameters([rclpy.parameter.Parameter("learning_enabled", value=self.learning)])
        resp.success, resp.message = True, f"learning {'on' if self.learning else 'off'}"
        return resp

    def on_params(self, params) -> SetParametersResult:
        for prm in params:
            if prm.name == "class_thresholds" and prm.value:
                try:
                    body = json.loads(prm.value)
                    ok = isinstance(body, dict) and all(isinstance(v, int | float) for v in body.values())
                except json.JSONDecodeError:
                    ok = False
                if not ok:
                    return SetParametersResult(successful=False, reason='class_thresholds must be {"class": number}')
        for prm in params:
            if prm.name in ("threshold", "class_thresholds", "query_on_reject", "query_margin", "autosave",
                            "roi_timeout", "debug_image"):
                attr = {"query_margin": "query_margin", "debug_image": "publish_debug"}.get(prm.name, prm.name)
                setattr(self, attr, prm.value)
            elif prm.name == "query_rate_limit":
                self.query_rate = prm.value
            elif prm.name == "learning_enabled":
                self.learning = prm.value
        self._apply_thresholds(reset_all=any(prm.name == "threshold" for prm in params))
        return SetParametersResult(successful=True)

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
        issues = list(self.degraded) + ([self.autosave_blocked] if self.autosave_blocked else [])
        level = DiagnosticStatus.WARN if issues else DiagnosticStatus.OK
        fx = self.rec.extractor
        self.pub_diag.publish(self.health.status(
            f"{self.get_name()}: recognition", f"{fx.spec.id}@{fx.device}", level,
            "; ".join(issues) or "ok",
            {"device": fx.device, "backbone": fx.spec.id, "classes": len(self.rec.classes),
             "examples": self.rec.n_examples, "learning": self.learning, "model_path": self.model_path or "-",
             "saves": self.saver.saves + self.health.counts["saves"],
             "last_error": self.last_error}))


def main(args=None) -> int:
    return run_node(GuardNode, args)


if __name__ == "__main__":
    sys.exit(main())
