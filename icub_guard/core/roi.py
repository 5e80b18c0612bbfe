"""Region of interest: where in the camera frame the object is, and its crop.

Modes:
* ``full``  — the whole frame.
* ``fixed`` — a configured (x, y, w, h) rectangle, e.g. where the hand holds objects.
* ``auto``  — an OpenCV foreground proposal: pixels that differ from the frame's
  border colour (the table and the wall), Otsu-thresholded and cleaned; the
  largest blob's box. It is what the iCub's motion/disparity cue gives, without
  needing motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError
from .validation import check_image

ROI_MODES = ("full", "fixed", "auto")


@dataclass(frozen=True)
class ROI:
    x: int
    y: int
    w: int
    h: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


def clamp_roi(roi: ROI | tuple[int, int, int, int], width: int, height: int) -> ROI:
    """Clip `roi` to the image; raise `InputError` if nothing of it is inside."""
    try:
        x, y, w, h = (int(v) for v in (roi.as_tuple() if isinstance(roi, ROI) else roi))
    except (TypeError, ValueError) as exc:
        raise InputError(f"ROI must be four integers (x, y, w, h), got {roi!r}") from exc
    if w <= 0 or h <= 0:
        raise InputError(f"ROI has non-positive size {w}×{h}")
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"ROI {(x, y, w, h)} lies outside the {width}×{height} image")
    return ROI(x0, y0, x1 - x0, y1 - y0)


def crop(image: np.ndarray, roi: ROI | tuple[int, int, int, int] | None, size: int | None = None) -> np.ndarray:
    """Crop `roi` (clamped) out of an H×W×3 uint8 image, optionally resized to size×size."""
    img = check_image(image)
    r = clamp_roi(roi if roi is not None else (0, 0, img.shape[1], img.shape[0]), img.shape[1], img.shape[0])
    out = img[r.y : r.y + r.h, r.x : r.x + r.w]
    if size is not None:
        interp = cv2.INTER_AREA if min(r.w, r.h) > size else cv2.INTER_LINEAR
        out = cv2.resize(out, (size, size), interpolation=interp)
    return np.ascontiguousarray(out)


def square_roi(roi: tuple[int, int, int, int], margin: float = 0.2) -> tuple[int, int, int, int]:
    """A square box around `roi`, `margin` larger on each side (context helps features)."""
    x, y, w, h = roi
    side = round(max(w, h) * (1 + 2 * margin))
    return (x + w // 2 - side // 2, y + h // 2 - side // 2, side, side)


def propose_roi(image: np.ndarray, margin: float = 0.15, min_area: float = 0.002) -> ROI:
    """Foreground box of the most salient blob; the whole frame if none is found.

    The border of a robot's view is mostly table and background, so "differs
    from the border's median colour" is a cheap and robust foreground cue.
    """
    img = check_image(image)
    h, w = img.shape[:2]
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)
    bw = max(1, min(h, w) // 16)
    border = np.concatenate([lab[:bw].reshape(-1, 3), lab[-bw:].reshape(-1, 3),
                             lab[:, :bw].reshape(-1, 3), lab[:, -bw:].reshape(-1, 3)])
    # distance to the nearest of a few border colours (table, wall, shadow)
    k = min(4, len(border))
    _, _, centers = cv2.kmeans(border, k, None, (cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0), 1, cv2.KMEANS_PP_CENTERS)
    dist = np.min(np.linalg.norm(lab[:, :, None, :] - centers[None, None], axis=-1), axis=-1)
    dist = cv2.normalize(dist, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    _, mask = cv2.threshold(dist, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    kernel = np.ones((3, 3), np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    if n <= 1:
        return ROI(0, 0, w, h)
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = 1 + int(np.argmax(areas))
    if areas[best - 1] < min_area * h * w:
        return ROI(0, 0, w, h)
    x, y, bw_, bh_ = (int(v) for v in stats[best, :4])
    side = int(max(bw_, bh_) * (1 + 2 * margin))
    cx, cy = x + bw_ // 2, y + bh_ // 2
    return clamp_roi((cx - side // 2, cy - side // 2, side, side), w, h)


@dataclass
class RoiSelector:
    """Chooses the ROI for a frame by mode; an explicit ROI always wins."""

    mode: str = "full"
    fixed: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ROI_MODES:
            raise InputError(f"unknown ROI mode {self.mode!r}; choose one of {ROI_MODES}")
        if self.mode == "fixed" and self.fixed is None:
            raise InputError("ROI mode 'fixed' needs a rectangle (x, y, w, h)")

    def select(self, image: np.ndarray, roi: ROI | tuple[int, int, int, int] | None = None) -> ROI:
        img = check_image(image)
        h, w = img.shape[:2]
        if roi is not None:
            return clamp_roi(roi, w, h)
        if self.mode == "fixed":
            return clamp_roi(self.fixed, w, h)
        if self.mode == "auto":
            return propose_roi(img)
        return ROI(0, 0, w, h)
