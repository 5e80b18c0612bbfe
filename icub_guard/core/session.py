"""The teaching protocol, once: when the robot asks, what a teacher may answer, how an answer is learned.

`TeachingSession` wraps a `Recognizer` and owns everything between a frame's
features and a learned label:

* ids: every decision gets one; a decision the robot asks about is a query
  (query id = decision id). Both are kept in bounded stores (oldest forgotten).
* when to ask: a rejected frame (`query_on_reject`), an accepted one whose top-2
  margin is below `query_margin`, at most `query_rate_limit` questions a second
  (0: never ask) on the session's clock — real time in a node, frame time in
  the in-process demo, so both run the same protocol.
* feedback: a plain label (answers the latest open query), or JSON
  `{"query_id": n, "label": s}` / `{"decision_id": n, "label": s}`, read with
  the bounded parser and validated; anything else is an `InputError`.
* learning a label: `Recognizer.learn`, then thresholds — a new class gets
  `threshold`, `class_thresholds` entries always win, a loaded model keeps its
  calibrated thresholds otherwise — then, with a `LabelJournal`, the label is
  appended and fsync'd before `feedback`/`confirm` return: what they return is
  durable. `snapshot` writes the model file (recording the journal position and
  compacting the journal); `restore` loads it and replays the journal's tail.
* the teachers a simulation uses: `OracleTeacher` and `MaliciousTeacher`, and
  `Tally`, the one scoring of decisions against ground truth.

No ROS and no torch here: the guard node, the teacher node, the in-process demo
and the ROS demo's watcher all call this module and only convert messages.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from . import jsonio
from .errors import InputError
from .validation import UNKNOWN, check_label

if TYPE_CHECKING:
    from .journal import LabelJournal
    from .recognizer import Decision, LearnReport, Recognizer

DECISION_SCHEMA = "icub_guard/decision@1"
QUERY_SCHEMA = "icub_guard/query@1"


class LearningDisabled(InputError):
    """Feedback arrived while learning is off: nothing was learned (and nothing consumed)."""


@dataclass
class SessionConfig:
    """The protocol's settings; `SessionConfig.defaults()` reads them from config/guard.yaml."""

    query_on_reject: bool
    query_margin: float
    query_rate_limit: float  # questions per second; 0 = never ask
    threshold: float  # of newly learned classes
    class_thresholds: dict[str, float] = field(default_factory=dict)
    learning_enabled: bool = True
    max_pending: int = 64  # open queries and recent decisions kept for feedback

    def __post_init__(self) -> None:
        if not (isinstance(self.query_margin, int | float) and 0.0 <= self.query_margin <= 10.0):
            raise InputError(f"query_margin must be in [0, 10], got {self.query_margin!r}")
        if not (isinstance(self.query_rate_limit, int | float) and 0.0 <= self.query_rate_limit <= 100.0):
            raise InputError(f"query_rate_limit must be in [0, 100] per second, got {self.query_rate_limit!r}")
        if not (isinstance(self.threshold, int | float) and math.isfinite(self.threshold)):
            raise InputError(f"threshold must be a finite number, got {self.threshold!r}")
        if isinstance(self.class_thresholds, str):
            self.class_thresholds = parse_class_thresholds(self.class_thresholds)
        if not isinstance(self.max_pending, int) or self.max_pending < 1:
            raise InputError("max_pending must be a whole number >= 1")

    @classmethod
    def defaults(cls, **overrides) -> SessionConfig:
        from ..defaults import node_defaults

        d = node_defaults("guard.yaml")
        names = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in d.items() if k in names}, **overrides})


def parse_class_thresholds(text: str) -> dict[str, float]:
    """`'{"mug": 0.2}'` → {"mug": 0.2}; empty text → {}; anything else is an `InputError`."""
    if not text.strip():
        return {}
    body = jsonio.loads(text)
    if not isinstance(body, dict):
        raise InputError('class_thresholds must be a JSON object {"class": number}')
    out = {}
    for k, v in body.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InputError(f'class_thresholds[{k!r}] must be a number, as in {{"mug": 0.2}}')
        out[check_label(k)] = float(v)
    return out


