"""Input checks shared by the core and the nodes: fail early, say what is wrong."""

from __future__ import annotations

import array
import unicodedata

import numpy as np

from .errors import InputError

MAX_LABEL_LEN = 64
#: Label the classifiers return for a rejected sample.
UNKNOWN = "unknown"


def check_label(label: object) -> str:
    """Return a clean class label or raise `InputError`.

    Labels end up in topics, file names and plots, so they must be short and
    printable: after Unicode NFKC normalisation and stripping, 1..64 characters
    with no control or format characters (Unicode category C). `unknown` is
    reserved in any case and any compatibility form ("UNKNOWN", "ｕｎｋｎｏｗｎ").
    """
    if not isinstance(label, str):
        raise InputError(f"label must be a string, got {type(label).__name__}")
    if len(label) > 4 * MAX_LABEL_LEN:  # bound the normalisation work before doing it
        raise InputError(f"label is {len(label)} characters long; at most {MAX_LABEL_LEN} allowed")
    check_encoding(label, "label")
    clean = unicodedata.normalize("NFKC", label).strip()
    if not clean:
        raise InputError("label is empty")
    if len(clean) > MAX_LABEL_LEN:
        raise InputError(f"label is {len(clean)} characters long; at most {MAX_LABEL_LEN} allowed")
    bad = [c for c in clean if unicodedata.category(c).startswith("C")]
    if bad:
        raise InputError(f"label contains control characters: {bad!r}")
    if clean.casefold() == UNKNOWN:
        raise InputError(f"'{UNKNOWN}' is reserved for rejected samples and cannot be taught")
    return clean


def check_encoding(text: str, what: str) -> str:
    """Refuse text that was not valid UTF-8 on the wire: the decoder's U+FFFD (replacement character) marks bytes
    it could not read, so such a label would be a class made of an encoding error."""
    if "\ufffd" in text:
        raise InputError(f"{what} is not valid UTF-8 (it holds U+FFFD, the mark of bytes that could not be decoded)")
    return text


def check_text_list(text: str, what: str) -> list[str]:
    """A comma-separated parameter ("a,b:k=v"): its items, stripped; refuses control characters (a NUL would cut
    it short in C) and empty items (",,,,"); empty text is the empty list."""
    if not isinstance(text, str):
        raise InputError(f"{what} must be text, got {type(text).__name__}")
    check_encoding(text, what)
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise InputError(f"{what} holds control characters: {text[:60]!r}")
    if not text.strip():
        return []
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise InputError(f"{what} has an empty item: {text[:60]!r}")
    return items


MAX_TEACHER_LEN = 32
DEFAULT_TEACHER = "default"


def check_teacher(name: object) -> str:
    """A teacher's name (who taught a label): NFKC, stripped, 1..32 printable characters, else `InputError`."""
    if not isinstance(name, str):
        raise InputError(f"teacher must be a string, got {type(name).__name__}")
    if len(name) > 4 * MAX_TEACHER_LEN:
        raise InputError(f"teacher name is {len(name)} characters long; at most {MAX_TEACHER_LEN} allowed")
    check_encoding(name, "teacher name")
    clean = unicodedata.normalize("NFKC", name).strip()
    if not clean or len(clean) > MAX_TEACHER_LEN:
        raise InputError(f"teacher name must be 1..{MAX_TEACHER_LEN} characters, got {len(clean)}")
    if any(unicodedata.category(c).startswith("C") for c in clean):
        raise InputError("teacher name contains control characters")
    return clean


