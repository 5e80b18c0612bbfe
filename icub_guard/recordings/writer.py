"""Writing a recording: camera frames, regions, ground truth and decisions to one MCAP file.

Every topic has the type the live graph publishes it with (the camera's GroundTruth, the guard's Decision,
the attack node's AttackReport: `msg_fields` builds their fields for both). Messages are CDR-encoded
against the ROS 2 definitions (`schemas.py`) by
mcap-ros2-support, in pure Python: no ROS install is needed to write, and
`ros2 bag info`, Foxglove and `rclpy` read the result. The file is written
under `NAME.partial` and renamed when closed, so a recording that was cut off
(a killed process) never sits under the name a reader would trust.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from mcap_ros2.writer import Writer

from .. import msg_fields
from . import schemas
from .topics import Topics

log = logging.getLogger(__name__)


def stamp_of(t_ns: int) -> dict[str, int]:
    """builtin_interfaces/Time of a time in nanoseconds."""
    return {"sec": int(t_ns // 1_000_000_000), "nanosec": int(t_ns % 1_000_000_000)}


class RecordingWriter:
    """An MCAP recording being written; `close()` (or the `with` block) finishes it and gives it its name."""

    def __init__(self, path: str | Path, topics: Topics | None = None, metadata: dict[str, str] | None = None):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.topics = topics or Topics.defaults()
        self._file = open(self.partial, "wb")  # closed in close()
        self._writer = Writer(self._file)
        self._schemas = {name: self._writer.register_msgdef(name, text) for name, text in schemas.DEFINITIONS.items()}
        if metadata:
            self._writer.add_metadata("icub_guard", {str(k): str(v) for k, v in metadata.items()})
        self.messages = 0
        self.closed = False
        self._lock = threading.Lock()  # a node may write from more than one callback thread

    def _write(self, topic: str, schema: str, message: dict[str, Any], t_ns: int) -> None:
        with self._lock:
            if self.closed:
                return  # a callback after shutdown began: the file is finished
            self._writer.write_message(topic, self._schemas[schema], message, log_time=int(t_ns),
                                       publish_time=int(t_ns), sequence=self.messages)
            self.messages += 1

    def image(self, rgb: np.ndarray, t_ns: int, frame_id: str = "camera", topic: str | None = None) -> None:
        """One rgb8 camera frame, stamped `t_ns`."""
        arr = np.ascontiguousarray(rgb, np.uint8)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"a frame must be H×W×3, got {arr.shape}")
        h, w = arr.shape[:2]
        self._write(topic or self.topics.image, schemas.IMAGE,
                    {"header": {"stamp": stamp_of(t_ns), "frame_id": frame_id}, "height": h, "width": w,
                     "encoding": "rgb8", "is_bigendian": 0, "step": 3 * w, "data": arr.tobytes()}, t_ns)

    def roi(self, roi: tuple[int, int, int, int], t_ns: int) -> None:
        """The object's region (x, y, w, h), as the camera node publishes it."""
        x, y, w, h = (int(v) for v in roi)
        self._write(self.topics.roi, schemas.ROI,
                    {"x_offset": x, "y_offset": y, "width": w, "height": h, "do_rectify": False}, t_ns)

    def string(self, topic: str, data: str, t_ns: int) -> None:
        """A std_msgs/String (e.g. a robot's own labels, which its recorder publishes as text)."""
        self._write(topic, schemas.STRING, {"data": str(data)}, t_ns)

    def ground_truth(self, label: str, index: int, t_ns: int, frame_id: str = "camera",
                     stamp: dict[str, int] | None = None) -> None:
        """The camera's GroundTruth for frame number `index` (`stamp`: its frame's, default `t_ns`)."""
        self._write(self.topics.label, schemas.GROUND_TRUTH,
                    {"header": msg_fields.header(stamp or stamp_of(t_ns), frame_id),
                     **msg_fields.ground_truth(label, index)}, t_ns)

    def decision(self, body: dict[str, Any], t_ns: int) -> None:
        """The guard's Decision about a frame (the core's record: `Guard.decision_payload`, its stamp and frame id
        those of the frame), as guard_node publishes it."""
        self._write(self.topics.decision, schemas.DECISION,
                    {"header": msg_fields.header(body.get("stamp"), body.get("frame_id", "")),
                     **msg_fields.decision(body)}, t_ns)

    def attack_report(self, info: dict[str, Any], counts: dict[str, int], stamp: dict[str, int], frame_id: str,
                      t_ns: int) -> None:
        """What the attack node did to one region of the frame stamped `stamp` (its AttackReport)."""
        self._write(self.topics.attack, schemas.ATTACK_REPORT,
                    {"header": msg_fields.header(stamp, frame_id), **msg_fields.attack_report(info, counts)}, t_ns)

    def frame(self, rgb: np.ndarray, t_ns: int, index: int, roi=None, label: str | None = None,
              frame_id: str = "camera") -> None:
        """What the camera node publishes each tick, in its order: region, ground truth, image."""
        if roi is not None:
            self.roi(roi, t_ns)
        if label is not None:
            self.ground_truth(label, index, t_ns, frame_id)
        self.image(rgb, t_ns, frame_id)

    def close(self) -> Path:
        """Finish the file (its summary and index) and give it its name."""
        with self._lock:
            if self.closed:
                return self.path
            self.closed = True
            try:
                self._writer.finish()
            finally:
                self._file.close()
            os.replace(self.partial, self.path)
            log.info("recorded %d messages to %s (%d bytes)", self.messages, self.path, self.path.stat().st_size)
        return self.path

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # keep what was written as evidence, under the .partial name
            self.closed = True
            self._file.close()
