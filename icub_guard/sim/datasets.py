"""Datasets of object crops: SimWorld7/28 from the simulator, or image folders.

A `Dataset` holds square crops (N×S×S×3 uint8, RGB) around each object's ROI and
their labels; that is what the pixels → scores model and the attacks consume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import InputError
from ..core.roi import crop, square_roi
from ..core.validation import check_label
from .world import TabletopSim, simworld_objects

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
SPLIT_STREAMS = {"train": 0, "test": 1, "val": 2, "live": 3}


@dataclass
class Dataset:
    images: np.ndarray  # N×S×S×3 uint8
    labels: np.ndarray  # N labels (object array of str)
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise InputError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels.tolist()))

    def subset(self, idx) -> Dataset:
        return Dataset(self.images[idx], self.labels[idx], self.name)



def simworld(variant: str = "7", split: str = "train", n_per_class: int = 100, crop_size: int = 64,
             image_size: int = 128, seed: int = 0) -> Dataset:
    """SimWorld7 (7 object kinds) or SimWorld28 (7 kinds × 4 look-alike instances).

    Deterministic: the same arguments give the same pixels. `split` picks an
    independent stream of poses, so train and test never share a frame.
    """
    if split not in SPLIT_STREAMS:
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(SPLIT_STREAMS)}")
    if n_per_class <= 0:
        raise ValueError("n_per_class must be positive")
    objects = simworld_objects(variant)
    images = np.empty((len(objects) * n_per_class, crop_size, crop_size, 3), np.uint8)
    labels = []
    with TabletopSim(objects, image_size, seed) as sim:
        for k in range(len(objects)):
            for i in range(n_per_class):
                f = sim.render(k, i, SPLIT_STREAMS[split])
                images[len(labels)] = crop(f.image, square_roi(f.roi), crop_size)
                labels.append(f.label)
    log.info("SimWorld%s %s: %d crops of %d classes", variant, split, len(labels), len(objects))
    return Dataset(images, np.array(labels, dtype=object), f"SimWorld{variant}-{split}")


def image_folder(root: str | Path, crop_size: int = 64, max_per_class: int | None = None) -> Dataset:
    """Read an iCubWorld-style tree: root/<class>/<image files>, one class per folder.

    Images are taken whole (they are already object crops in iCubWorld) and
    resized to crop_size×crop_size. Unreadable files are skipped with a warning.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist")
    images, labels = [], []
    for cls_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        label = check_label(cls_dir.name)
        files = sorted(f for f in cls_dir.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        for f in files[:max_per_class]:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                log.warning("skipping unreadable image %s", f)
                continue
            images.append(crop(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None, crop_size))
            labels.append(label)
    if not images:
        raise InputError(f"no readable images under {root} (expected root/<class>/<image>)")
    return Dataset(np.stack(images), np.array(labels, dtype=object), root.name)


DATASET_HELP = "simworld7 | simworld28 | PATH (root/<class>/<img>) | bag:FILE.mcap (a recording; docs/recordings.md)"


def load_dataset(name: str, split: str = "train", n_per_class: int = 100, crop_size: int = 64,
                 seed: int = 0) -> Dataset:
    """The one place a dataset spec is read: `simworld7`, `simworld28`, `bag:FILE[?options]` (a recording,
    `recordings/dataset.py`), or a folder path (its split is its sub-folder if present)."""
    key = name.lower()
    if key in ("simworld7", "simworld28"):
        return simworld(key.removeprefix("simworld"), split, n_per_class, crop_size, seed=seed)
    if name.startswith("bag:"):
        from ..recordings.dataset import recording_dataset

        return recording_dataset(name, split, n_per_class, crop_size)
    root = Path(name)
    sub = root / split
    return image_folder(sub if sub.is_dir() else root, crop_size, n_per_class)


def check_dataset(name: str) -> str:
    """`name` if `load_dataset` can read it, else `InputError` saying why — before any work is done (a command
    line, a sweep's axis). A recording is checked for its file and label folder, not read."""
    if name.lower() in ("simworld7", "simworld28"):
        return name
    if name.startswith("bag:"):
        from ..recordings.dataset import RecordingSpec
        from ..recordings.reader import recording_files

        spec = RecordingSpec.parse(name)
        recording_files(spec.path)
        if spec.labels is not None and not spec.labels.is_dir():
            raise InputError(f"dataset {name!r}: label folder {spec.labels} does not exist")
        return name
    if not Path(name).is_dir():
        raise InputError(f"dataset {name!r} is neither simworld7, simworld28, bag:FILE nor a folder that exists")
    return name
