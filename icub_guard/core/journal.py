"""An append-only journal of learned labels: a label is acknowledged only once it is on disk.

The model file (`persistence`) is a snapshot, written in the background; between
two snapshots every applied label is appended here and fsync'd before anyone is
told it was learned. A snapshot records the journal sequence number it contains
(`journal_seq` in its metadata); at start-up the snapshot is loaded and the
journal's later records are replayed, in order, through the same `learn`.

Record: 4-byte little-endian payload length, 4-byte CRC-32 of the payload, the
payload: a JSON header line (seq, label, source, teacher, time, dim, and the
decision id, or for a forget record the example ids it removed) and the
features as float32 bytes. A torn last record (a crash mid-append: short, or a
checksum mismatch) is detected, logged and cut off, never a failed start.
After a snapshot, `compact` rewrites the journal without what the snapshot holds
(temp file, fsync, rename), so the folder never grows past snapshot + journal.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelFileError

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<II")  # payload length, crc32
MAGIC = b"ICUBGUARD-JOURNAL 1\n"
MAX_RECORD = 64 * 1024 * 1024


@dataclass
class Entry:
    seq: int
    label: str
    features: np.ndarray  # 1×D float32
    source: str = "feedback"
    teacher: str = "default"
    time: float = 0.0
    decision: int | None = None  # the decision the label was given for
    ids: list[int] | None = None  # a "forget" record: the example ids removed


def _encode(e: Entry) -> bytes:
    feats = np.ascontiguousarray(e.features, dtype=np.float32).reshape(1, -1)
    head = {"seq": e.seq, "label": e.label, "source": e.source, "teacher": e.teacher, "time": e.time,
            "dim": feats.shape[1]}
    if e.decision is not None:
        head["decision"] = e.decision
    if e.ids is not None:
        head["ids"] = e.ids
    payload = json.dumps(head, separators=(",", ":")).encode() + b"\n" + feats.tobytes()
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes) -> Entry:
    head, _, body = payload.partition(b"\n")
    h = json.loads(head)
    feats = np.frombuffer(body, dtype=np.float32)
    if feats.size != h["dim"]:
        raise ValueError("feature length does not match the header")
    ids = h.get("ids")
    return Entry(int(h["seq"]), str(h["label"]), feats.reshape(1, -1).copy(), str(h["source"]), str(h["teacher"]),
                 float(h["time"]), None if h.get("decision") is None else int(h["decision"]),
                 None if ids is None else [int(i) for i in ids])



class LabelJournal:
    """The journal beside a model file (`<model>.journal`); thread-safe."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._f = None
        self.last_seq = 0
        self.dropped_tail = 0  # bytes of a torn last record cut off at open

    @classmethod
    def beside(cls, model_path: str | Path) -> LabelJournal:
        p = Path(model_path)
        return cls(p.with_name(p.name + ".journal"))

    # -------------------------------------------------------------- reading
    def _scan(self) -> tuple[list[Entry], int]:
        """Every whole record, and the byte offset where the whole records end."""
        if not self.path.exists():
            return [], 0
        data = self.path.read_bytes()
        if not data.startswith(MAGIC):
            if MAGIC.startswith(data):  # a crash while the file was being created
                return [], 0
            raise ModelFileError(f"{self.path} is not an icub_guard label journal")
        out, pos = [], len(MAGIC)
        while pos < len(data):
            if pos + _HEAD.size > len(data):
                break
            n, crc = _HEAD.unpack_from(data, pos)
            payload = data[pos + _HEAD.size : pos + _HEAD.size + n]
            if n > MAX_RECORD or len(payload) < n or zlib.crc32(payload) != crc:
                break
            try:
                out.append(_decode(payload))
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                break
            pos += _HEAD.size + n
        return out, pos

    def open(self) -> list[Entry]:
        """Read the journal (cutting off a torn tail, with a log line) and open it for appending."""
        with self._lock:
            entries, end = self._scan()
            if self.path.exists() and self.path.stat().st_size > max(end, len(MAGIC)):
                self.dropped_tail = self.path.stat().st_size - end
                log.warning("label journal %s: dropped a torn last record (%d bytes; it was never acknowledged)",
                            self.path, self.dropped_tail)
                with open(self.path, "r+b") as f:
                    f.truncate(end)
                    os.fsync(f.fileno())
            if not self.path.exists() or end == 0:
                self._rewrite([])
            self._f = open(self.path, "ab")  # kept open: one append per label
            self.last_seq = entries[-1].seq if entries else self.last_seq
            return entries

    # -------------------------------------------------------------- writing
    def append(self, features: np.ndarray, label: str, source: str = "feedback", teacher: str = "default",
               decision: int | None = None, ids: list[int] | None = None) -> int:
        """Write one record and fsync it; returns its sequence number. Only then may it be acknowledged.

        A label record holds its features; a `forget` record (source "forget")
        holds no features and the example ids it removed.
        """
        with self._lock:
            if self._f is None:
                raise RuntimeError("journal is not open")
            e = Entry(self.last_seq + 1, label, features, source, teacher, time.time(), decision, ids)
            self._f.write(_encode(e))
            self._f.flush()
            os.fdatasync(self._f.fileno())
            self.last_seq = e.seq
            return e.seq

    def _rewrite(self, entries: list[Entry]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            for e in entries:
                f.write(_encode(e))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def compact(self, upto_seq: int) -> None:
        """Drop the records a snapshot now holds (seq ≤ upto_seq); later ones stay."""
        with self._lock:
            entries, _ = self._scan()
            keep = [e for e in entries if e.seq > upto_seq]
            if len(keep) == len(entries):
                return
            if self._f is not None:
                self._f.close()
            self._rewrite(keep)
            self._f = open(self.path, "ab")  # kept open: one append per label

    def reset(self) -> None:
        """Forget every record (the model was reset); sequence numbers keep counting up."""
        with self._lock:
            if self._f is not None:
                self._f.close()
            self._rewrite([])
            self._f = open(self.path, "ab")  # kept open: one append per label

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None

    def entries(self) -> Iterator[Entry]:
        with self._lock:
            yield from self._scan()[0]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temp_files(model_path: str | Path) -> list[Path]:
    """Temp files an interrupted save or compaction left beside the model; removed at start-up."""
    p = Path(model_path)
    stale = [f for f in p.parent.glob(f".{p.name}.*.tmp")] if p.parent.is_dir() else []
    for f in stale:
        f.unlink(missing_ok=True)
    if stale:
        log.warning("removed %d stale temp file(s) of interrupted saves beside %s", len(stale), p)
    return stale