def check_image(image: object) -> np.ndarray:
    """Return `image` as an H×W×3 uint8 array or raise `InputError`.

    Float images must already be in 0..255; we never rescale silently.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be H×W×3 (RGB), got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"image is empty (shape {image.shape})")
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "f":
        if not np.isfinite(image).all():
            raise InputError("image contains NaN or infinite pixels")
        if image.min() < 0 or image.max() > 255:
            raise InputError("float image must be in 0..255")
        return np.round(image).astype(np.uint8)
    raise InputError(f"image dtype must be uint8 or float, got {image.dtype}")


def check_features(x: object, dim: int | None = None) -> np.ndarray:
    """Return features as a 2-D float32 array (a single vector becomes one row)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise InputError(f"features must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"features must be N×D with N, D > 0, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise InputError(f"features have {arr.shape[1]} dimensions; the model expects {dim}")
    if not np.isfinite(arr).all():
        raise InputError("features contain NaN or infinite values")
    return arr.astype(np.float32, copy=False)



def setting(param: str, help: str, lo: float | None = None, hi: float | None = None):
    """A config field whose default, description and range are written once.

    The default is the guard's parameter `param` in config/guard.yaml (the single source of defaults);
    `check_settings` enforces the type and range; the guard node declares `param` with the same
    description and range (so `ros2 param describe` shows them).
    """
    from dataclasses import field

    from ..defaults import node_defaults

    return field(default_factory=lambda: node_defaults("guard.yaml")[param],
                 metadata={"param": param, "help": help, "range": None if lo is None else (lo, hi)})


def check_settings(config: object, prefix: str = "") -> None:
    """Check every `setting` field of a dataclass instance: its type (bool, whole number or number, as
    annotated) and its range. `InputError` names the field."""
    from dataclasses import fields

    for f in fields(config):  # type: ignore[arg-type]
        if "help" not in f.metadata:
            continue
        v, name, kind = getattr(config, f.name), f"{prefix}{f.name}", str(f.type)
        if kind == "str":
            if not isinstance(v, str):
                raise InputError(f"{name} must be text, got {v!r}")
            continue
        if kind not in ("bool", "int", "float") and (v is None or isinstance(v, str | tuple | list)):
            continue  # "median", an unbounded None, a box: the config's own checks judge these
        if kind == "bool":
            if not isinstance(v, bool):
                raise InputError(f"{name} must be true or false, got {v!r}")
            continue
        whole = kind.startswith("int")
        if isinstance(v, bool) or not isinstance(v, int if whole else int | float) or v != v:
            raise InputError(f"{name} must be a {'whole number' if whole else 'number'}, got {v!r}")
        rng = f.metadata["range"]
        if rng is not None and not rng[0] <= v <= rng[1]:
            raise InputError(f"{name} must be in [{rng[0]:g}, {rng[1]:g}], got {v!r}")


#: sensor_msgs/Image encodings accepted, and their channels
IMAGE_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
MAX_IMAGE_SIDE = 8192


def check_image_message(msg: object) -> tuple[str, int, int, int]:
    """(encoding, height, width, channels) of a sensor_msgs/Image-shaped object (a rclpy message or one decoded
    from a recording without ROS), or `InputError` saying what is malformed."""
    enc = (msg.encoding or "").lower()
    if enc not in IMAGE_CHANNELS:
        raise InputError(f"unsupported encoding {msg.encoding!r}; expected one of {sorted(IMAGE_CHANNELS)}")
    h, w, ch = int(msg.height), int(msg.width), IMAGE_CHANNELS[enc]
    if h <= 0 or w <= 0:
        raise InputError(f"image has zero size ({w}×{h})")
    if h > MAX_IMAGE_SIDE or w > MAX_IMAGE_SIDE:
        raise InputError(f"image of {w}×{h} exceeds the {MAX_IMAGE_SIDE}-pixel limit")
    if msg.step < w * ch:
        raise InputError(f"step {msg.step} is shorter than a row ({w}×{ch} bytes)")
    n = len(msg.data)
    if n < msg.step * (h - 1) + w * ch:
        raise InputError(f"image data truncated: {n} bytes for {h} rows of step {msg.step}")
    if msg.is_bigendian not in (0, 1, False, True):
        raise InputError("is_bigendian must be 0 or 1")
    return enc, h, w, ch


def image_message_rgb(msg: object) -> np.ndarray:
    """An H×W×3 uint8 RGB array from a sensor_msgs/Image-shaped object, or `InputError`."""
    enc, h, w, ch = check_image_message(msg)
    data = msg.data
    buf = np.frombuffer(data if isinstance(data, bytes | bytearray | memoryview | array.array) else bytes(data),
                        np.uint8)
    rows = np.lib.stride_tricks.as_strided(buf, (h, w * ch), (msg.step, 1))
    arr = rows.reshape(h, w, ch)
    if enc == "rgb8":
        return arr.copy()
    if enc == "bgr8":
        return arr[:, :, ::-1].copy()
    if enc == "rgba8":
        return arr[:, :, :3].copy()
    if enc == "bgra8":
        return arr[:, :, 2::-1].copy()
    return np.repeat(arr, 3, axis=2)
