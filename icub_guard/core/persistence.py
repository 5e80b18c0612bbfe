"""Saving learned models: no pickle, atomic, versioned, checksummed.

Format: a numpy ``.npz`` archive (loaded with ``allow_pickle=False``, so loading
never runs code) holding the classifier's arrays and one JSON metadata blob.
The metadata carries a format version, the backbone id and its weights hash,
and a SHA-256 (or, given a key, HMAC-SHA-256) digest over every array and the
metadata itself. Writes go to a temp file, are fsync'd, then renamed, so a
crash leaves the old file or the new one, never half of one.

A plain SHA-256 catches corruption and edits by anyone who does not recompute
it; set a key (``ICUB_GUARD_MODEL_KEY`` or ``key=``) to also stop someone who
does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelFileError

FORMAT = "icub_guard.model"
VERSION = 1
_META = "__meta__"


@dataclass
class SavedModel:
    meta: dict
    arrays: dict[str, np.ndarray]


def _key(key: bytes | str | None) -> bytes | None:
    key = key if key is not None else os.environ.get("ICUB_GUARD_MODEL_KEY")
    if key in (None, "", b""):
        return None
    return key.encode() if isinstance(key, str) else key


def _digest(meta: dict, arrays: dict[str, np.ndarray], key: bytes | None) -> str:
    h = hmac.new(key, digestmod=hashlib.sha256) if key else hashlib.sha256()
    body = {k: v for k, v in meta.items() if k != "digest"}
    h.update(json.dumps(body, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return ("hmac-sha256:" if key else "sha256:") + h.hexdigest()


def save(path: str | Path, meta: dict, arrays: dict[str, np.ndarray], key: bytes | str | None = None) -> Path:
    """Atomically write `arrays` + `meta` to `path` (a `.npz`)."""
    path = Path(path)
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.dtype == object:
            kind = f"{type(a).__name__}/{getattr(a, 'dtype', '')}"
            raise TypeError(f"array {name!r} must be a plain numpy array, not {kind}")
    meta = {**meta, "format": FORMAT, "version": VERSION}
    meta["digest"] = _digest(meta, arrays, _key(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # uncompressed: float features barely compress, and the guard saves after every label
            np.savez(f, **arrays, **{_META: np.frombuffer(json.dumps(meta).encode(), np.uint8)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def load(path: str | Path, key: bytes | str | None = None) -> SavedModel:
    """Read and verify a model file; any problem raises `ModelFileError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ModelFileError(f"model file {path} is corrupt or truncated ({exc})") from exc
    except ValueError as exc:
        raise ModelFileError(f"model file {path} is not a valid icub_guard model: {exc}") from exc
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc}") from exc
    except Exception as exc:  # zlib.error, KeyError from a damaged archive directory, ...
        raise ModelFileError(f"model file {path} is corrupt ({type(exc).__name__}: {exc})") from exc
    if _META not in arrays:
        raise ModelFileError(f"model file {path} has no metadata: not an icub_guard model")
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"model file {path} has unreadable metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"model file {path} is not an icub_guard model (format={meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise ModelFileError(
            f"model file {path} has format version {meta.get('version')}; this icub_guard reads {VERSION}")
    stored = meta.get("digest", "")
    k = _key(key)
    if stored.startswith("hmac-sha256:") and not k:
        raise ModelFileError(f"model file {path} is signed with a key; set ICUB_GUARD_MODEL_KEY to load it")
    if not hmac.compare_digest(stored, _digest(meta, arrays, k)):
        raise ModelFileError(f"model file {path} failed its checksum: it was modified or damaged after saving")
    return SavedModel(meta, arrays)
