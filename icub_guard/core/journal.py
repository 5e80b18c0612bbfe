"""An append-only journal of learned labels: a label is acknowledged only once it is on disk.

The model file (`persistence`) is a snapshot, written in the background; between
two snapshots every label is appended here and fsync'd before it is learned or
anyone is told. A snapshot records the journal sequence number it contains
(`journal_seq` in its metadata); at start-up the snapshot is loaded and the
journal's later records are replayed, in order, through the same `learn`.

File: `MAGIC`, then records. Record: an 8-byte sync marker, the 4-byte
little-endian payload length, a CRC-32 of length and payload, the payload: a
JSON header line (seq, label, source, teacher, time, dim, and the decision id,
or for a forget record the example ids it removed) and the features as float32
bytes. The marker lets a reader find the records after a damaged one; the CRC
covers the length, so a flipped length field is found too.

The first record of a file is its base (`source` "base", no features): the
records that follow are base+1, base+2, … without a gap, and a snapshot with
`journal_seq` ≥ base holds everything before them (compaction writes the base).
A reset is a record of its own (`source` "reset"): replaying it forgets
everything before, so any snapshot may precede it.

What `open` accepts, and what it refuses:

* a torn tail — an incomplete last record, the one thing a crash mid-append
  leaves — is cut off with a log line (`dropped_tail`): it was never acknowledged;
* anything else — a record whose checksum fails, bytes between records, a gap in
  the sequence, or a base above the snapshot's position (a snapshot deleted or
  older than the journal) — is `JournalDamaged`, and the file is left untouched.
  With `recover=True` the damaged file is kept aside untouched
  (`<journal>.damaged-<time>`), every record that verifies is kept, and the
  missing sequence numbers are named (`recovery`).

An append writes at the end of the last verified record; if it fails (a full
disk), the file is cut back to that offset before anything else is appended.
After a snapshot, `compact` rewrites the journal without what the snapshot holds
(temp file, fsync, rename), so the folder never grows past snapshot + journal.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelFileError

log = logging.getLogger(__name__)

MAGIC = b"ICUBGUARD-JOURNAL 2\n"
MAGIC_V1 = b"ICUBGUARD-JOURNAL 1\n"  # records without markers; read, then rewritten as version 2
SYNC = b"\x00ICUBREC"
_HEAD = struct.Struct("<II")  # payload length, crc32 of (length, payload)
_HEAD_V1 = struct.Struct("<II")  # payload length, crc32 of payload
MAX_RECORD = 64 * 1024 * 1024
MARKERS = ("base", "lost")  # records that only say where the journal starts, or which records a recovery lost


class JournalDamaged(ModelFileError):
    """The journal is damaged somewhere a crash cannot damage it: refuse to start, touch nothing."""


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


@dataclass
class Recovery:
    """What `open(recover=True)` did: where the damaged file went, what was kept, what is missing."""

    kept_aside: Path | None
    recovered: int
    missing: list[int] = field(default_factory=list)  # sequence numbers that could not be read
    problems: list[str] = field(default_factory=list)
    unknown_tail: bool = False  # damage ran to the end: how many records were there is not known


def _encode(e: Entry) -> bytes:
    feats = np.ascontiguousarray(e.features, dtype=np.float32).reshape(1, -1)
    head = {"seq": e.seq, "label": e.label, "source": e.source, "teacher": e.teacher, "time": e.time,
            "dim": feats.shape[1]}
    if e.decision is not None:
        head["decision"] = e.decision
    if e.ids is not None:
        head["ids"] = e.ids
    payload = json.dumps(head, separators=(",", ":")).encode() + b"\n" + feats.tobytes()
    length = struct.pack("<I", len(payload))
    return SYNC + length + struct.pack("<I", zlib.crc32(length + payload)) + payload


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


def _marker(seq: int, source: str) -> Entry:
    return Entry(seq, "", np.zeros((1, 0), np.float32), source, "-", time.time())


def _read(data: bytes, pos: int) -> tuple[Entry, int] | str:
    """The record at `pos` and where it ends, or why there is none: "incomplete" (it runs past the end of the
    file) or a description of the damage."""
    start = pos + len(SYNC) + _HEAD.size
    if not SYNC.startswith(data[pos: pos + len(SYNC)]):
        return "bytes that are not a record"
    if start > len(data):
        return "incomplete"
    n, crc = _HEAD.unpack_from(data, pos + len(SYNC))
    if n > MAX_RECORD:
        return "a record length out of range"
    if start + n > len(data):
        return "incomplete"
    if zlib.crc32(data[pos + len(SYNC): pos + len(SYNC) + 4] + data[start: start + n]) != crc:
        return "a record whose checksum does not match"
    try:
        return _decode(data[start: start + n]), start + n
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "a record whose contents cannot be read"


def _read_v1(data: bytes) -> list[Entry]:
    """A version-1 journal (no markers): whole records up to the first that fails."""
    out, pos = [], len(MAGIC_V1)
    while pos + _HEAD_V1.size <= len(data):
        n, crc = _HEAD_V1.unpack_from(data, pos)
        payload = data[pos + _HEAD_V1.size: pos + _HEAD_V1.size + n]
        if n > MAX_RECORD or len(payload) < n or zlib.crc32(payload) != crc:
            break
        try:
            out.append(_decode(payload))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            break
        pos += _HEAD_V1.size + n
    return out


@dataclass
class _Scan:
    records: list[Entry]
    end: int  # where the last whole record ends
    problems: list[str]  # damage anywhere a crash cannot cause it
    torn: int = 0  # bytes of an incomplete last record
    unknown_tail: bool = False  # damage that runs to the end of the file


def _scan(data: bytes) -> _Scan:
    out = _Scan([], len(MAGIC), [])
    pos = len(MAGIC)
    while pos < len(data):
        got = _read(data, pos)
        if not isinstance(got, str):
            out.records.append(got[0])
            pos = out.end = got[1]
            continue
        nxt = data.find(SYNC, pos + 1)
        while nxt != -1 and isinstance(_read(data, nxt), str):
            nxt = data.find(SYNC, nxt + 1)
        if nxt == -1:  # nothing readable after it
            if got == "incomplete":
                out.torn = len(data) - pos
            else:
                out.problems.append(f"{got} at byte {pos}, up to the end of the file")
                out.unknown_tail = True
            break
        out.problems.append(f"{got} at byte {pos} ({nxt - pos} bytes skipped)")
        pos = nxt
    return out


def _gaps(records: list[Entry]) -> list[int]:
    """Sequence numbers missing between the base and the last record (those a recovery recorded as lost are
    accounted for)."""
    seqs = [e.seq for e in records]
    known = {i for e in records if e.source == "lost" for i in e.ids or []}
    missing = []
    for a, b in itertools.pairwise(seqs):
        missing += [i for i in range(a + 1, b) if i not in known]
    return missing


def _with_lost_markers(base: int, entries: list[Entry]) -> list[Entry]:
    """The base, then the entries with a "lost" record (its ids: the sequence numbers) closing every gap."""
    out, last = [_marker(base, "base")], base
    for e in entries:
        if e.seq > last + 1:
            lost = _marker(e.seq - 1, "lost")
            lost.ids = list(range(last + 1, e.seq))
            out.append(lost)
        out.append(e)
        last = e.seq
    return out


def _out_of_order(records: list[Entry]) -> bool:
    return any(b <= a for a, b in itertools.pairwise(e.seq for e in records))


class LabelJournal:
    """The journal beside a model file (`<model>.journal`); thread-safe."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._end = 0  # the end of the last verified record: every append starts here
        self._last_start = 0  # where the last record appended starts (`retract`)
        self._dirty = False  # a failed append could not be cut back yet
        self.last_seq = 0
        self.dropped_tail = 0  # bytes of a torn last record cut off at open
        self.recovery: Recovery | None = None  # what open(recover=True) did, if it had to

    @classmethod
    def beside(cls, model_path: str | Path) -> LabelJournal:
        p = Path(model_path)
        return cls(p.with_name(p.name + ".journal"))

    # -------------------------------------------------------------- reading
    def open(self, snapshot_seq: int = 0, recover: bool = False) -> list[Entry]:
        """Read the journal and open it for appending; returns its records after the base marker (the labels,
        forgets and resets; the caller replays those past `snapshot_seq`).

        `snapshot_seq`: the position the model file holds (0: no model file). A torn tail is cut off (logged,
        `dropped_tail`); any other damage raises `JournalDamaged` and touches nothing, unless `recover`.
        """
        with self._lock:
            if not self.path.exists():
                self._rewrite([_marker(snapshot_seq, "base")])
                self._open_for_append()
                self.last_seq = snapshot_seq
                return []
            data = self.path.read_bytes()
            if data.startswith(MAGIC_V1):
                entries = _read_v1(data)  # the old format: no markers, no base; rewritten as version 2
                base = entries[0].seq - 1 if entries else snapshot_seq
                self._rewrite([_marker(base, "base"), *entries])
                self._open_for_append()
                self.last_seq = entries[-1].seq if entries else base
                return entries
            if not data.startswith(MAGIC):
                if MAGIC.startswith(data):  # a crash while the file was being created
                    self._rewrite([_marker(snapshot_seq, "base")])
                    self._open_for_append()
                    self.last_seq = snapshot_seq
                    return []
                raise JournalDamaged(f"{self.path} is not an icub_guard label journal")
            scan = _scan(data)
            records = scan.records
            problems = list(scan.problems)
            if not records or records[0].source != "base":
                problems.append("the base record is missing")
            base = records[0].seq if records and records[0].source == "base" else None
            missing = _gaps(records)
            if missing:
                problems.append(f"records {_ranges(missing)} are missing")
            if _out_of_order(records):
                problems.append("records are out of order (a record repeated or moved)")
            entries = [e for e in (records[1:] if base is not None else records) if e.source != "lost"]
            reset_first = bool(entries) and entries[0].source == "reset"
            if base is not None and base > snapshot_seq and not reset_first:
                gap = list(range(snapshot_seq + 1, base + 1))
                problems.append(f"the journal continues after record {base} but the model file holds only up to "
                                f"{snapshot_seq} ({'no model file' if snapshot_seq == 0 else 'an older snapshot'}):"
                                f" records {_ranges(gap)} are lost")
                missing = gap + missing
            if problems and not recover:
                raise JournalDamaged(f"label journal {self.path} is damaged: {'; '.join(problems)}. Nothing was "
                                     "changed; start with recover_journal to keep the damaged file aside and "
                                     "recover every record that verifies")
            if problems:
                self._recover(data, entries, missing, problems, scan.unknown_tail, snapshot_seq)
            elif scan.torn:
                self.dropped_tail = scan.torn
                log.warning("label journal %s: dropped a torn last record (%d bytes, an append a crash "
                            "interrupted; it was never acknowledged)", self.path, scan.torn)
                with open(self.path, "r+b") as f:
                    f.truncate(scan.end)
                    os.fsync(f.fileno())
            self._open_for_append()
            self.last_seq = max([snapshot_seq, *(e.seq for e in records)])
            return entries

    def _recover(self, data: bytes, entries: list[Entry], missing: list[int], problems: list[str],
                 unknown_tail: bool, snapshot_seq: int) -> None:
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        shutil.copy2(self.path, aside)  # the evidence, byte for byte
        base = min([snapshot_seq, *(e.seq - 1 for e in entries[:1])])
        self._rewrite(_with_lost_markers(base, entries))
        self.recovery = Recovery(aside, len(entries), missing, problems, unknown_tail)
        log.error("label journal %s was damaged (%s); kept aside as %s; recovered %d records; missing: %s%s",
                  self.path, "; ".join(problems), aside.name, len(entries), _ranges(missing) or "none known",
                  " (and an unknown number at the end)" if unknown_tail else "")

    def entries(self) -> Iterator[Entry]:
        """The records after the base, as on disk now (whole records only)."""
        with self._lock:
            records = _scan(self.path.read_bytes()).records if self.path.exists() else []
            yield from (e for e in records if e.source not in MARKERS)

    # -------------------------------------------------------------- writing
    def _open_for_append(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR)
        self._end = self._last_start = os.fstat(self._fd).st_size
        self._dirty = False

    def append(self, features: np.ndarray, label: str, source: str = "feedback", teacher: str = "default",
               decision: int | None = None, ids: list[int] | None = None) -> int:
        """Write one record at the end of the last verified one and fsync it; returns its sequence number.
        Only then may it be acknowledged. On failure (`OSError`, e.g. a full disk) the file is cut back to
        where it was, so nothing half-written stays in the journal.

        A label record holds its features; a `forget` record (source "forget")
        holds no features and the example ids it removed.
        """
        with self._lock:
            return self._append(Entry(self.last_seq + 1, label, features, source, teacher, time.time(), decision,
                                      ids))

    def _append(self, e: Entry) -> int:
        if self._fd is None:
            raise RuntimeError("journal is not open")
        if self._dirty or os.fstat(self._fd).st_size != self._end:
            os.ftruncate(self._fd, self._end)  # what a failed append left: cut back first (raises if it cannot)
            os.fsync(self._fd)
            self._dirty = False
        data, off = _encode(e), 0
        try:
            while off < len(data):
                off += os.pwrite(self._fd, data[off:], self._end + off)
            os.fdatasync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, self._end)
                os.fsync(self._fd)
            except OSError:
                self._dirty = True  # tried again before the next append
            raise
        self._last_start, self._end = self._end, self._end + len(data)
        self.last_seq = e.seq
        return e.seq

    def retract(self, seq: int) -> None:
        """Take back the last record (its label could not be applied): as if it had never been appended."""
        with self._lock:
            if self._fd is None or seq != self.last_seq or self._last_start >= self._end:
                raise RuntimeError(f"only the record just appended ({self.last_seq}) can be retracted, not {seq}")
            os.ftruncate(self._fd, self._last_start)
            os.fsync(self._fd)
            self._end, self.last_seq = self._last_start, seq - 1

    def _rewrite(self, entries: list[Entry]) -> None:
        assert not _gaps(entries), "a rewrite keeps the records contiguous"
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
        if self._fd is not None:
            self._open_for_append()

    def compact(self, upto_seq: int) -> None:
        """Drop the records a snapshot now holds (seq ≤ upto_seq); later ones stay, after a base of upto_seq."""
        with self._lock:
            records = _scan(self.path.read_bytes()).records
            keep = [e for e in records if e.seq > upto_seq and e.source != "base"]
            if len(keep) == len(records) - 1:
                return
            self._rewrite(_with_lost_markers(upto_seq, [e for e in keep if e.source != "lost"]))

    def reset(self) -> None:
        """Forget every record (the model was reset): the file holds only a reset record, which replays as a reset
        over any snapshot; sequence numbers keep counting up."""
        with self._lock:
            base, reset = _marker(self.last_seq, "base"), _marker(self.last_seq + 1, "reset")
            self._rewrite([base, reset])
            self.last_seq = reset.seq

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _ranges(seqs: list[int]) -> str:
    """[3, 4, 5, 9] → "3-5, 9"."""
    out: list[str] = []
    for s in sorted(set(seqs)):
        if out and s == int(out[-1].rsplit("-", 1)[-1]) + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{s}"
        else:
            out.append(str(s))
    return ", ".join(out)


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
