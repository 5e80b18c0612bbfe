"""Camera frames out of a recording: each image with the region and the label that went with it.

The camera node publishes, each tick, the region, the ground truth and then the
image; a robot's recorder may order them otherwise. A frame takes the ground
truth stamped like its image when there is one, else the latest before it, and
the latest region before it (none: the whole frame is the object).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..core.errors import InputError, RecordingError
from ..core.jsonio import loads
from ..core.validation import check_label, image_message_rgb
from .reader import MessageDecoder, RawMessage, iter_messages, recording_files, topic_summary
from .topics import Topics

log = logging.getLogger(__name__)


@dataclass
class RecordedFrame:
    image: np.ndarray  # H×W×3 uint8 RGB
    roi: tuple[int, int, int, int] | None
    label: str | None
    index: int  # its number on the image topic, from 0
    t_ns: int  # when it was logged


def _label_of(msg) -> tuple[str, tuple[int, int] | None]:
    """(label, stamp) of a ground-truth message: the camera's GroundTruth (what the live graph publishes and
    `icub-guard record` writes), or a std_msgs/String (a robot's own: a bare label, or JSON {"label", "stamp"})."""
    if hasattr(msg, "data"):
        return _label_text(msg.data)
    s = msg.header.stamp
    return check_label(msg.label), (int(s.sec), int(s.nanosec))


def _label_text(text: str) -> tuple[str, tuple[int, int] | None]:
    """(label, stamp) of a String ground truth: JSON {"label", "stamp"} or a bare label."""
    body = None
    if text.lstrip().startswith("{"):
        body = loads(text)
    if isinstance(body, dict) and "label" in body:
        s = body.get("stamp")
        stamp = (int(s["sec"]), int(s["nanosec"])) if isinstance(s, dict) and {"sec", "nanosec"} <= set(s) else None
        return check_label(body["label"]), stamp
    return check_label(text), None


def _missing(path: Path, topic: str, what: str) -> RecordingError:
    found = ", ".join(f"{t} ({s}, {n})" for t, (s, n) in sorted(topic_summary(path).items())) or "none"
    return RecordingError(f"recording {path} has no {what} on {topic}; its topics: {found}")


def read_frames(path: str | Path, topics: Topics, labels: dict[int, str] | None = None,
                progress: Callable[[int], None] | None = None) -> list[RecordedFrame]:
    """Every frame of the image topic, with its region and label (`labels`: by frame number, instead of the
    label topic). `RecordingError` names the file and message that is damaged, or the topic that is missing."""
    path = Path(path)
    decode = MessageDecoder(path)
    frames: list[RecordedFrame] = []
    roi = None
    latest_label: str | None = None
    by_stamp: dict[tuple[int, int], str] = {}
    n_labels = 0
    wanted = {topics.image, topics.roi} | ({topics.label} if labels is None else set())
    for m in iter_messages(path, wanted):
        msg = decode(m)
        try:
            if m.topic == topics.image:
                rgb = image_message_rgb(msg)
                stamp = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
                n = len(frames)
                label = labels.get(n) if labels is not None else by_stamp.pop(stamp, latest_label)
                frames.append(RecordedFrame(rgb, roi, label, n, m.log_time))
                if progress is not None:
                    progress(n)
            elif m.topic == topics.roi:
                r = (int(msg.x_offset), int(msg.y_offset), int(msg.width), int(msg.height))
                roi = r if r[2] > 0 and r[3] > 0 else None  # a zero region: none (ROS's "full image")
            else:
                latest_label, stamp = _label_of(msg)
                n_labels += 1
                if stamp is not None:
                    by_stamp[stamp] = latest_label
        except (InputError, AttributeError, TypeError, KeyError, ValueError) as exc:
            raise RecordingError(f"recording {path}: message {m.index} on {m.topic} at byte {m.offset} is not "
                                 f"usable: {exc}") from exc
    if not frames:
        raise _missing(path, topics.image, "images")
    if labels is None and n_labels == 0:
        raise _missing(path, topics.label, "labels (give a label topic or a label folder)")
    log.info("%s: %d frames, %d labelled", path, len(frames), sum(f.label is not None for f in frames))
    return frames


@lru_cache(maxsize=2)
def _cached(path: str, version: tuple[tuple[int, int], ...], topics: Topics,
            labels: tuple[tuple[int, str], ...] | None) -> list[RecordedFrame]:
    return read_frames(path, topics, dict(labels) if labels is not None else None)


def cached_frames(path: str | Path, topics: Topics, labels_dir: str | Path | None = None) -> list[RecordedFrame]:
    """`read_frames` once per version of the file and of its labels: an evaluation loads its train, val and test
    splits from one read."""
    from .labels import folder_labels

    files = recording_files(path)
    labels = tuple(sorted(folder_labels(labels_dir).items())) if labels_dir else None
    version = tuple((f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _cached(str(path), version, topics, labels)


__all__ = ["RawMessage", "RecordedFrame", "cached_frames", "read_frames"]