@dataclass
class Query:
    query_id: int
    reason: str  # rejected | no_classes | one_class | low_margin


@dataclass
class Step:
    """What one frame produced: its decision, the question (if asked), and the features to learn from."""

    decision_id: int
    decision: Decision
    features: np.ndarray
    query: Query | None = None


@dataclass
class Feedback:
    label: str
    query_id: int | None = None
    decision_id: int | None = None


def parse_feedback(text: str) -> Feedback:
    """A teacher's message: a plain label, or JSON with `label` and `query_id` or `decision_id`."""
    if not isinstance(text, str):
        raise InputError(f"feedback must be text, got {type(text).__name__}")
    text = text.strip()
    if not text.startswith("{"):
        return Feedback(check_label(text))
    body = jsonio.loads(text)
    label = check_label(jsonio.get(body, "label", str))
    qid = jsonio.get(body, "query_id", int, required=False)
    did = jsonio.get(body, "decision_id", int, required=False)
    if (qid is None) == (did is None):
        raise InputError('feedback JSON needs exactly one of "query_id" and "decision_id"')
    return Feedback(label, qid, did)


class TeachingSession:
    """The protocol around one recognizer; thread-safe (a node's callbacks may overlap)."""

    def __init__(self, recognizer: Recognizer, config: SessionConfig | None = None,
                 clock: Callable[[], float] = time.monotonic, journal: LabelJournal | None = None):
        self.rec = recognizer
        self.config = config or SessionConfig.defaults()
        self.clock = clock
        self.journal = journal
        self.next_id = 1
        self.pending: OrderedDict[int, np.ndarray] = OrderedDict()  # query id → features
        self.recent: OrderedDict[int, tuple[np.ndarray, str]] = OrderedDict()  # decision id → (features, label)
        self.latest_query: int | None = None
        self.last_query_time = -math.inf
        self.counts: Counter[str] = Counter()
        self._lock = threading.RLock()
        self.apply_thresholds()

    # ------------------------------------------------------------ settings
    def configure(self, **changes) -> None:
        """Change settings at runtime (validated as a whole first); `threshold` then resets every class."""
        with self._lock:
            current = {f.name: getattr(self.config, f.name) for f in fields(SessionConfig)}
            self.config = SessionConfig(**{**current, **changes})
            self.apply_thresholds(reset_all="threshold" in changes)

    def apply_thresholds(self, reset_all: bool = False, new_class: str | None = None) -> None:
        """The model's thresholds (calibrated ones survive a reload) with the settings on top.

        `threshold` goes to a newly learned class, or to every class when it is
        changed at runtime (`reset_all`); `class_thresholds` entries always win.
        """
        with self._lock:
            clf = self.rec.classifier
            if clf is None or not clf.reject:
                return
            classes = self.rec.classes
            t = np.array(clf.thresholds_, dtype=np.float64)
            if reset_all:
                t[:] = self.config.threshold
            if new_class is not None:
                t[classes.index(new_class)] = self.config.threshold
            for name, value in self.config.class_thresholds.items():
                if name in classes:
                    t[classes.index(name)] = value
            self.rec.set_thresholds(t)

    def thresholds(self) -> dict[str, float]:
        clf = self.rec.classifier
        if clf is None or not clf.reject:
            return {}
        return {c: float(t) for c, t in zip(self.rec.classes, clf.thresholds_, strict=True)}

    # -------------------------------------------------------------- frames
    def _new_id(self) -> int:
        i, self.next_id = self.next_id, self.next_id + 1
        return i

    def _remember(self, store: OrderedDict, key: int, value) -> None:
        store[key] = value
        while len(store) > self.config.max_pending:
            store.popitem(last=False)

    def observe(self, features, now: float | None = None) -> Step:
        """Classify one frame's features, record the decision, and decide whether to ask."""
        d = self.rec.classify_features(features)[0]
        feats = np.asarray(features, np.float32).reshape(1, -1)
        with self._lock:
            did = self._new_id()
            self._remember(self.recent, did, (feats, d.label))
            step = Step(did, d, feats)
            reason = self._query_reason(d)
            now = self.clock() if now is None else now
            cfg = self.config
            if reason is not None and cfg.query_rate_limit > 0 and \
                    now - self.last_query_time >= 1.0 / cfg.query_rate_limit:
                self.last_query_time = now
                self._remember(self.pending, did, feats)
                self.latest_query = did
                step.query = Query(did, reason)
                self.counts["queries"] += 1
            self.counts["rejected" if not d.accepted else "accepted"] += 1
        return step

    def _query_reason(self, d: Decision) -> str | None:
        if not d.accepted:
            return ("rejected" if d.reason == "below_threshold" else d.reason) if self.config.query_on_reject else None
        if self.config.query_margin > 0 and d.margin < self.config.query_margin:
            return "low_margin"
        return None

    def decision_payload(self, step: Step, **extra) -> dict[str, Any]:
        """The JSON body of a decision (schema icub_guard/decision@1); non-finite scores become null."""
        d = step.decision
        return jsonio.strict({
            "schema": DECISION_SCHEMA, "id": step.decision_id, "label": d.label, "accepted": d.accepted,
            "reason": d.reason, "scores": d.scores, "margin": d.margin, "thresholds": self.thresholds(),
            "query_id": step.query.query_id if step.query else None, **extra})

    def query_payload(self, step: Step, **extra) -> dict[str, Any]:
        """The JSON body of a question to the teacher (schema icub_guard/query@1)."""
        assert step.query is not None
        return jsonio.strict({
            "schema": QUERY_SCHEMA, "query_id": step.query.query_id, "decision_id": step.decision_id,
            "reason": step.query.reason, "top": step.decision.top(3), "known_classes": self.rec.classes, **extra})

    # ------------------------------------------------------------ feedback
    def feedback(self, message: str | Feedback) -> LearnReport:
        """Apply a teacher's answer; `InputError` (nothing changes) if it is malformed or refers to nothing."""
        fb = parse_feedback(message) if isinstance(message, str) else message
        with self._lock:
            if fb.query_id is not None:
                key, store = fb.query_id, self.pending
            elif fb.decision_id is not None:
                key, store = fb.decision_id, self.recent
            else:
                if self.latest_query is None or self.latest_query not in self.pending:
                    raise InputError("plain-label feedback but no open query")
                key, store = self.latest_query, self.pending
            if key not in store:
                raise InputError(f"unknown or expired id {key}")
            if not self.config.learning_enabled:
                self.counts["feedback_ignored_learning_off"] += 1
                raise LearningDisabled(f"learning is off: feedback {fb.label!r} ignored")
            if store is self.pending:
                feats = store.pop(key)
                if key == self.latest_query:
                    self.latest_query = None
            else:
                feats = store[key][0]
            return self._learn(feats, fb.label)

    def confirm(self) -> LearnReport:
        """The teacher says the last decision was right: learn it."""
        with self._lock:
            last = next(reversed(self.recent), None)
            if last is None or self.recent[last][1] == UNKNOWN:
                raise InputError("no accepted prediction to confirm")
            if not self.config.learning_enabled:
                raise LearningDisabled("learning is disabled")
            feats, label = self.recent[last]
            return self._learn(feats, label)

    def _learn(self, feats: np.ndarray, label: str, source: str = "feedback", journal: bool = True) -> LearnReport:
        report = self.rec.learn(feats, label)
        self.apply_thresholds(new_class=report.label if report.new_class else None)
        if journal:  # a live label (a replayed one is counted as `replayed`)
            if self.journal is not None:
                self.journal.append(feats, report.label, source)  # on disk before anyone is told
            self.counts["learned"] += 1
        return report

    def reset(self) -> None:
        """Forget everything learned and every open question (and the journal's records)."""
        with self._lock:
            self.rec.reset()
            self.pending.clear()
            self.recent.clear()
            self.latest_query = None
            if self.journal is not None:
                self.journal.reset()

    # ---------------------------------------------------------- durability
    def snapshot(self, path, key=None) -> int:
        """Write the model file with the journal position it holds, then compact the journal; returns it."""
        with self._lock:  # state and position taken together: no label between them
            meta, arrays = self.rec.snapshot()
            seq = self.journal.last_seq if self.journal is not None else 0
        from .persistence import save

        save(path, {**meta, "journal_seq": seq}, arrays, key)
        if self.journal is not None:
            self.journal.compact(seq)
        return seq

    def restore(self, path, key=None) -> int:
        """Start-up: load the model file (if any), then replay the journal's later labels; returns how many.

        A model file that cannot be read raises `ModelFileError` (the caller refuses
        to start and never overwrites it); a torn last journal record is dropped.
        """
        from pathlib import Path

        from .journal import remove_stale_temp_files

        remove_stale_temp_files(path)
        with self._lock:
            seq = 0
            if Path(path).exists():
                seq = int(self.rec.load_state(path, key).get("journal_seq", 0))
            entries = self.journal.open() if self.journal is not None else []
            tail = [e for e in entries if e.seq > seq]
            for e in tail:
                self._learn(e.features, e.label, e.source, journal=False)
            self.counts["replayed"] += len(tail)
            self.apply_thresholds()
            return len(tail)


