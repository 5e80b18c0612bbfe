"""attack_node: a man-in-the-middle on the camera stream.

Subscribes  image_in (sensor_msgs/Image), roi (sensor_msgs/RegionOfInterest), regions
            (icub_guard_msgs/RegionArray: every region is attacked, or the `region`-th)
Publishes   image_out (sensor_msgs/Image: perturbed when enabled, passed through otherwise),
            attack/info (icub_guard_msgs/AttackReport, one per region attacked: norms, time, whether it fooled
            its own copy)
Services    ~/enable (std_srvs/SetBool, node-private: /attack_node/enable)
Records     with `record_path`: the stream it publishes (every frame, attacked or passed through), the
            regions, the camera's ground_truth and attack/info, to an MCAP recording (docs/recordings.md)

Budgets (`eps`) are in frame pixels of the ROI box on the 0..255 scale: the
perturbation is applied to the frame the node publishes, before the guard's
crop-and-resize. `enable false` and shutdown interrupt an attack that is running.

The attacker is white-box: it loads the guard's model file (`model_path`) — or a
surrogate's — and reloads it when the file changes, since the guard keeps
learning. It attacks the crop the guard will see, pastes the perturbation back
into the frame, and re-crops the published frame through its copy to report
whether the attack survived the round trip.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import Image, RegionOfInterest
from std_srvs.srv import SetBool

from ..attacks import ATTACKS, AttackInterrupted, make_attack, rect_mask
from ..core.errors import GuardError, InputError
from ..core.pipeline import RegionModel
from ..core.recognizer import Recognizer
from ..recordings.writer import RecordingWriter
from . import messages
from .common import EVENT_QOS, FRAME_QOS, GuardedNode, Parameters, exit_process, resolve_model_path, run_node
from .convert import image_to_rgb, rgb_to_image

#: attributes that runtime parameter changes update
RUNTIME = {"attack_name", "eps", "norm", "steps", "target", "reject_aware", "sticker", "enabled", "roi_timeout",
           "reload_period", "region"}
ITERATIVE = {"paper", "bim", "pgd", "deepfool", "cw", "fooling"}


def check_attack(attack: str, norm: str) -> str | None:
    """Why this attack/norm pair cannot run, or None."""
    if attack not in ATTACKS:
        return f"unknown attack {attack!r}; one of {sorted(ATTACKS)}"
    if norm and norm not in ATTACKS[attack].norms:
        return f"{attack} supports the norm(s) {', '.join(ATTACKS[attack].norms)}, not {norm!r}"
    return None


class AttackNode(GuardedNode):
    executor_threads = 2  # the attack in one, `enable` and parameters in the other
    def __init__(self, **kwargs):
        super().__init__("attack_node", **kwargs)
        p = Parameters(self, "attack.yaml")
        self.attack_name = p("attack", f"one of {sorted(ATTACKS)}")
        self.eps = p("eps", "max perturbation d_max (frame pixels of the ROI box, 0..255 scale)",
                           lo=0.0, hi=1e6)
        self.norm = p("norm", "l1 | l2 | linf; empty = the attack's own default")
        self.steps = p("steps", "gradient steps (iterative attacks)", lo=1, hi=10000)
        self.target = p("target", "target class (error-specific); empty = error-generic")
        self.reject_aware = p("reject_aware", "adaptive attacker that knows the thresholds")
        self.sticker = p("sticker", "if > 0: only a centred square of this side fraction changes",
                               lo=0.0, hi=1.0)
        self.model_path = resolve_model_path(p("model_path", "the guard's model file (white-box) or a surrogate's "
                                               "(relative: under $ROS_HOME/icub_guard, as the guard's)",
                                               read_only=True)) or ""
        self.enabled = p("enabled", "perturb frames (else pass them through)")
        self.roi_timeout = p("roi_timeout", "seconds a roi or regions message stays valid", lo=0.0, hi=60.0)
        self.region = p("region", "with regions: -1 attacks every region of a frame, k only the k-th", lo=-1, hi=63)
        self.reload_period = p("reload_period", "min seconds between reloads of a changed model",
                                     lo=0.0, hi=3600.0)
        device = p("device", "auto | cpu | cuda", read_only=True)
        self.device = device
        record_path = p("record_path", "write the published stream to this .mcap recording (empty: none)",
                        read_only=True)
        self.recorder = RecordingWriter(record_path, metadata={"source": "attack_node"}) if record_path else None
        self.rec: Recognizer | None = None
        self.model_mtime = 0.0
        self.last_reload = -float("inf")
        self.roi = None
        self.regions = None
        self.counts = self.health.counts
        self.pub = self.create_publisher(Image, "image_out", FRAME_QOS)
        self.pub_info = self.create_publisher(messages.AttackReport, "attack/info", EVENT_QOS)
        self.create_subscription(Image, "image_in", self.on_image, FRAME_QOS)
        self.create_subscription(RegionOfInterest, "roi", self.on_roi, EVENT_QOS)
        self.create_subscription(messages.RegionArray, "regions", self.on_regions, EVENT_QOS)
        if self.recorder is not None:  # the labels go with the frames they label
            self.create_subscription(messages.GroundTruth, "ground_truth", self.on_ground_truth, EVENT_QOS)
        # its own callback group (and the node's two executor threads): `enable false` reaches a running attack
        self.create_service(SetBool, "~/enable", self.on_enable, callback_group=MutuallyExclusiveCallbackGroup())
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", EVENT_QOS)
        self.create_health_timer(1.0, self.publish_diagnostics)
        problem = check_attack(self.attack_name, self.norm)
        if problem:
            raise ValueError(problem)
        self.add_on_set_parameters_callback(self.validate_params)
        self.add_post_set_parameters_callback(self.apply_params)
        self.get_logger().info(f"attack node ready ({self.attack_name}, eps {self.eps:g} "
                               f"{self.norm or ATTACKS[self.attack_name].norms[0]}); "
                               f"{'enabled' if self.enabled else 'passing frames through'}")

    def validate_params(self, params) -> SetParametersResult:
        """On-set: refuse an attack/norm pair that cannot run (nothing is applied here)."""
        new = {p.name: p.value for p in params}
        problem = check_attack(new.get("attack", self.attack_name), new.get("norm", self.norm))
        return SetParametersResult(successful=problem is None, reason=problem or "")

    def apply_params(self, params) -> None:
        """Post-set: the change was accepted; the next frame uses it."""
        for p in params:
            attr = {"attack": "attack_name"}.get(p.name, p.name)
            if attr in RUNTIME:
                setattr(self, attr, p.value)

    def on_enable(self, req, resp):
        from rclpy.parameter import Parameter

        self.set_parameters([Parameter("enabled", value=bool(req.data))])
        resp.success, resp.message = True, f"attack {'enabled' if self.enabled else 'disabled'}"
        self.get_logger().warning(resp.message)
        return resp

    def on_roi(self, msg: RegionOfInterest) -> None:
        self.roi = ((int(msg.x_offset), int(msg.y_offset), int(msg.width), int(msg.height)), time.monotonic())
        if self.recorder is not None:
            self.recorder.roi(self.roi[0], self.now_ns())

    def on_ground_truth(self, msg) -> None:
        """The camera's label, recorded as it came (the recordings' ground truth)."""
        self.recorder.ground_truth(msg.label, int(msg.frame), self.now_ns(), msg.header.frame_id,
                                   messages.stamp_of(msg.header))

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def publish(self, msg: Image, rgb: np.ndarray | None = None) -> None:
        """Publish a frame; with a recording, write it too (`rgb`: its pixels, when already decoded)."""
        self.pub.publish(msg)
        if self.recorder is not None:
            try:
                pixels = image_to_rgb(msg) if rgb is None else rgb
            except InputError:
                return  # a malformed frame passed through is not data
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self.recorder.image(pixels, stamp or self.now_ns(), msg.header.frame_id)

    def destroy_node(self):
        if getattr(self, "recorder", None) is not None:
            self.recorder.close()
            self.get_logger().info(f"recorded {self.recorder.messages} messages to {self.recorder.path}")
        return super().destroy_node()

    def on_regions(self, msg) -> None:
        """Every region of the frames to come (as the guard takes them); an empty array clears them."""
        boxes = [(int(r.roi.x_offset), int(r.roi.y_offset), int(r.roi.width), int(r.roi.height)) for r in msg.regions]
        self.regions = (boxes, time.monotonic()) if boxes else None

    def _targets(self) -> list:
        """The boxes to attack in the next frame: the regions (every one, or the chosen one), else the roi."""
        now = time.monotonic()
        if self.regions is not None and now - self.regions[1] <= self.roi_timeout:
            boxes = self.regions[0]
            return boxes if self.region < 0 else boxes[self.region : self.region + 1]
        return [self.roi[0] if self.roi is not None and now - self.roi[1] <= self.roi_timeout else None]

    def _model(self) -> Recognizer | None:
        """The white-box copy, reloaded whenever the guard has saved a newer model."""
        path = Path(self.model_path)
        if not self.model_path or not path.exists():
            return None
        mtime = path.stat().st_mtime
        stale = mtime != self.model_mtime and time.monotonic() - self.last_reload >= self.reload_period
        if self.rec is None or stale:
            self.last_reload = time.monotonic()
            try:
                if self.rec is None:
                    self.rec = Recognizer.load(path, device=self.device)
                else:
                    self.rec.load_state(path)
                self.model_mtime = mtime
            except GuardError as exc:
                self.get_logger().error(f"cannot load {path}: {exc}", throttle_duration_sec=5.0)
        return self.rec

    def on_image(self, msg: Image) -> None:
        if not self.context.ok():  # shutting down: start no new attack
            return
        self.counts["frames"] += 1
        if not self.enabled:
            self.publish(msg)
            return
        try:
            rgb = image_to_rgb(msg)
        except InputError as exc:
            self.reject_input("image", exc)
            return
        rec = self._model()
        if rec is None or len(rec.classes) < 2:
            self.counts["skipped_no_model"] += 1
            self.publish(msg, rgb)  # nothing to attack yet
            return
        targets = self._targets()
        if not targets:  # the chosen region is not in this frame
            self.publish(msg, rgb)
            return
        t0, out, reports = time.perf_counter(), rgb, []
        try:
            for roi in targets:  # one region after another, each on the frame the last one left
                t1 = time.perf_counter()
                out, info = self.perturb(rec, out, roi)
                info["time_ms"] = 1e3 * (time.perf_counter() - t1)
                reports.append(info)
        except AttackInterrupted:
            return  # the node is shutting down
        except (InputError, ValueError) as exc:
            self.health.reject("attack")
            self.get_logger().warning(f"could not attack this frame: {exc}", throttle_duration_sec=1.0)
            self.publish(msg, rgb)
            return
        self.health.frame(1e3 * (time.perf_counter() - t0))
        self.counts["attacked"] += 1
        for info in reports:  # before the frame, so listeners know it was attacked: one report per region
            self.counts["fooled_own_copy"] += int(info["fooled_own_copy"])
            self.pub_info.publish(messages.attack_report(info, self.counts, msg.header))
            if self.recorder is not None:
                self.recorder.attack_report(info, self.counts, messages.stamp_of(msg.header), msg.header.frame_id,
                                            self.now_ns())
        self.publish(rgb_to_image(out, msg.header.stamp, msg.header.frame_id), out)

    def publish_diagnostics(self) -> None:
        level = DiagnosticStatus.WARN if self.enabled else DiagnosticStatus.OK
        message = "ATTACKING" if self.enabled else "pass-through"
        self.pub_diag.publish(self.diagnostics(
            "attack", self.attack_name, level, message,
            {"attack": self.attack_name, "eps": self.eps, "norm": self.norm, "model": self.model_path or "-"}))

    def perturb(self, rec: Recognizer, rgb: np.ndarray, roi) -> tuple[np.ndarray, dict]:
        """Attack the ROI box of the frame itself, through the guard's crop-and-resize.

        `eps` is measured in frame pixels of that box; a sticker is a centred square of it.
        """
        box, _ = rec.crop_box(rgb, roi)
        bx, by, bw, bh = box.as_tuple()
        region = rgb[by : by + bh, bx : bx + bw]
        model = RegionModel(rec.guard_model(), rec.config.crop_size)
        x = torch.from_numpy(np.ascontiguousarray(region)[None]).float()
        with torch.no_grad():
            y = model(x.to(rec.extractor.device)).argmax(1).cpu()  # the guard's own view stands in for the truth
        target = None
        if self.target:
            if self.target not in model.classes:
                raise ValueError(f"target {self.target!r} is not a known class {model.classes}")
            target = torch.tensor([model.classes.index(self.target)])
        kw = {"reject_aware": self.reject_aware, **({"norm": self.norm} if self.norm else {})}
        if self.sticker > 0:
            sw, sh = max(1, int(self.sticker * bw)), max(1, int(self.sticker * bh))
            kw["mask"] = rect_mask((bh, bw), ((bw - sw) // 2, (bh - sh) // 2, sw, sh))
        if self.attack_name in ITERATIVE:
            kw["steps"] = self.steps
        if self.attack_name == "fooling":
            if target is None:
                raise ValueError("the fooling attack needs a target class")
        else:
            kw["eps"] = self.eps
        attack = make_attack(self.attack_name, model, **kw)
        attack.should_stop = lambda: not self.context.ok() or not self.enabled
        res = attack(x, y, target)
        out = rgb.copy()
        out[by : by + bh, bx : bx + bw] = res.images()[0]
        seen = rec.classify_features(rec.features(rec.crop(out, roi)[0]))[0]  # what the guard will see
        before = model.classes[int(y[0])]
        fooled = seen.accepted and (seen.label == self.target if self.target else seen.label != before)
        return out, {"attack": self.attack_name, "eps": self.eps, "norm": attack.norm, "target": self.target or None,
                     "reject_aware": self.reject_aware, "label_before": before, "label_after": seen.label,
                     "accepted_after": seen.accepted, "fooled_own_copy": bool(fooled),
                     "success_before_rounding": bool(res.success[0]),
                     "norms": {k: float(v[0]) for k, v in res.norms.items()}, "box": [bx, by, bw, bh],
                     "gradient_evals": res.gradient_evals}


def main(args=None) -> int:
    """The process entry point (`ros2 run icub_guard attack_node`): runs the node, then ends the process."""
    exit_process(run_node(AttackNode, args))


if __name__ == "__main__":
    sys.exit(main())
