"""Labels from a folder naming frames: ROOT/<class>/<frame>, where a file's stem is a frame's number.

A person labels a robot's recording by sorting its frames (exported as
`000012.png`, or empty files named `12`) into one folder per class; the frame
number is the image message's position on the image topic, counted from 0.
Frames named nowhere are unlabelled and left out.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import InputError
from ..core.validation import check_label


def folder_labels(root: str | Path) -> dict[int, str]:
    """frame number → label, or `InputError` naming the file that is not a frame number or is labelled twice."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"label folder {root} does not exist")
    out: dict[int, str] = {}
    for cls_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        label = check_label(cls_dir.name)
        for f in sorted(p for p in cls_dir.iterdir() if p.is_file()):
            stem = f.name.split(".", 1)[0]
            if not stem.isdigit():
                raise InputError(f"label folder: {f} is not named by a frame number (e.g. 000012.png)")
            frame = int(stem)
            if out.get(frame, label) != label:
                raise InputError(f"label folder: frame {frame} is both {out[frame]!r} and {label!r} ({f})")
            out[frame] = label
    if not out:
        raise InputError(f"label folder {root} names no frame (expected ROOT/<class>/<frame number>.png)")
    return out
