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

import logging
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from ..defaults import node_defaults
from . import jsonio
from .errors import InputError, ModelFileError
from .rules import Reason
from .screening import LabelScreen, ScreeningConfig, Verdict
from .validation import DEFAULT_TEACHER, UNKNOWN, check_label, check_settings, check_teacher, setting

if TYPE_CHECKING:
    from .journal import Entry, LabelJournal
    from .recognizer import Decision, LearnReport, Recognizer

log = logging.getLogger(__name__)

DECISION_SCHEMA = "icub_guard/decision@1"
QUERY_SCHEMA = "icub_guard/query@1"


MIN_QUERY_RATE = 1e-3  # questions per second below which a rate means "never" in all but name


class LearningDisabled(InputError):
    """Feedback arrived while learning is off: nothing was learned (and nothing consumed)."""


@dataclass
class SessionConfig:
    """The protocol's settings; `SessionConfig.defaults()` reads them from config/guard.yaml. Each field's
    description and range are the guard parameter's too."""

    query_on_reject: bool = setting("query_on_reject", "ask the teacher when a frame is rejected")
    query_margin: float = setting("query_margin", "also ask when the top-2 score margin is below this", 0.0, 10.0)
    query_rate_limit: float = setting("query_rate_limit", "max teacher questions per second (0 = never ask)",
                                      0.0, 100.0)
    threshold: float = setting("threshold", "threshold of new classes; setting it at runtime resets all classes",
                               -10.0, 10.0)
    class_thresholds: dict[str, float] = field(default_factory=lambda: parse_class_thresholds(
        node_defaults("guard.yaml")["class_thresholds"]))
    learning_enabled: bool = setting("learning_enabled", "learn from teacher feedback")
    plain_label_window: float = setting("plain_label_window", "seconds a plain label (no id) reaches back: the "
                                        "newest open question asked within it, else the latest decision", 0.1, 600.0)
    max_pending: int = 64  # open queries and recent decisions kept for feedback

    def __post_init__(self) -> None:
        check_settings(self)
        if 0 < self.query_rate_limit < MIN_QUERY_RATE:
            raise InputError(f"query_rate_limit must be 0 (never ask) or at least {MIN_QUERY_RATE:g} per second "
                             f"(one question in {1 / MIN_QUERY_RATE / 60:.0f} minutes), got {self.query_rate_limit!r}")
        if isinstance(self.class_thresholds, str):
            self.class_thresholds = parse_class_thresholds(self.class_thresholds)
        if not isinstance(self.max_pending, int) or self.max_pending < 1:
            raise InputError("max_pending must be a whole number >= 1")

    @classmethod
    def defaults(cls, **overrides) -> SessionConfig:
        """The guard's defaults (config/guard.yaml), with overrides by field name."""
        return cls(**overrides)


def parse_class_thresholds(text: str) -> dict[str, float]:
    """`'{"mug": 0.2}'` → {"mug": 0.2}; empty text → {}; anything else is an `InputError`."""
    if not text.strip():
        return {}
    body = jsonio.loads(text)
    if not isinstance(body, dict):
        raise InputError('class_thresholds must be a JSON object {"class": number}')
    out = {}
    lo, hi = next(f.metadata["range"] for f in fields(SessionConfig) if f.name == "threshold")
    for k, v in body.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InputError(f'class_thresholds[{k!r}] must be a number, as in {{"mug": 0.2}}')
        if not lo <= v <= hi:  # the range of `threshold`: a score never reaches 1e300
            raise InputError(f"class_thresholds[{k!r}] must be in [{lo:g}, {hi:g}], got {v!r}")
        out[check_label(k)] = float(v)
    return out


@dataclass
class Query:
    query_id: int
    reason: Reason  # the rejected decision's own reason (below_threshold, no_classes, …), low_margin or confirm
    decision_id: int | None = None
    label: str | None = None  # confirm: the label held in quarantine
    teacher: str | None = None  # confirm: who gave it
    ask: str | None = None  # confirm: who should answer (another teacher when there is one; None: anyone)


@dataclass
class Step:
    """What one frame produced: its decision, the question (if asked), and the features to learn from."""

    decision_id: int
    decision: Decision
    features: np.ndarray
    query: Query | None = None


