"""What the simulated camera knows and how decisions are scored against it (one rule for every demo)."""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..core import jsonio
from ..core.validation import check_label


class GroundTruth:
    """What the camera says was in view, by frame stamp (bounded: the oldest is forgotten)."""

    def __init__(self, capacity: int = 500):
        self.capacity = capacity
        self._by_stamp: OrderedDict[tuple[int, int], str] = OrderedDict()
        self.labels: set[str] = set()

    @staticmethod
    def key(stamp: Any) -> tuple[int, int]:
        """A stamp {"sec": s, "nanosec": n} as a key; anything else is an `InputError`."""
        sec, nsec = jsonio.get(stamp, "sec", int), jsonio.get(stamp, "nanosec", int)
        return sec, nsec

    def add(self, stamp: Any, label: str) -> None:
        self._by_stamp[self.key(stamp)] = check_label(label)
        self.labels.add(label)
        while len(self._by_stamp) > self.capacity:
            self._by_stamp.popitem(last=False)

    def get(self, stamp: Any) -> str | None:
        return self._by_stamp.get(self.key(stamp))


@dataclass
class Tally:
    """Decisions scored against the truth — one rule for the in-process and the ROS demo.

    A clean frame is correct (accepted, right label), wrong (accepted, wrong
    label) or rejected. An attacked frame is correct_attacked, fooled (accepted,
    wrong label) or caught (rejected); `fooled_without_reject` counts the attacked
    frames whose top score names a wrong class, what a classifier without the
    reject option would have said.
    """

    counts: Counter = field(default_factory=Counter)

    def add(self, accepted: bool, label: str, truth: str, attacked: bool = False,
            top: str | None = None) -> str:
        c = self.counts
        c["frames"] += 1
        if attacked:
            c["attacked"] += 1
            if top is not None and top != truth:
                c["fooled_without_reject"] += 1
            outcome = "caught" if not accepted else "correct_attacked" if label == truth else "fooled"
        else:
            outcome = "rejected" if not accepted else "correct" if label == truth else "wrong"
        c[outcome] += 1
        return outcome

    def rate(self, *keys: str, of: str = "frames") -> float:
        return sum(self.counts[k] for k in keys) / max(self.counts[of], 1)

    @property
    def accuracy(self) -> float:
        return self.rate("correct", "correct_attacked")

    @property
    def reject_rate(self) -> float:
        return self.rate("rejected", "caught")
