"""The teaching loop in one process: a simulated camera, the guard, simulated teachers.

The robot starts knowing nothing. Each frame the `Guard` judges the object in the
ROI (classifier, reject option, defences) and decides whether to ask (on its clock,
which here is frame time at the camera's rate, so the rate limit means what it means
on the robot); the teacher answers questions and corrects accepted mistakes, as a
person watching the iCub would. This is the ROS demo's runtime without ROS: the same
`Guard` the guard node drives, the same teacher classes, the same defaults (config/*.yaml).

Correction matters: a reject-only loop stalls as soon as two classes are known,
because a two-class one-vs-all SVM scores any new object above 0 for one of them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..core.guard import Guard
from ..core.recognizer import Recognizer
from ..core.session import Feedback
from ..defaults import node_defaults
from .datasets import SPLIT_STREAMS
from .teachers import OracleTeacher
from .truth import Tally
from .world import Frame, TabletopSim, simworld_objects

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


@dataclass
class LiveFrame:
    """One frame of a teaching stream: its crop and features, the truth, its round and the extraction time
    (features are extracted once, so a stream can be replayed through many guards)."""

    crop: np.ndarray  # S×S×3 uint8
    features: np.ndarray  # 1×D
    truth: str
    round: int
    extract_ms: float = 0.0


def stream_frames(variant: str = "7", rounds: int = 3, frames_per_object: int = 8, seed: int = 0,
                  image_size: int = 128) -> Iterator[tuple[int, Frame]]:
    """(round, camera frame): every object `rounds` times for `frames_per_object` frames (order shuffled per
    round, seeded) — what the robot's camera sees in a teaching session, and what `icub-guard record` writes."""
    objects = simworld_objects(variant)
    rng = np.random.default_rng(seed)
    with TabletopSim(objects, image_size, seed) as sim:
        for r in range(rounds):
            for k in rng.permutation(len(objects)):
                for i in range(frames_per_object):
                    yield r, sim.render(int(k), r * frames_per_object + i, SPLIT_STREAMS["live"])


def render_stream(rec: Recognizer, variant: str = "7", rounds: int = 3, frames_per_object: int = 8,
                  seed: int = 0) -> Iterator[LiveFrame]:
    """`stream_frames` cropped and featurised by `rec` (features once: a stream replays through many guards)."""
    for r, frame in stream_frames(variant, rounds, frames_per_object, seed):
        yield live_frame(rec, frame.image, frame.roi, frame.label, r)


def live_frame(rec: Recognizer, image: np.ndarray, roi, truth: str, round_: int) -> LiveFrame:
    """One camera frame as the guard sees it: cropped (the ROI, else the recogniser's mode) and featurised."""
    t0 = time.perf_counter()
    crop, _ = rec.crop(image, roi)
    feats = rec.features(crop)
    return LiveFrame(crop, feats, truth, round_, 1e3 * (time.perf_counter() - t0))


class Classroom:
    """The teachers in the room: a question goes to one of them (seeded), a `confirm` question to the one it
    names (`ask`), or to anyone when it names none."""

    def __init__(self, teachers: Sequence[OracleTeacher], seed: int = 0):
        if not teachers:
            raise ValueError("a classroom needs at least one teacher")
        self.teachers = list(teachers)
        self.by_name = {t.name: t for t in self.teachers}
        self.rng = np.random.default_rng(seed + 1)

    def pick(self, ask: str | None = None) -> OracleTeacher:
        if ask is not None and ask in self.by_name:
            return self.by_name[ask]
        return self.teachers[int(self.rng.integers(len(self.teachers)))]


def teach(guard: Guard, frames: Iterable[LiveFrame], teachers: Sequence[OracleTeacher],
          seed: int = 0, rate: float | None = None, on_frame: Callable[[StreamStats], None] | None = None,
          after_round: Callable[[int], None] | None = None) -> dict:
    """Run the guard over a stream: it decides (defences included), the teachers answer, confirm and correct.

    The session's clock is frame time at `rate` frames a second (default: the
    camera's). Returns per-round stats, the total, the session's counts and the
    labels' fate scored against the truth (`labels`: `right_learned`,
    `lie_learned`, `lie_refused`, …; `_as_right`/`_as_wrong` when the label
    learned after asking back differs from the one first given; `asked_back`).
    """
    rate = float(rate or node_defaults("sim_camera.yaml")["rate"])
    session = guard.session
    clock = [0.0]
    session.clock = lambda: clock[0]
    room = Classroom(teachers, seed)
    labels: Counter[str] = Counter()
    per_round: list[dict] = []
    total, stats, current = StreamStats(), StreamStats(), None
    for n, f in enumerate(frames):
        if current is not None and f.round != current:
            per_round.append(stats.summary())
            log.debug("round %d: %s", current + 1, per_round[-1])
            if after_round is not None:
                after_round(current)
            stats = StreamStats()
        current = f.round
        clock[0] = n / rate
        t0 = time.perf_counter()
        step = guard.judge(f.crop, f.features).step
        ms = f.extract_ms + 1e3 * (time.perf_counter() - t0)
        d = step.decision
        teacher = room.pick()
        answer = teacher.answer(f.truth, d.top(3)) if step.query else None
        correction = teacher.review(d.accepted, d.label, f.truth, asked=step.query is not None)
        for s in (stats, total):
            s.tally.add(d.accepted, d.label, f.truth)
            s.latency_ms.append(ms)
            s.queries += answer is not None
            s.corrections += correction is not None
        out = None
        if answer is not None:
            out = guard.feedback(Feedback(answer, query_id=step.query.query_id, teacher=teacher.name))
        elif correction is not None:
            out = guard.feedback(Feedback(correction, decision_id=step.decision_id, teacher=teacher.name))
        first = out
        while out is not None and out.query is not None:  # a label held: the confirm question, answered
            who = room.pick(out.query.ask)  # a confirm question, about this frame
            reply = who.answer(f.truth, d.top(3))
            for s in (stats, total):
                s.queries += 1
            out = guard.feedback(Feedback(reply, query_id=out.query.query_id, teacher=who.name))
        if out is not None:  # the label's fate, against the truth (a label asked back counts once)
            given = "right" if first.label == f.truth else "lie"
            labels[f"{given}_{out.action}" + ("" if out.action == "refused" or out.label == first.label
                                              else "_as_" + ("right" if out.label == f.truth else "wrong"))] += 1
            labels["asked_back"] += first.action == "quarantined"
        stats.classes = total.classes = len(session.rec.classes)
        if on_frame is not None:
            on_frame(total)
    if current is not None:
        per_round.append(stats.summary())
        if after_round is not None:
            after_round(current)
    return {"rounds": per_round, "total": total.summary(), "session": dict(session.counts), "labels": dict(labels)}


def teach_from_stream(guard: Guard, variant: str = "7", rounds: int = 3, frames_per_object: int = 8,
                      seed: int = 0, on_frame: Callable[[StreamStats], None] | None = None,
                      teacher: OracleTeacher | None = None, rate: float | None = None) -> dict:
    """The in-process demo: a rendered stream (`render_stream`) through `guard`, one teacher (an oracle).

    `rate` (frames per second of the session's clock) defaults to the camera's (config/sim_camera.yaml).
    """
    frames = render_stream(guard.rec, variant, rounds, frames_per_object, seed)
    out = teach(guard, frames, [teacher or OracleTeacher()], seed, rate, on_frame)
    out["defences"] = list(guard.defences.specs)
    return out
