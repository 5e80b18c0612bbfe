"""The teacher page's state and protocol, with neither a web server nor ROS in it.

`TeacherHub` holds what the page shows (the newest frame and decision, the robot's
open questions with their crops, the last labels, the guard's status) and fans it
out to connected pages; `parse_command` turns what a page sends into a checked
command, with the guard's own label and teacher rules (`core.validation`).
Everything here runs in the web server's event loop: no locks.

Wire format (WebSocket): JSON text both ways; live frames go to the page as binary
JPEG messages, one at a time — the next only after the page acknowledged the last
(`{"type": "ack"}`), so a slow browser gets fewer frames, never a backlog.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core import jsonio
from ..core.errors import InputError
from ..core.session import SessionConfig
from ..core.validation import check_label, check_teacher

PROTOCOL = "icub_guard/teacher-page@1"


@dataclass(frozen=True)
class HubLimits:
    """What the page keeps: bounded, so a page left open for hours holds no more than this."""

    questions: int = 12  # open questions shown (the oldest is dropped first)
    question_ttl_s: float = 120.0  # a question unanswered this long is dropped (the guard forgets it too)
    history: int = 20  # last labels and decisions listed
    crops: int = 64  # question crops held until their question arrives (matched by frame stamp)
    queue: int = 256  # events waiting for one slow page; beyond this the page is re-sent a snapshot
    decisions_kept: int = SessionConfig.max_pending  # the guard takes corrections of its last this many decisions

    def __post_init__(self) -> None:
        for name in ("questions", "history", "crops", "queue"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InputError(f"{name} must be a whole number >= 1")
        if not self.question_ttl_s > 0:
            raise InputError("question_ttl_s must be > 0")


# --------------------------------------------------------------- commands from a page
@dataclass(frozen=True)
class Answer:
    """A label for one of the robot's questions (`query_id`) or a correction of a decision (`decision_id`;
    with `forget`, the label learned from that decision is forgotten first: a taught label that was wrong)."""

    label: str
    teacher: str
    query_id: int | None = None
    decision_id: int | None = None
    forget: bool = False

    def feedback(self) -> dict:
        """The label as the core's feedback record (sent to the guard's `teach` service)."""
        ref = {"query_id": self.query_id} if self.query_id is not None else {"decision_id": self.decision_id}
        return {**ref, "label": self.label, "teacher": self.teacher}


@dataclass(frozen=True)
class SetLearning:
    on: bool


@dataclass(frozen=True)
class Save:
    pass


@dataclass(frozen=True)
class Ack:
    """The page has shown the last frame: it may have the next."""


Command = Answer | SetLearning | Save | Ack
MAX_ID = 2**53  # ids a browser's numbers hold exactly


def _id(body: dict, key: str) -> int:
    v = jsonio.get(body, key, int)
    if not 0 <= v < MAX_ID:
        raise InputError(f"{key} must be in [0, 2^53), got {v}")
    return v


def parse_command(text: str | bytes, max_bytes: int) -> Command:
    """A page's message as a command, or `InputError` with what is wrong (shown in the page)."""
    if isinstance(text, bytes):
        raise InputError("binary messages are not accepted")
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise InputError(f"message longer than {max_bytes} bytes")
    body = jsonio.loads(text)
    if not isinstance(body, dict):
        raise InputError("a message must be a JSON object")
    kind = jsonio.get(body, "type", str)
    if kind == "ack":
        return Ack()
    if kind == "save":
        return Save()
    if kind == "learning":
        return SetLearning(jsonio.get(body, "on", bool))
    if kind in ("answer", "correct"):
        label = check_label(jsonio.get(body, "label", str))
        teacher = check_teacher(jsonio.get(body, "teacher", str))
        if kind == "answer":
            return Answer(label, teacher, query_id=_id(body, "query_id"))
        forget = jsonio.get(body, "forget", bool, required=False) or False
        return Answer(label, teacher, decision_id=_id(body, "decision_id"), forget=forget)
    raise InputError(f"unknown message type {kind[:32]!r}; expected answer, correct, learning, save or ack")


