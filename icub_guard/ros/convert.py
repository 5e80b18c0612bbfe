"""sensor_msgs/Image ↔ numpy, with the checks a node needs to survive bad frames.

Uses cv_bridge when it imports (a ROS install); otherwise a small built-in
converter that gives the same arrays for the encodings we accept. Every
malformed message raises `InputError` with the reason, so a node can count it.
"""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import Image

from ..core.errors import InputError
from ..core.validation import check_image_message, image_message_rgb

try:  # pragma: no cover - only on a ROS install
    from cv_bridge import CvBridge

    _BRIDGE = CvBridge()
except Exception:  # any import problem means: use the built-in converter
    _BRIDGE = None


def image_to_rgb(msg: Image) -> np.ndarray:
    """An H×W×3 uint8 RGB array from an Image message, or `InputError` (checked by the core's rules)."""
    if _BRIDGE is not None:  # pragma: no cover - validated first, decoded by ROS's own converter
        check_image_message(msg)
        return np.ascontiguousarray(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    return image_message_rgb(msg)


def rgb_to_image(rgb: np.ndarray, stamp=None, frame_id: str = "") -> Image:
    """An rgb8 Image message from an H×W×3 uint8 array."""
    arr = np.ascontiguousarray(rgb, np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"need H×W×3 to publish, got {arr.shape}")
    if _BRIDGE is not None:  # pragma: no cover
        msg = _BRIDGE.cv2_to_imgmsg(arr, encoding="rgb8")
    else:
        msg = Image()
        msg.height, msg.width = arr.shape[:2]
        msg.encoding = "rgb8"
        msg.is_bigendian = 0
        msg.step = arr.shape[1] * 3
        msg.data = arr.tobytes()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def draw_decision(rgb: np.ndarray, roi: tuple[int, int, int, int], decision) -> np.ndarray:
    """The debug image: the ROI boxed (green accepted, red rejected) with the label and the top score."""
    img, d = rgb.copy(), decision
    x, y, w, h = roi
    color = (0, 200, 0) if d.accepted else (230, 40, 40)
    cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), color, 1)
    top = max(d.scores.values()) if d.scores else float("nan")
    cv2.putText(img, f"{d.label} {top:.2f}", (x, max(10, y - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, color, 1)
    return img