@dataclass
class Seen:
    """A recent decision, kept for feedback about it: its features, the label decided, the crop (for a question's
    image and adversarial augmentation; None when only features were seen) and where the frame came from
    (`source`: opaque to the session; a node keeps the image's header there)."""

    features: np.ndarray
    label: str
    crop: np.ndarray | None = None
    source: Any = None
    when: float = -math.inf  # the session clock's time of the frame (a plain label's window)


@dataclass
class Feedback:
    label: str
    query_id: int | None = None
    decision_id: int | None = None
    teacher: str = DEFAULT_TEACHER


@dataclass
class Open:
    """An open question: the frame's features; for a `confirm` question, the answers so far and the verdict."""

    features: np.ndarray
    decision_id: int
    answers: list[tuple[str, str]] = field(default_factory=list)  # (label, teacher), first the label held
    verdict: Verdict | None = None
    asked: float = -math.inf  # the session clock's time of the question (a plain label's window)

    @property
    def teacher(self) -> str | None:
        return self.answers[0][1] if self.answers else None


@dataclass
class Provenance:
    """Who taught an example, when, for which decision, and how (feedback | confirm | confirmed | adversarial)."""

    teacher: str
    time: float
    decision: int | None
    source: str


@dataclass
class Outcome:
    """What became of one label: learned, quarantined (with the `confirm` question to ask) or refused."""

    action: str  # learned | quarantined | refused
    label: str
    teacher: str
    verdict: Verdict
    report: LearnReport | None = None
    query: Query | None = None
    decision_id: int | None = None
    resolved: str | None = None  # an answer to a confirm question: confirmed | contradicted | no_agreement
    augmented: bool = False  # its crop, attacked, was learned too (`adv_augment` among the guard's defences)
    problem: str | None = None  # what went wrong after the label itself was stored (e.g. the augmentation)
    target: str | None = None  # what the label answered: query | decision | newest_query | latest_decision
    answered: int | None = None  # the open question it answered (and closed)

    def describe(self) -> str:
        """What became of the label and why, and (for a plain label) what it was taken to answer."""
        what = {"newest_query": " as the answer to the newest open question",
                "latest_decision": " as the name of the object in view (the latest decision)"}
        return self._describe() + what.get(self.target or "", "")

    def _describe(self) -> str:
        ev = ", ".join(f"{k} {v:.2f}" for k, v in self.verdict.evidence.items() if v is not None)
        held = f" (held label {self.query.label!r} asked back as query {self.query.query_id})" if self.query else ""
        return (f"label {self.label!r} from teacher {self.teacher!r} {self.action}"
                f"{' after ' + self.resolved if self.resolved else ''}: suspicion {self.verdict.suspicion:.2f}, "
                f"{self.verdict.reason} ({ev}){held}")


def parse_feedback(text: str) -> Feedback:
    """A teacher's message: a plain label (teacher "default"), or JSON with `label`, `query_id` or
    `decision_id`, and optionally `teacher` (who answers: a short printable name)."""
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
    teacher = body.get("teacher", DEFAULT_TEACHER)
    return Feedback(label, qid, did, check_teacher(teacher))