# --------------------------------------------------------------- teachers
class OracleTeacher:
    """Answers every question with the truth, and corrects accepted wrong labels (`correct_mistakes`)."""

    def __init__(self, correct_mistakes: bool = True):
        self.correct_mistakes = correct_mistakes
        self.counts: Counter[str] = Counter()

    def label(self, truth: str) -> str:
        return truth

    def answer(self, truth: str | None) -> str | None:
        """The answer to a question about a frame whose true label is `truth` (None: not known, no answer)."""
        if truth is None:
            return None
        self.counts["answers"] += 1
        return self.label(truth)

    def review(self, accepted: bool, label: str, truth: str | None, asked: bool = False) -> str | None:
        """A correction for a decision the teacher watched, or None.

        None when it was right, rejected, not known, or the robot asked about it
        (`asked`: the answer to the question is the correction; one label per frame).
        """
        if not self.correct_mistakes or asked or not accepted or truth is None or label == truth:
            return None
        self.counts["corrections"] += 1
        return self.label(truth)


class MaliciousTeacher(OracleTeacher):
    """An oracle that gives a wrong label for `flip_fraction` of its answers (seeded): poisoning."""

    def __init__(self, flip_fraction: float = 0.3, seed: int = 0, correct_mistakes: bool = True):
        super().__init__(correct_mistakes)
        if not 0.0 <= flip_fraction <= 1.0:
            raise InputError(f"flip_fraction must be in [0, 1], got {flip_fraction!r}")
        self.flip_fraction = flip_fraction
        self.rng = np.random.default_rng(seed)
        self.labels: set[str] = set()

    def observe_label(self, truth: str) -> None:
        """The liar knows which labels exist (from the ground truth it sees)."""
        self.labels.add(truth)

    def label(self, truth: str) -> str:
        self.labels.add(truth)
        others = sorted(self.labels - {truth})
        if others and self.rng.random() < self.flip_fraction:
            self.counts["lies"] += 1
            return str(self.rng.choice(others))
        return truth


def make_teacher(mode: str, correct_mistakes: bool = True, flip_fraction: float = 0.3,
                 seed: int = 0) -> OracleTeacher:
    if mode == "oracle":
        return OracleTeacher(correct_mistakes)
    if mode == "malicious":
        return MaliciousTeacher(flip_fraction, seed, correct_mistakes)
    raise InputError(f"unknown teacher mode {mode!r}; choose oracle or malicious")


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
