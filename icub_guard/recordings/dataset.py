"""A recording as a dataset: the `bag:FILE` spec, its splits, and its crops.

Spec: `bag:FILE[?image=TOPIC&roi=TOPIC&label=TOPIC&labels=DIR]` — the topics
default to what `icub-guard record` writes (the demo's camera topics); `labels`
names a folder of frames (`labels.py`) used instead of the label topic. The spec
is a plain string so that anything which names a dataset (an evaluation's
config, a sweep's axis) can name a recording.

Splits are by time, per class: of each class's frames in recorded order the
first 60% are `train`, the next 20% `val`, the last 20% `test` (`live`: all of
them), so neighbouring video frames fall in one split except at two boundaries.
Within a split, `n_per_class` frames are taken evenly spaced in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import numpy as np

from ..core.errors import InputError, RecordingError
from ..core.roi import crop, square_roi
from .frames import RecordedFrame, cached_frames
from .topics import Topics

PREFIX = "bag:"
SPLITS = {"train": (0.0, 0.6), "val": (0.6, 0.8), "test": (0.8, 1.0), "live": (0.0, 1.0)}
#: frames a class needs so that train, val and test each get one
MIN_PER_CLASS = 5
_KEYS = {"image", "roi", "label", "labels"}


def is_recording(spec: str) -> bool:
    return spec.startswith(PREFIX)


@dataclass(frozen=True)
class RecordingSpec:
    path: Path
    topics: Topics
    labels: Path | None = None  # a folder naming frames, instead of the label topic

    @classmethod
    def parse(cls, spec: str) -> RecordingSpec:
        """`bag:FILE[?key=value&...]`, or `InputError` naming what is wrong."""
        if not is_recording(spec):
            raise InputError(f"not a recording spec: {spec!r} (expected bag:FILE)")
        body = spec[len(PREFIX):]
        file, _, query = body.partition("?")
        if not file:
            raise InputError(f"dataset {spec!r}: bag: needs a file (bag:FILE.mcap)")
        opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)) if query else [])
        unknown = set(opts) - _KEYS
        if unknown:
            raise InputError(f"dataset {spec!r}: unknown option(s) {sorted(unknown)}; known: {sorted(_KEYS)}")
        topics = Topics.defaults().with_names(opts.get("image"), opts.get("roi"), opts.get("label"))
        return cls(Path(file), topics, Path(opts["labels"]) if opts.get("labels") else None)

    def text(self) -> str:
        """The spec back as a string (only the options that differ from the defaults)."""
        d = Topics.defaults()
        opts = {k: v for k, v, dv in (("image", self.topics.image, d.image), ("roi", self.topics.roi, d.roi),
                                      ("label", self.topics.label, d.label)) if v != dv}
        if self.labels is not None:
            opts["labels"] = str(self.labels)
        return f"{PREFIX}{self.path}" + (f"?{urlencode(opts, safe='/')}" if opts else "")

    def frames(self) -> list[RecordedFrame]:
        return cached_frames(self.path, self.topics, self.labels)


def with_options(spec: str, image: str | None = None, roi: str | None = None, label: str | None = None,
                 labels: str | None = None) -> str:
    """A dataset spec with command-line topic options folded in (a `bag:` spec only; others unchanged)."""
    if not is_recording(spec) or not any((image, roi, label, labels)):
        return spec
    s = RecordingSpec.parse(spec)
    return RecordingSpec(s.path, s.topics.with_names(image, roi, label),
                         Path(labels) if labels else s.labels).text()


def split_frames(frames: list[RecordedFrame], split: str, source: str = "") -> dict[str, list[RecordedFrame]]:
    """label → its labelled frames of `split`, in time order (unlabelled frames are left out)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
    lo, hi = SPLITS[split]
    by_class: dict[str, list[RecordedFrame]] = {}
    for f in frames:
        if f.label is not None:
            by_class.setdefault(f.label, []).append(f)
    if not by_class:
        raise RecordingError(f"recording {source}: no frame has a label")
    short = {k: len(v) for k, v in by_class.items() if len(v) < MIN_PER_CLASS}
    if short and split != "live":
        raise RecordingError(f"recording {source}: too few frames to split (train/val/test) for {short}; "
                             f"each class needs at least {MIN_PER_CLASS}")
    return {k: v[int(np.floor(lo * len(v))) : int(np.floor(hi * len(v)))] for k, v in sorted(by_class.items())}


def frame_crop(f: RecordedFrame, crop_size: int) -> np.ndarray:
    """The object's square crop, as SimWorld's datasets cut it (the whole frame when it has no region)."""
    return crop(f.image, square_roi(f.roi) if f.roi is not None else None, crop_size)


def recording_dataset(spec: str, split: str = "train", n_per_class: int | None = 100, crop_size: int = 64):
    """The crops and labels of one split of a recording (`n_per_class` evenly spaced frames per class)."""
    from ..sim.datasets import Dataset

    s = RecordingSpec.parse(spec)
    images, labels = [], []
    for label, frames in split_frames(s.frames(), split, str(s.path)).items():
        k = len(frames) if n_per_class is None else min(n_per_class, len(frames))
        for i in np.unique(np.linspace(0, len(frames) - 1, k).round().astype(int)):
            images.append(frame_crop(frames[i], crop_size))
            labels.append(label)
    return Dataset(np.stack(images), np.array(labels, dtype=object), f"{s.path.stem}-{split}")


def teaching_frames(spec: str, rounds: int) -> list[tuple[int, RecordedFrame]]:
    """(round, frame) of a teaching stream from a recording: its labelled frames outside the test split, in
    recorded order, cut into `rounds` consecutive parts (the test split stays held out)."""
    s = RecordingSpec.parse(spec)
    frames = s.frames()
    held_out = {f.index for v in split_frames(frames, "test", str(s.path)).values() for f in v}
    stream = [f for f in frames if f.label is not None and f.index not in held_out]
    if len(stream) < rounds:
        raise RecordingError(f"recording {s.path}: {len(stream)} teaching frames cannot make {rounds} rounds")
    return [(i * rounds // len(stream), f) for i, f in enumerate(stream)]
