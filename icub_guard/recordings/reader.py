"""Reading a recording's messages without a ROS install, refusing damaged files with the reason.

The MCAP file is read as a stream, every chunk's CRC checked, and each message
decoded against the ros2msg schema the file carries (mcap-ros2-support). A file
that is truncated, corrupt, or whose message does not decode raises
`RecordingError` naming the file, the message's number and topic, and the byte
offset reached: the data are refused whole, never half-read in silence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcap.exceptions import InvalidMagic
from mcap.records import Channel, Footer, Message, Schema
from mcap.stream_reader import StreamReader
from mcap_ros2.decoder import DecoderFactory

from ..core.errors import RecordingError

log = logging.getLogger(__name__)

#: the largest record read (a chunk of frames); a corrupt length field must not allocate gigabytes
RECORD_LIMIT = 256 * 2**20


@dataclass
class RawMessage:
    """One message as recorded: its topic, type, CDR bytes, times and where it lies in the file."""

    topic: str
    schema: str  # e.g. sensor_msgs/msg/Image
    data: bytes
    log_time: int  # ns
    index: int  # 0-based, in file order
    offset: int  # bytes of the file read when it came out (a chunk's messages share its end)
    definition: Schema | None = None  # the file's own ros2msg schema record


def recording_files(path: str | Path) -> list[Path]:
    """The MCAP files of a recording: the file itself, or a rosbag2 folder's `*.mcap` files in order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.mcap"))
        if not files:
            raise RecordingError(f"recording folder {path} holds no .mcap file (a sqlite3 .db3 bag: convert it "
                                 "with `ros2 bag convert`, or record with `-s mcap`)")
        return files
    if not path.is_file():
        raise RecordingError(f"recording {path} does not exist")
    return [path]


def iter_messages(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[RawMessage]:
    """The messages of `path` (a file or a rosbag2 folder) in file order (only those on `topics` when given),
    or `RecordingError`."""
    wanted = set(topics) if topics is not None else None
    n = 0
    for file in recording_files(path):
        for m in _file_messages(file, wanted, n):
            n = m.index + 1
            if m.definition is not None:
                yield m


def _file_messages(path: Path, wanted: set[str] | None, n: int) -> Iterator[RawMessage]:
    """One file's messages, numbered from `n`; a message not wanted comes out without its schema (skipped)."""
    size = path.stat().st_size
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    with open(path, "rb") as f:
        records = StreamReader(f, validate_crcs=True, record_size_limit=RECORD_LIMIT).records
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except InvalidMagic as exc:
                raise RecordingError(f"recording {path} is not an MCAP file (its first or last bytes are not "
                                     "MCAP's magic; a .db3 bag: convert it with `ros2 bag convert`)") from exc
            except Exception as exc:  # a parser of untrusted bytes: any failure means a damaged file
                where = f"after message {n} at byte {f.tell()} of {size}"
                if f.tell() >= size:
                    raise RecordingError(f"recording {path} is truncated ({where}): the file ends inside a record "
                                         "(was the recorder stopped before it closed the file?)") from exc
                raise RecordingError(f"recording {path} is corrupt ({where}): {type(exc).__name__}: {exc}") from exc
            if isinstance(record, Schema):
                schemas[record.id] = record
            elif isinstance(record, Channel):
                channels[record.id] = record
            elif isinstance(record, Message):
                ch = channels.get(record.channel_id)
                if ch is None:
                    raise RecordingError(f"recording {path} is corrupt: message {n} at byte {f.tell()} names "
                                         f"channel {record.channel_id}, which was never declared")
                if wanted is None or ch.topic in wanted:
                    sc = schemas.get(ch.schema_id)
                    if sc is None:
                        raise RecordingError(f"recording {path} is corrupt: message {n} on {ch.topic} at byte "
                                             f"{f.tell()} has no schema (schema id {ch.schema_id})")
                    yield RawMessage(ch.topic, sc.name, record.data, record.log_time, n, f.tell(), sc)
                else:
                    yield RawMessage(ch.topic, "", b"", record.log_time, n, f.tell())
                n += 1
            elif isinstance(record, Footer):
                break


class MessageDecoder:
    """CDR bytes → message objects, one decoder per schema the file declares (built from its text)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._factory = DecoderFactory()
        self._decoders: dict[tuple[str, bytes], Any] = {}

    def __call__(self, msg: RawMessage) -> Any:
        try:
            if msg.definition is None:
                raise ValueError("its channel declares no schema")
            key = (msg.definition.name, msg.definition.data)
            dec = self._decoders.get(key)
            if dec is None:
                dec = self._factory.decoder_for("cdr", msg.definition)
                if dec is None:
                    raise ValueError(f"schema encoding {msg.definition.encoding!r} is not ros2msg")
                self._decoders[key] = dec
            return dec(msg.data)
        except Exception as exc:  # malformed CDR may fail anywhere in the decoder
            raise RecordingError(f"recording {self.path}: message {msg.index} on {msg.topic} ({msg.schema}) at "
                                 f"byte {msg.offset} does not decode: {type(exc).__name__}: {exc}") from exc


def topic_summary(path: str | Path) -> dict[str, tuple[str, int]]:
    """topic → (type, message count): what `ros2 bag info` lists, for error messages and `replay`."""
    out: dict[str, tuple[str, int]] = {}
    for m in iter_messages(path):
        t, c = out.get(m.topic, (m.schema, 0))
        out[m.topic] = (t, c + 1)
    return out
