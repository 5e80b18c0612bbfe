"""The teaching loop in one process: a simulated camera, the teaching session, a simulated teacher.

The robot starts knowing nothing. Each frame it recognises the object in the
ROI; the `TeachingSession` decides whether to ask (on its clock, which here is
frame time at the camera's rate, so the rate limit means what it means on the
robot), and the teacher answers questions and corrects accepted mistakes, as a
person watching the iCub would. This is the ROS demo's protocol without ROS:
the same session, the same teacher classes, the same defaults (config/*.yaml).

Correction matters: a reject-only loop stalls as soon as two classes are known,
because a two-class one-vs-all SVM scores any new object above 0 for one of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..defaults import node_defaults
from .datasets import SPLIT_STREAMS
from .recognizer import Recognizer
from .session import Feedback, OracleTeacher, SessionConfig, Tally, TeachingSession
from .sim import TabletopSim, simworld_objects

log = logging.getLogger(__name__)


@dataclass
class StreamStats:
    tally: Tally = field(default_factory=Tally)
    queries: int = 0  # the robot asked, the teacher answered
    corrections: int = 0  # accepted but wrong, the teacher corrected
    classes: int = 0
    latency_ms: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    @property
    def frames(self) -> int:
        return self.tally.counts["frames"]

    def summary(self) -> dict:
        lat = np.asarray(self.latency_ms or [np.nan])
        c = self.tally.counts
        return {"frames": c["frames"], "correct": c["correct"], "wrong": c["wrong"], "rejected": c["rejected"],
                "queries": self.queries, "corrections": self.corrections, "classes": self.classes,
                "accuracy": self.tally.accuracy, "reject_rate": self.tally.reject_rate,
                "fps": c["frames"] / max(time.perf_counter() - self.started, 1e-9),
                "latency_ms_p50": float(np.nanmedian(lat)), "latency_ms_p95": float(np.nanpercentile(lat, 95))}


def teach_from_stream(rec: Recognizer, variant: str = "7", rounds: int = 3, frames_per_object: int = 8,
                      seed: int = 0, on_frame: Callable[[StreamStats], None] | None = None,
                      config: SessionConfig | None = None, teacher: OracleTeacher | None = None,
                      rate: float | None = None) -> dict:
    """Show every object `rounds` times for `frames_per_object` frames; return per-round stats.

    The object order is shuffled each round (seeded). `config` defaults to the
    guard's (config/guard.yaml), `rate` (frames per second of the session's
    clock) to the camera's (config/sim_camera.yaml), `teacher` to an oracle.
    """
    objects = simworld_objects(variant)
    rate = float(rate or node_defaults("sim_camera.yaml")["rate"])
    clock = [0.0]
    session = TeachingSession(rec, config or SessionConfig.defaults(), clock=lambda: clock[0])
    teacher = teacher or OracleTeacher()
    rng = np.random.default_rng(seed)
    per_round: list[dict] = []
    total = StreamStats()
    n = 0
    with TabletopSim(objects, 128, seed) as sim:
        for r in range(rounds):
            stats = StreamStats()
            for k in rng.permutation(len(objects)):
                for i in range(frames_per_object):
                    frame = sim.render(int(k), r * frames_per_object + i, SPLIT_STREAMS["live"])
                    clock[0] = n / rate
                    n += 1
                    t0 = time.perf_counter()
                    crop, _ = rec.crop(frame.image, frame.roi)
                    step = session.observe(rec.features(crop))
                    ms = 1e3 * (time.perf_counter() - t0)
                    d = step.decision
                    answer = teacher.answer(frame.label) if step.query else None
                    correction = teacher.review(d.accepted, d.label, frame.label, asked=step.query is not None)
                    for s in (stats, total):
                        s.tally.add(d.accepted, d.label, frame.label)
                        s.latency_ms.append(ms)
                        s.queries += answer is not None
                        s.corrections += correction is not None
                    if answer is not None:
                        session.feedback(Feedback(answer, query_id=step.query.query_id))
                    elif correction is not None:
                        session.feedback(Feedback(correction, decision_id=step.decision_id))
                    stats.classes = total.classes = len(rec.classes)
                    if on_frame is not None:
                        on_frame(total)
            per_round.append(stats.summary())
            log.info("round %d: %s", r + 1, per_round[-1])
    return {"rounds": per_round, "total": total.summary(), "session": dict(session.counts)}
