"""The teaching loop without ROS: a simulated camera, the recognizer, an oracle teacher.

The robot starts knowing nothing. Each frame it recognises the object in the ROI;
when it rejects (answers `unknown`) it asks the teacher, who gives the true
label, and when it names the object wrongly the teacher corrects it, as a person
watching the iCub would. Either way it learns that crop online. This is the
paper's interactive setting and the core of the ROS demo, here in one process.

Correction matters: a reject-only loop stalls as soon as two classes are known,
because a two-class one-vs-all SVM scores any new object above 0 for one of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .datasets import SPLIT_STREAMS
from .recognizer import Recognizer
from .sim import TabletopSim, simworld_objects

log = logging.getLogger(__name__)


@dataclass
class StreamStats:
    frames: int = 0
    correct: int = 0  # accepted with the right label
    wrong: int = 0  # accepted with a wrong label
    rejected: int = 0
    queries: int = 0  # rejected, the robot asked
    corrections: int = 0  # accepted but wrong, the teacher corrected
    classes: int = 0
    latency_ms: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def summary(self) -> dict:
        lat = np.asarray(self.latency_ms or [np.nan])
        elapsed = time.perf_counter() - self.started
        d = {k: v for k, v in asdict(self).items() if k not in ("latency_ms", "started")}
        d.update(accuracy=self.correct / max(self.frames, 1), reject_rate=self.rejected / max(self.frames, 1),
                 fps=self.frames / max(elapsed, 1e-9), latency_ms_p50=float(np.nanmedian(lat)),
                 latency_ms_p95=float(np.nanpercentile(lat, 95)))
        return d


def teach_from_stream(rec: Recognizer, variant: str = "7", rounds: int = 3, frames_per_object: int = 8,
                      seed: int = 0, on_frame: Callable[[StreamStats], None] | None = None) -> dict:
    """Show every object `rounds` times for `frames_per_object` frames; return per-round stats.

    The object order is shuffled each round (seeded). Round 1 is mostly questions;
    later rounds show what was learned.
    """
    objects = simworld_objects(variant)
    rng = np.random.default_rng(seed)
    per_round: list[dict] = []
    total = StreamStats()
    with TabletopSim(objects, 128, seed) as sim:
        for r in range(rounds):
            stats = StreamStats()
            for k in rng.permutation(len(objects)):
                for i in range(frames_per_object):
                    frame = sim.render(int(k), r * frames_per_object + i, SPLIT_STREAMS["live"])
                    t0 = time.perf_counter()
                    crop, _ = rec.crop(frame.image, frame.roi)
                    feats = rec.features(crop)
                    decision = rec.classify_features(feats)[0]
                    ms = 1e3 * (time.perf_counter() - t0)
                    for s in (stats, total):
                        s.frames += 1
                        s.latency_ms.append(ms)
                        if not decision.accepted:
                            s.rejected += 1
                        elif decision.label == frame.label:
                            s.correct += 1
                        else:
                            s.wrong += 1
                    if decision.label != frame.label:  # asked, or corrected: learn what it saw
                        rec.learn(feats, frame.label)
                        key = "queries" if not decision.accepted else "corrections"
                        for s in (stats, total):
                            setattr(s, key, getattr(s, key) + 1)
                    stats.classes = total.classes = len(rec.classes)
                    if on_frame is not None:
                        on_frame(total)
            per_round.append(stats.summary())
            log.info("round %d: %s", r + 1, per_round[-1])
    return {"rounds": per_round, "total": total.summary()}
