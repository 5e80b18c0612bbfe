"""sim_camera_node: a camera for robots that are not there — pybullet, an image folder or a video.

Publishes   image (sensor_msgs/Image, rgb8) at `rate` Hz, roi (sensor_msgs/RegionOfInterest),
            ground_truth (icub_guard_msgs/GroundTruth: the label and frame number) for oracle teachers
The object in view changes every `switch_period` seconds (sim: a seeded random object;
folder: the next class; video: ground truth is the file name).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from sensor_msgs.msg import Image, RegionOfInterest

from ..sim.datasets import IMAGE_SUFFIXES, SPLIT_STREAMS
from ..sim.world import TabletopSim, simworld_objects
from . import messages
from .common import EVENT_QOS, FRAME_QOS, GuardedNode, Parameters, exit_process, run_node
from .convert import rgb_to_image


class SimCameraNode(GuardedNode):
    def __init__(self, **kwargs):
        super().__init__("sim_camera_node", **kwargs)
        p = Parameters(self, "sim_camera.yaml")
        self.source = p("source", "sim | folder | video", read_only=True)
        self.variant = p("variant", "SimWorld variant: 7 or 28", read_only=True)
        self.path = p("path", "image folder (root/<class>/<img>) or video file", read_only=True)
        self.size = p("image_size", "rendered image side (px)", read_only=True, lo=32, hi=1024)
        self.rate = rate = p("rate", "frames per second", read_only=True, lo=0.1, hi=200.0)
        self.switch = p("switch_period", "seconds before the object changes", lo=0.1, hi=3600.0)
        self.seed = p("seed", "seed of the scene draws", read_only=True, lo=0, hi=2**31 - 1)
        self.frame_id = p("frame_id", "header.frame_id", read_only=True)
        self.max_frames = p("max_frames", "stop publishing after this many (0 = never)", lo=0,
                                  hi=10**9)
        self.add_post_set_parameters_callback(self.apply_params)  # ranges are checked on-set by the descriptors
        self.pub_img = self.create_publisher(Image, "image", FRAME_QOS)
        self.pub_roi = self.create_publisher(RegionOfInterest, "roi", EVENT_QOS)
        self.pub_gt = self.create_publisher(messages.GroundTruth, "ground_truth", EVENT_QOS)
        self.rng = np.random.default_rng(self.seed)
        self.n = 0
        self.obj = 0
        self.obj_frames = 0
        self._open()
        self.create_timer(1.0 / rate, self.tick)
        self.get_logger().info(f"publishing {self.source} frames at {rate:g} Hz")

    def _open(self) -> None:
        if self.source == "sim":
            self.objects = simworld_objects(self.variant)
            self.sim = TabletopSim(self.objects, self.size, self.seed)
            self.labels = [o.label for o in self.objects]
        elif self.source == "folder":
            root = Path(self.path)
            self.files = {d.name: sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
                          for d in sorted(root.iterdir()) if d.is_dir()} if root.is_dir() else {}
            self.labels = [k for k, v in self.files.items() if v]
            if not self.labels:
                raise ValueError(f"no images under {self.path} (expected root/<class>/<image>)")
        elif self.source == "video":
            self.cap = cv2.VideoCapture(self.path)
            if not self.cap.isOpened():
                raise ValueError(f"cannot open video {self.path}")
            self.labels = [Path(self.path).stem]
        else:
            raise ValueError(f"unknown source {self.source!r}: use sim, folder or video")
        self.obj = int(self.rng.integers(len(self.labels)))

    def _frame(self) -> tuple[np.ndarray, tuple[int, int, int, int] | None, str]:
        label = self.labels[self.obj]
        if self.source == "sim":
            f = self.sim.render(self.obj, self.n, SPLIT_STREAMS["live"])
            return f.image, f.roi, label
        if self.source == "folder":
            files = self.files[label]
            bgr = cv2.imread(str(files[self.obj_frames % len(files)]), cv2.IMREAD_COLOR)
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, label
        ok, bgr = self.cap.read()
        if not ok:  # loop the video
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self.cap.read()
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, label

    def apply_params(self, params) -> None:
        for prm in params:
            if prm.name == "switch_period":
                self.switch = float(prm.value)
            elif prm.name == "max_frames":
                self.max_frames = int(prm.value)

    def tick(self) -> None:
        if self.max_frames and self.n >= self.max_frames:
            return
        period_frames = max(1, round(self.switch * self.rate))
        if self.obj_frames >= period_frames and len(self.labels) > 1:
            choices = [i for i in range(len(self.labels)) if i != self.obj]
            self.obj = int(self.rng.choice(choices))
            self.obj_frames = 0
        rgb, roi, label = self._frame()
        stamp = self.get_clock().now().to_msg()
        if roi is not None:
            self.pub_roi.publish(RegionOfInterest(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3]))
        self.pub_gt.publish(messages.GroundTruth(header=messages.header_of(stamp, self.frame_id), label=label,
                                                frame=self.n))
        self.pub_img.publish(rgb_to_image(rgb, stamp, self.frame_id))
        self.n += 1
        self.obj_frames += 1

    def destroy_node(self):
        sim = getattr(self, "sim", None)  # None when start-up failed before it existed
        if sim is not None:
            sim.close()
        return super().destroy_node()


def main(args=None) -> int:
    """The process entry point (`ros2 run icub_guard sim_camera_node`): runs the node, then ends the process."""
    exit_process(run_node(SimCameraNode, args))


if __name__ == "__main__":
    sys.exit(main())