class TeachingSession:
    """The protocol around one recognizer; thread-safe (a node's callbacks may overlap)."""

    def __init__(self, recognizer: Recognizer, config: SessionConfig | None = None,
                 clock: Callable[[], float] = time.monotonic, journal: LabelJournal | None = None,
                 screening: ScreeningConfig | None = None):
        self.rec = recognizer
        self.config = config or SessionConfig.defaults()
        self.clock = clock
        self.journal = journal
        self.screen = LabelScreen(screening or ScreeningConfig.defaults())
        self.next_id = 1
        self.pending: OrderedDict[int, Open] = OrderedDict()  # query id → what was asked about
        self.recent: OrderedDict[int, Seen] = OrderedDict()  # decision id → what was seen (features, label, crop)
        self.provenance: dict[int, Provenance] = {}  # example id → who taught it
        self.latest_query: int | None = None
        self.last_query_time = -math.inf
        self.counts: Counter[str] = Counter()
        self._audit_rng = np.random.default_rng(0)  # which labels a random audit asks back (seeded: reproducible)
        self._lock = threading.RLock()
        self.apply_thresholds()

    # ------------------------------------------------------------ settings
    def configure(self, **changes) -> None:
        """Change settings at runtime (validated as a whole first); `threshold` then resets every class."""
        with self._lock:
            current = {f.name: getattr(self.config, f.name) for f in fields(SessionConfig)}
            self.config = SessionConfig(**{**current, **changes})
            self.apply_thresholds(reset_all="threshold" in changes)

    def configure_screening(self, **changes) -> None:
        """Change the screening's settings at runtime (validated as a whole first)."""
        with self._lock:
            current = {f.name: getattr(self.screen.config, f.name) for f in fields(ScreeningConfig)}
            self.screen.config = ScreeningConfig(**{**current, **changes})

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

    def observe(self, features, now: float | None = None, decision: Decision | None = None,
                crop: np.ndarray | None = None, source: Any = None) -> Step:
        """Classify one frame's features, record the decision, and decide whether to ask.

        `decision`: the frame's decision when it was already made (the guard's defences review the
        classifier's decision on the crop; `defences.online`); the features are what a label learns.
        `crop`, `source`: kept with the decision (the one store of recent decisions) for whoever asks later.
        """
        d = self.rec.classify_features(features)[0] if decision is None else decision
        feats = np.asarray(features, np.float32).reshape(1, -1)
        with self._lock:
            did = self._new_id()
            now = self.clock() if now is None else now
            self._remember(self.recent, did, Seen(feats, d.label, crop, source, now))
            step = Step(did, d, feats)
            reason = self._query_reason(d)
            cfg = self.config
            if reason is not None and cfg.query_rate_limit > 0 and \
                    now - self.last_query_time >= 1.0 / cfg.query_rate_limit:
                self.last_query_time = now
                self._remember(self.pending, did, Open(feats, did, asked=now))
                self.latest_query = did
                step.query = Query(did, reason, did)
                self.counts["queries"] += 1
            self.counts["rejected" if not d.accepted else "accepted"] += 1
        return step

    def _query_reason(self, d: Decision) -> Reason | None:
        """Why to ask about a frame (None: don't): a rejection carries its decision's reason unchanged."""
        if not d.accepted:
            return d.reason if self.config.query_on_reject else None
        if self.config.query_margin > 0 and d.margin < self.config.query_margin:
            return Reason.LOW_MARGIN
        return None

    def decision_payload(self, step: Step, **extra) -> dict[str, Any]:
        """The JSON body of a decision (schema icub_guard/decision@1); non-finite scores become null."""
        d = step.decision
        return jsonio.strict({
            "schema": DECISION_SCHEMA, "id": step.decision_id, "label": d.label, "accepted": d.accepted,
            "reason": d.reason, "scores": d.scores, "margin": d.margin, "thresholds": self.thresholds(),
            "stages": d.stages, "certified_radius": d.radius, "notes": list(d.notes),
            "query_id": step.query.query_id if step.query else None, **extra})

    def query_payload(self, item: Step | Query, **extra) -> dict[str, Any]:
        """The JSON body of a question to the teacher (schema icub_guard/query@1).

        For a frame's question pass its `Step`; for a `confirm` question (a label
        held in quarantine) its `Query`: the payload then names the label held,
        who gave it and whom the robot asks (`ask`, null: anyone).
        """
        if isinstance(item, Step):
            assert item.query is not None
            q, top = item.query, item.decision.top(3)
        else:
            q = item
            top = []
            held = self.pending.get(q.query_id)
            if held is not None and self.rec.classifier is not None:
                top = self.rec.classify_features(held.features)[0].top(3)
        body = {"schema": QUERY_SCHEMA, "query_id": q.query_id, "decision_id": q.decision_id,
                "reason": q.reason, "top": top, "known_classes": self.rec.classes}
        if q.reason == Reason.CONFIRM:
            body.update(label=q.label, teacher=q.teacher, ask=q.ask)
        return jsonio.strict({**body, **extra})

    # ------------------------------------------------------------ feedback
    def feedback(self, message: str | Feedback) -> Outcome:
        """Screen and apply a teacher's answer; `InputError` (nothing changes) if it is malformed or refers to
        nothing. The `Outcome` says whether it was learned, quarantined (with a question) or refused."""
        fb = parse_feedback(message) if isinstance(message, str) else message
        with self._lock:
            if fb.query_id is not None:
                key, store, target = fb.query_id, self.pending, "query"
            elif fb.decision_id is not None:
                key, store, target = fb.decision_id, self.recent, "decision"
            else:
                key, store, target = self._plain_target()
            out = self._feedback(fb, key, store)
            out.target, out.answered = target, key if store is self.pending else None
            return out

    def _plain_target(self) -> tuple[int, OrderedDict, str]:
        """What a plain label (no id) most plausibly answers: a person is slower than the robot, so the newest
        open question if it was asked within `plain_label_window` seconds, else the latest decision (the object
        in view) if that recent; else nothing (`InputError`)."""
        window, now = self.config.plain_label_window, self.clock()
        if self.pending:
            qid = next(reversed(self.pending))
            if now - self.pending[qid].asked <= window:
                return qid, self.pending, "newest_query"
        if self.recent:
            did = next(reversed(self.recent))
            if now - self.recent[did].when <= window:
                return did, self.recent, "latest_decision"
        raise InputError(f"a plain label but no open question and no decision in the last {window:g} s")

    def _feedback(self, fb: Feedback, key: int, store: OrderedDict) -> Outcome:
        """Apply a label to an open question (`pending`) or a recent decision (`recent`); under the lock."""
        if key not in store:
            raise InputError(f"unknown or expired id {key}")
        if not self.config.learning_enabled:
            self.counts["feedback_ignored_learning_off"] += 1
            raise LearningDisabled(f"learning is off: feedback {fb.label!r} ignored")
        if store is self.pending:
            item = store.pop(key)
            if key == self.latest_query:
                self.latest_query = None
            if item.answers:
                return self._answer_confirm(key, item, fb)
            return self._screen(item.features, fb.label, fb.teacher, item.decision_id, "feedback")
        return self._screen(store[key].features, fb.label, fb.teacher, key, "feedback")

    def confirm(self, teacher: str = DEFAULT_TEACHER) -> Outcome:
        """The teacher says the last decision was right: learn it (screened like any label)."""
        with self._lock:
            last = next(reversed(self.recent), None)
            if last is None or self.recent[last].label == UNKNOWN:
                raise InputError("no accepted prediction to confirm")
            if not self.config.learning_enabled:
                raise LearningDisabled("learning is disabled")
            seen = self.recent[last]
            return self._screen(seen.features, seen.label, check_teacher(teacher), last, "confirm")

    def _evidence(self, feats: np.ndarray, label: str) -> dict[str, float | None]:
        classes = self.rec.classes
        _, y, ids = self.rec.examples(copy=False)  # views: every update holds this session's lock too
        n_label = int(np.sum(y == classes.index(label))) if label in classes else 0
        if label not in classes or len(ids) < self.screen.config.min_examples:
            return {"knn": None, "model": None}
        neighbours = self.rec.nearest(feats, self.screen.k_for(n_label))
        scores = self.rec.classify_features(feats)[0].scores if len(classes) >= 2 else {}
        return self.screen.evidence(neighbours, len(ids), n_label, classes, label, scores)

    def _share_exceeded(self, teacher: str, label: str) -> bool:
        """Containment: would this label make `teacher` hold more than its share of the class?"""
        cfg = self.screen.config
        _, y, ids = self.rec.examples(copy=False)
        taught = {p.teacher for i, p in self.provenance.items()}
        if len(taught | {teacher}) < 2 or label not in self.rec.classes:
            return False
        mine = np.array([self.provenance.get(int(i), _ANON).teacher == teacher for i in ids], bool)
        in_class = y == self.rec.classes.index(label)
        n = int(in_class.sum()) + 1
        return n >= cfg.share_min_examples and (int((mine & in_class).sum()) + 1) / n > cfg.max_teacher_share

    def _screen(self, feats: np.ndarray, label: str, teacher: str, decision_id: int | None,
                source: str) -> Outcome:
        label = check_label(label)
        cfg = self.screen.config
        if cfg.enabled:
            ev = self._evidence(feats, label)
            share = self._share_exceeded(teacher, label)
            audit = cfg.audit_rate > 0 and self._audit_rng.random() < cfg.audit_rate
        else:  # nothing to weigh: the label is learned (and still attributed)
            ev, share, audit = {"knn": None, "model": None}, False, False
        verdict = self.screen.assess(teacher, ev, share, audit)
        record = self.screen.teacher(teacher)
        if verdict.action == "learn":
            report = self._learn(feats, label, source, teacher, decision_id)
            record.counts["learned"] += 1
            out = Outcome("learned", label, teacher, verdict, report, decision_id=decision_id)
        elif verdict.action == "quarantine":
            out = self._ask_back(Open(feats, decision_id or 0, [(label, teacher)], verdict))
            record.counts["quarantined"] += 1
            self.counts["quarantined"] += 1
        else:
            self.counts["refused"] += 1
            record.counts["refused"] += 1
            out = Outcome("refused", label, teacher, verdict, decision_id=decision_id)
        log.debug("%s", out.describe())
        return out

    def _ask_back(self, item: Open) -> Outcome:
        """Hold a label (not learned) and ask a `confirm` question about it."""
        label, teacher = item.answers[-1]
        answered = {t for _, t in item.answers}
        qid = self._new_id()
        item.asked = self.clock()
        query = Query(qid, Reason.CONFIRM, item.decision_id, item.answers[0][0], item.answers[0][1],
                      self._someone_else(answered))
        self._remember(self.pending, qid, item)
        self.latest_query = qid
        self.counts["queries"] += 1
        assert item.verdict is not None
        return Outcome("quarantined", label, teacher, item.verdict, query=query, decision_id=item.decision_id)

    def _someone_else(self, answered: set[str]) -> str | None:
        """The most trusted teacher that has taught something and has not answered yet, or None (anyone)."""
        others = [(rec.trust, name) for name, rec in self.screen.teachers.items()
                  if name not in answered and rec.counts["learned"] > 0]
        return max(others)[1] if others else None

    def _answer_confirm(self, qid: int, item: Open, fb: Feedback) -> Outcome:
        """An answer to a confirm question: two agreeing answers teach that label; else ask again, or refuse."""
        assert item.verdict is not None
        answers = [*item.answers, (fb.label, fb.teacher)]
        votes = Counter(label for label, _ in answers)
        agreed = next((label for label, n in votes.most_common(1) if n >= 2), None)
        if agreed is not None:
            self.screen.settle(answers, agreed)
            teacher = next(t for label, t in answers if label == agreed)  # the first to give it taught it
            report = self._learn(item.features, agreed, "confirmed", teacher, item.decision_id)
            self.screen.teacher(teacher).counts["learned"] += 1
            self.counts["confirmed"] += 1
            out = Outcome("learned", agreed, teacher, item.verdict, report, decision_id=item.decision_id,
                          resolved="confirmed")
        elif len(answers) < self.screen.config.max_answers:
            out = self._ask_back(Open(item.features, item.decision_id, answers, item.verdict))
            out.resolved = "contradicted"
            self.counts["contradicted"] += 1
        else:
            self.screen.settle(answers, None)
            self.counts["refused"] += 1
            for _, t in answers:
                self.screen.teacher(t).counts["refused"] += 1
            out = Outcome("refused", fb.label, fb.teacher, item.verdict, decision_id=item.decision_id,
                          resolved="no_agreement")
        log.debug("%s", out.describe())
        return out

    def learn_extra(self, feats, label: str, teacher: str, decision_id: int | None, source: str) -> LearnReport:
        """Learn an example derived from an accepted label (e.g. its crop attacked: `defences.augment`),
        attributed to the same teacher and decision, journaled; not screened again."""
        with self._lock:
            return self._learn(np.asarray(feats, np.float32).reshape(1, -1), check_label(label), source,
                               check_teacher(teacher), decision_id)

    def _learn(self, feats: np.ndarray, label: str, source: str = "feedback", teacher: str = DEFAULT_TEACHER,
               decision_id: int | None = None, journal: bool = True, when: float | None = None) -> LearnReport:
        """Learn one label. A live one (`journal`) goes to the journal first: if it cannot be stored (`OSError`,
        e.g. a full disk) nothing is learned, so the model in memory never holds a label that was not
        acknowledged; if learning then fails, the record is taken back."""
        seq = None
        if journal and self.journal is not None:
            seq = self.journal.append(feats, label, source, teacher, decision_id)
        try:
            report = self.rec.learn(feats, label)
        except BaseException:
            if seq is not None:
                self.journal.retract(seq)
            raise
        self.apply_thresholds(new_class=report.label if report.new_class else None)
        when = time.time() if when is None else when
        for i in report.ids:
            self.provenance[i] = Provenance(teacher, when, decision_id, source)
        if len(self.provenance) > 2 * self.rec.n_examples + 64:  # examples the budget dropped
            held = set(self.rec.example_ids().tolist())
            self.provenance = {i: p for i, p in self.provenance.items() if i in held}
        if journal:  # a live label, stored durably (a replayed one is counted as `replayed`)
            self.counts["learned"] += 1
        return report

    # -------------------------------------------------------------- undo
    def teachers(self) -> dict[str, dict[str, Any]]:
        """Per teacher: trust, its examples held now, and its counts (learned, quarantined, refused, …)."""
        with self._lock:
            held = Counter(self.provenance[int(i)].teacher for i in self.rec.example_ids()
                           if int(i) in self.provenance)
            return {name: {"trust": rec.trust, "examples": held[name], **rec.counts}
                    for name, rec in sorted(self.screen.teachers.items())}

    def forget_teacher(self, teacher: str) -> list[int]:
        """Remove every example `teacher` taught, re-solve, and distrust it; returns the example ids removed.

        The classifier then equals a refit without those examples (same γ, within
        the solver's tolerance). Labels it has in quarantine are dropped. An
        unknown teacher is an `InputError` and changes nothing.
        """
        name = check_teacher(teacher)
        with self._lock:
            if name not in self.screen.teachers and all(p.teacher != name for p in self.provenance.values()):
                known = sorted(set(self.screen.teachers) | {p.teacher for p in self.provenance.values()})
                raise InputError(f"unknown teacher {name!r}; known: {', '.join(known) or 'none'}")
            ids = [i for i, p in self.provenance.items() if p.teacher == name]
            removed = self._forget(ids, name)
            for qid in [q for q, o in self.pending.items() if o.teacher == name]:
                del self.pending[qid]
            self.screen.distrust(name)
            self.screen.teacher(name).counts["forgotten"] += len(removed)
            log.info("forgot teacher %r: %d examples removed", name, len(removed))
            return removed

    def forget_decision(self, decision_id: int) -> list[int]:
        """Remove the example(s) learned from one decision's label (e.g. a label found to be wrong)."""
        if isinstance(decision_id, bool) or not isinstance(decision_id, int):
            raise InputError(f"decision id must be a whole number, got {decision_id!r}")
        with self._lock:
            ids = [i for i, p in self.provenance.items() if p.decision == decision_id]
            if not ids:
                raise InputError(f"no learned example comes from decision {decision_id}")
            teacher = self.provenance[ids[0]].teacher
            return self._forget(ids, teacher)

    def _forget(self, ids: list[int], teacher: str, journal: bool = True) -> list[int]:
        held = set(self.rec.example_ids().tolist())
        ids = [i for i in ids if i in held]
        if ids and journal and self.journal is not None:  # on disk first, as a label
            self.journal.append(np.zeros((1, 0), np.float32), "", "forget", teacher, ids=ids)
        removed = self.rec.forget(ids) if ids else []
        for i in removed:
            self.provenance.pop(i, None)
        self.apply_thresholds()
        if removed and journal:
            self.counts["forgotten"] += len(removed)
        return removed

    def reset(self) -> None:
        """Forget everything learned, every open question and every teacher (and the journal's records)."""
        with self._lock:
            if self.journal is not None:  # durable first: a restart must not bring the model back
                self.journal.reset()
            self._forget_all()

    def _forget_all(self) -> None:
        self.rec.reset()
        self.pending.clear()
        self.recent.clear()
        self.provenance.clear()
        self.screen.teachers.clear()
        self.latest_query = None

    # ---------------------------------------------------------- durability
    def snapshot(self, path, key=None) -> int:
        """Write the model file with the journal position it holds, then compact the journal; returns it.

        The file also holds who taught each example (`provenance_*` arrays), the
        teachers' trust records and the next decision id.
        """
        with self._lock:  # state and position taken together: no label between them
            meta, arrays = self.rec.snapshot()
            seq = self.journal.last_seq if self.journal is not None else 0
            ids = sorted(i for i in self.rec.example_ids().tolist() if i in self.provenance)
            prov = [self.provenance[i] for i in ids]
            arrays = {**arrays, "provenance_id": np.array(ids, np.int64),
                      "provenance_teacher": np.array([p.teacher for p in prov], dtype=str),
                      "provenance_source": np.array([p.source for p in prov], dtype=str),
                      "provenance_time": np.array([p.time for p in prov], np.float64),
                      "provenance_decision": np.array([-1 if p.decision is None else p.decision for p in prov],
                                                      np.int64)}
            meta = {**meta, "journal_seq": seq, "next_decision_id": self.next_id, "teachers": self.screen.state()}
        from .persistence import save

        save(path, meta, arrays, key)
        if self.journal is not None:
            self.journal.compact(seq)
        return seq

    def restore(self, path, key=None, recover_journal: bool = False) -> int:
        """Start-up: load the model file (if any), then replay the journal's later records; returns how many.

        A model file that cannot be read raises `ModelFileError`, a damaged journal (or one that continues
        where no snapshot holds the records before it) `JournalDamaged`: the caller refuses to start and
        nothing is overwritten. A torn last journal record (an interrupted append) is dropped.
        `recover_journal`: start anyway from every journal record that verifies (see `LabelJournal.open`).
        Examples of a file written before teachers were recorded belong to "default".
        """
        from pathlib import Path

        from .journal import remove_stale_temp_files
        from .persistence import load

        remove_stale_temp_files(path)
        with self._lock:
            seq = 0
            if Path(path).exists():
                saved = load(path, key)
                meta = self.rec.apply_saved(saved, path)
                seq = int(meta.get("journal_seq", 0))
                self._restore_provenance(saved.arrays, meta, path)
            entries = self.journal.open(seq, recover_journal) if self.journal is not None else []
            tail = [e for e in entries if e.seq > seq]
            for e in tail:
                self._replay(e)
            replayed = sum(e.source != "reset" for e in tail)
            self.counts["replayed"] += replayed
            self.apply_thresholds()
            return replayed

    def _restore_provenance(self, arrays: dict[str, np.ndarray], meta: dict, path) -> None:
        try:
            self.provenance = {int(i): Provenance(str(t), float(w), None if d < 0 else int(d), str(s))
                               for i, t, s, w, d in zip(arrays.get("provenance_id", []),
                                                        arrays.get("provenance_teacher", []),
                                                        arrays.get("provenance_source", []),
                                                        arrays.get("provenance_time", []),
                                                        arrays.get("provenance_decision", []), strict=True)}
            self.screen.load_state(meta.get("teachers", {}))
            self.next_id = max(self.next_id, int(meta.get("next_decision_id", 1)))
        except (ValueError, TypeError, InputError) as exc:
            raise ModelFileError(f"model file {path} has unreadable teacher records: {exc}") from exc
        for i in self.rec.example_ids().tolist():
            self.provenance.setdefault(i, Provenance(DEFAULT_TEACHER, 0.0, None, "feedback"))

    def _replay(self, e: Entry) -> None:
        if e.source == "reset":
            self._forget_all()
            return
        if e.source == "forget":
            self._forget(e.ids or [], e.teacher, journal=False)
            return
        self._learn(e.features, e.label, e.source, e.teacher, e.decision, journal=False, when=e.time)
        if e.decision is not None:
            self.next_id = max(self.next_id, e.decision + 1)


_ANON = Provenance(DEFAULT_TEACHER, 0.0, None, "feedback")