class RateLimit:
    """A token bucket: `rate` messages a second, bursts of `burst`; `allow()` spends one or says no."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if not rate > 0 or burst < 1:
            raise InputError(f"rate limit needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self.tokens, self.t = float(burst), clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


# ------------------------------------------------------------------------ the state
def stamp_key(stamp: Any) -> tuple[int, int] | None:
    """A frame stamp ({"sec", "nanosec"}) as a key that matches a question to its crop."""
    if isinstance(stamp, dict) and isinstance(stamp.get("sec"), int) and isinstance(stamp.get("nanosec"), int):
        return stamp["sec"], stamp["nanosec"]
    return None


@dataclass
class Client:
    """One connected page: its queue of events, whether it may have a frame, and a wake-up."""

    wake: Callable[[], None]
    events: deque = field(default_factory=deque)
    decision_dirty: bool = False
    status_dirty: bool = False
    frame_seq: int = -1  # the last frame sent
    acked: bool = True  # the page showed the last frame
    resync: bool = False  # its queue overflowed: send a snapshot next


class TeacherHub:
    """What the pages see, and who is watching."""

    def __init__(self, limits: HubLimits | None = None, clock: Callable[[], float] = time.monotonic):
        self.limits = limits or HubLimits()
        self.clock = clock
        self.clients: list[Client] = []
        self.frame: bytes | None = None
        self.frame_seq = 0
        self.decision: dict | None = None
        self.status: dict[str, str] = {}
        self.classes: list[str] = []
        self.questions: OrderedDict[int, dict] = OrderedDict()  # query id → question (with "image" when known)
        self._meta: dict[int, tuple[float, tuple[int, int] | None]] = {}  # query id → (asked at, frame stamp)
        self.crops: OrderedDict[tuple[int, int], str] = OrderedDict()  # frame stamp → crop data URL
        self.history: deque[dict] = deque(maxlen=self.limits.history)
        self._last_label: str | None = None

    # ------------------------------------------------------------ clients
    def connect(self, wake: Callable[[], None]) -> Client:
        c = Client(wake)
        self.clients.append(c)
        return c

    def disconnect(self, c: Client) -> None:
        if c in self.clients:
            self.clients.remove(c)

    def snapshot(self) -> dict:
        """Everything a page needs when it (re)connects."""
        self.expire()
        return {"type": "state", "protocol": PROTOCOL, "decision": self.decision, "classes": self.classes,
                "questions": list(self.questions.values()), "history": list(self.history), "status": self.status}

    def _event(self, body: dict) -> None:
        for c in self.clients:
            if len(c.events) >= self.limits.queue:
                c.events.clear()
                c.resync = True
            else:
                c.events.append(body)
            c.wake()

    # ------------------------------------------------------- from the robot
    @property
    def wanted(self) -> bool:
        """Whether any page is watching (frames are only encoded then)."""
        return bool(self.clients)

    def on_frame(self, jpeg: bytes) -> None:
        self.frame, self.frame_seq = jpeg, self.frame_seq + 1
        for c in self.clients:
            if c.acked:
                c.wake()

    def correctable(self, decision_id: int) -> bool:
        """Whether the guard still holds this decision (it keeps the last `decisions_kept`) to correct it."""
        last = self.decision.get("id") if self.decision else None
        return isinstance(last, int) and 0 <= last - decision_id < self.limits.decisions_kept

    def on_decision(self, d: dict) -> None:
        """A guard decision (the core's record of a Decision): the newest is shown; label changes go to the history."""
        self.decision = d
        scores = d.get("scores")
        if isinstance(scores, dict) and list(scores) != self.classes:
            self._set_classes(list(scores))
        label = d.get("label")
        if d.get("accepted") is True and isinstance(label, str) and label != self._last_label:
            self._remember({"kind": "decision", "decision_id": d.get("id"), "label": label,
                            "margin": d.get("margin")})
        self._last_label = label if d.get("accepted") is True else None
        for c in self.clients:
            c.decision_dirty = True
            c.wake()

    def _set_classes(self, classes: list[str]) -> None:
        self.classes = [c for c in classes if isinstance(c, str)]
        self._event({"type": "classes", "classes": self.classes})

    def on_query(self, q: dict) -> None:
        """A question from the guard (the core's record of a Query); its crop comes on its own topic, by stamp."""
        qid = q.get("query_id")
        if not isinstance(qid, int):
            raise InputError("query without a whole-number query_id")
        question = {k: q.get(k) for k in ("query_id", "decision_id", "reason", "top", "label", "teacher", "ask")}
        key = stamp_key(q.get("stamp"))
        question["image"] = self.crops.get(key) if key else None
        known = q.get("known_classes")
        if isinstance(known, list) and known != self.classes:
            self._set_classes(known)
        self.questions[qid] = question
        self._meta[qid] = (self.clock(), key)
        self.questions.move_to_end(qid)
        self._event({"type": "question", "question": question})
        while len(self.questions) > self.limits.questions:
            self._close(next(iter(self.questions)), "dropped (too many open questions)")

    def on_crop(self, stamp: dict, data_url: str) -> None:
        """A question's crop (`teacher/query_image`, as a data URL), before or after its question."""
        key = stamp_key(stamp)
        if key is None:
            return
        self.crops[key] = data_url
        self.crops.move_to_end(key)
        while len(self.crops) > self.limits.crops:
            self.crops.popitem(last=False)
        for qid, q in self.questions.items():
            if q["image"] is None and self._meta[qid][1] == key:
                q["image"] = data_url
                self._event({"type": "question_image", "query_id": qid, "image": data_url})

    def on_feedback(self, fb: dict, teacher: str | None = None) -> None:
        """A label seen on `teacher/feedback` (from this page or any teacher): the question it answers closes."""
        label, qid, did = fb.get("label"), fb.get("query_id"), fb.get("decision_id")
        if not isinstance(label, str):
            return
        if isinstance(qid, int) and qid in self.questions:
            did = self.questions[qid].get("decision_id")
            self._close(qid, f"answered {label!r}")
        self._remember({"kind": "label", "query_id": qid, "decision_id": did if isinstance(did, int) else None,
                        "label": label, "teacher": teacher or fb.get("teacher")})

    def on_status(self, values: dict[str, str]) -> None:
        """The guard's /diagnostics status (learning on/off, classes, counts): shown in the page."""
        self.status = dict(values)
        for c in self.clients:
            c.status_dirty = True
            c.wake()

    def tell(self, c: Client, body: dict) -> None:
        """A message to one page (the result of its own command)."""
        c.events.append(body)
        c.wake()

    # -------------------------------------------------------------- helpers
    def expire(self) -> None:
        """Drop the questions unanswered for longer than `question_ttl_s` (the guard has forgotten them)."""
        now = self.clock()
        for qid in [q for q, (t, _) in self._meta.items() if now - t > self.limits.question_ttl_s]:
            self._close(qid, "expired")

    def _close(self, qid: int, why: str) -> None:
        self.questions.pop(qid, None)
        self._meta.pop(qid, None)
        self._event({"type": "closed", "query_id": qid, "why": why})

    def _remember(self, entry: dict) -> None:
        entry["t"] = round(time.time(), 3)
        self.history.appendleft(entry)
        self._event({"type": "history", "entry": entry})

    # ---------------------------------------------------- what a page gets next
    def next_messages(self, c: Client) -> tuple[list[dict], bytes | None]:
        """The JSON messages and (if the page may have one) the frame to send to `c` now."""
        out: list[dict] = []
        if c.resync:
            c.resync, c.decision_dirty, c.status_dirty = False, False, False
            c.events.clear()
            out.append(self.snapshot())
        while c.events:
            out.append(c.events.popleft())
        if c.decision_dirty and self.decision is not None:
            c.decision_dirty = False
            out.append({"type": "decision", "decision": self.decision})
        if c.status_dirty:
            c.status_dirty = False
            out.append({"type": "status", "status": self.status})
        frame = None
        if c.acked and self.frame is not None and c.frame_seq != self.frame_seq:
            frame, c.frame_seq, c.acked = self.frame, self.frame_seq, False
        return out, frame
