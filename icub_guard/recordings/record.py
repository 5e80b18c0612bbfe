"""Recording the simulated camera: SimWorld frames, their regions and ground truth (and decisions) to MCAP.

The frames are those of a teaching session (`sim.teaching.stream_frames`): every
object `rounds` times for `frames_per_object` frames, seeded, so the same
arguments write the same messages. Stamps are frame time at `rate` frames a
second from `start_ns`, not the wall clock, for the same reason. With a `Guard`,
each frame's decision is written too, as the guard node would publish it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..sim.teaching import stream_frames
from ..sim.world import simworld_objects
from .topics import Topics
from .writer import RecordingWriter, stamp_of

log = logging.getLogger(__name__)


@dataclass
class RecordSummary:
    path: Path
    frames: int
    messages: int
    bytes: int
    seconds: float
    classes: list[str]


def record_simworld(out: str | Path, variant: str = "7", rounds: int = 2, frames_per_object: int = 5,
                    seed: int = 0, rate: float = 5.0, image_size: int = 128, guard=None,
                    topics: Topics | None = None, start_ns: int = 1_000_000_000,
                    progress: Callable[[int], None] | None = None) -> RecordSummary:
    """Write a SimWorld session to `out` (`guard`: a `core.guard.Guard` whose decisions are recorded too)."""
    if rounds < 1 or frames_per_object < 1:
        raise ValueError("rounds and frames_per_object must be >= 1")
    if not 0 < rate <= 1000:
        raise ValueError("rate must be in (0, 1000] frames a second")
    t0 = time.perf_counter()
    topics = topics or Topics.defaults()
    meta = {"source": f"SimWorld{variant}", "seed": seed, "rounds": rounds, "frames_per_object": frames_per_object,
            "rate": rate, "image_size": image_size}
    n = 0
    with RecordingWriter(out, topics, meta) as w:
        for _, frame in stream_frames(variant, rounds, frames_per_object, seed, image_size):
            t_ns = start_ns + round(n * 1e9 / rate)
            w.frame(frame.image, t_ns, n, frame.roi, frame.label)
            if guard is not None:
                step = guard.frame(frame.image, frame.roi, now=t_ns * 1e-9)
                w.decision(guard.decision_payload(step, stamp=stamp_of(t_ns), frame_id="camera"), t_ns)
            n += 1
            if progress is not None:
                progress(n)
    path = Path(out)
    return RecordSummary(path, n, w.messages, path.stat().st_size, time.perf_counter() - t0,
                         [o.label for o in simworld_objects(variant)])
