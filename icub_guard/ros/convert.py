"""sensor_msgs/Image (and CompressedImage in) ↔ numpy, with the checks a node needs to survive bad frames.

Uses cv_bridge when it imports (a ROS install); otherwise a small built-in
converter that gives the same arrays for the encodings we accept. Every
malformed message raises `InputError` with the reason, so a node can count it.
"""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from ..core.errors import InputError
from ..core.validation import MAX_IMAGE_SIDE, check_image_message, image_message_rgb

try:  # pragma: no cover - only on a ROS install
    from cv_bridge import CvBridge

    _BRIDGE = CvBridge()
except Exception:  # any import problem means: use the built-in converter
    _BRIDGE = None

MAX_SIDE = MAX_IMAGE_SIDE
MAX_COMPRESSED_BYTES = 32 << 20
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)}


def _declared_size(data: bytes) -> tuple[int, int]:
    """(width, height) a PNG or JPEG declares in its header, read before anything is decoded (a small file
    may declare a huge image); `InputError` for anything else or a header cut short."""
    if data.startswith(_PNG):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise InputError("PNG without its IHDR header")
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 <= len(data):  # marker segments, up to the frame header (a few, not per pixel)
            if data[i] != 0xFF:
                raise InputError("JPEG marker expected")
            marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
            if marker in _JPEG_SOF:
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            if length < 2:
                raise InputError("JPEG segment of a bad length")
            i += 2 + length
        raise InputError("JPEG without a frame header")
    raise InputError("compressed image is neither JPEG nor PNG")


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """An H×W×3 uint8 RGB array from a CompressedImage (JPEG or PNG, decoded by OpenCV), or `InputError`.

    The size it declares is checked before decoding, so a small file cannot make the node allocate a huge one.
    """
    data = msg.data if isinstance(msg.data, bytes) else bytes(msg.data)
    if not data:
        raise InputError("empty compressed image")
    if len(data) > MAX_COMPRESSED_BYTES:
        raise InputError(f"compressed image of {len(data)} bytes exceeds {MAX_COMPRESSED_BYTES} bytes")
    w, h = _declared_size(data)
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise InputError(f"compressed image declares {w}×{h}; sides must be in 1..{MAX_SIDE}")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3:
        raise InputError(f"compressed image ({msg.format or 'no format'}) could not be decoded")
    return np.ascontiguousarray(bgr[:, :, ::-1])


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
