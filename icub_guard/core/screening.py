"""Screening a teacher's labels before they are learned: suspicion, trust per teacher, policy, containment.

The guard learns from whoever publishes feedback, and a lying teacher poisons
the classifier (the paper's open problem). Each incoming label gets a
suspicion score from evidence the guard already has:

* `knn`: the share of the label's `neighbours` nearest stored examples (feature
  space) that carry another label;
* `model`: the current model's confident disagreement — it accepts another
  class, by a margin over the taught class's score (scaled by `margin_scale`,
  clipped to [0, 1]);
* `trust`: the teacher's record, a Beta posterior of how often its labels held
  up when checked: a label that is asked back and confirmed (two answers agree)
  counts one agreement for each teacher who gave the agreed label and one
  disagreement for each who gave another. Only checks move trust: an honest
  teacher who corrects a confidently wrong model is asked back, not blamed.

suspicion = σ(logit(1 − trust) + `evidence_gain` · (evidence − ½)), the
evidence being the mean of `knn` and `model`; without evidence (fewer than
`min_examples` stored, or a label that names a new class) it is 1 − trust.
Policy: below `quarantine_at` the label is learned; from it, it is held and
asked back (a `confirm` question, to the most trusted other teacher when there
is one) until two answers agree — that label is learned — or `max_answers`
answers disagree (refused); from `refuse_at` it is refused at once (a teacher
whose trust is gone, e.g. after `forget_teacher`). Containment: once two or
more teachers have taught, a label that would give one teacher more than
`max_teacher_share` of a class (of at least `share_min_examples`) is held until
another teacher confirms it. `audit_rate` asks back that share of the labels
that pass, at random (seeded), so trust is measured even for a teacher whose
lies look plausible.

A liar is contained by the loop this makes: its lies are contradicted when
asked back, its trust falls, more of its labels are asked back. An honest
teacher's trust rises, so it is asked back only for labels that both the
neighbours and the model contradict.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from .errors import InputError

ACTIONS = ("learn", "quarantine", "refuse")


@dataclass
class ScreeningConfig:
    enabled: bool = True
    quarantine_at: float = 0.25
    refuse_at: float = 0.95
    max_answers: int = 3
    audit_rate: float = 0.0
    neighbours: int = 7
    min_examples: int = 10
    evidence_gain: float = 4.0
    margin_scale: float = 0.5
    prior_trust: float = 0.9
    prior_weight: float = 3.0
    max_teacher_share: float = 0.75
    share_min_examples: int = 6

    def __post_init__(self) -> None:
        def unit(name: str, lo: float = 0.0, hi: float = 1.0) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                raise InputError(f"screening {name} must be in [{lo}, {hi}], got {v!r}")

        if not isinstance(self.enabled, bool):
            raise InputError("screening enabled must be true or false")
        for name in ("quarantine_at", "refuse_at", "max_teacher_share", "audit_rate"):
            unit(name)
        unit("prior_trust", 0.01, 0.99)
        unit("evidence_gain", 0.0, 100.0)
        unit("margin_scale", 1e-6, 100.0)
        unit("prior_weight", 0.1, 1e6)
        if self.quarantine_at > self.refuse_at:
            raise InputError(f"screening quarantine_at ({self.quarantine_at}) must not exceed refuse_at "
                             f"({self.refuse_at})")
        if isinstance(self.max_answers, bool) or not isinstance(self.max_answers, int) or \
                not 2 <= self.max_answers <= 10:
            raise InputError(f"screening max_answers must be a whole number in [2, 10], got {self.max_answers!r}")
        for name in ("neighbours", "min_examples", "share_min_examples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100_000:
                raise InputError(f"screening {name} must be a whole number in [1, 100000], got {v!r}")

    @staticmethod
    def parameter(name: str) -> str:
        """The guard's parameter for a field: `screening` (enabled) or `screening_<field>`."""
        return "screening" if name == "enabled" else f"screening_{name}"

    @classmethod
    def defaults(cls, **overrides) -> ScreeningConfig:
        """The guard's defaults (config/guard.yaml: `screening`, `screening_*`), with overrides by field name."""
        from ..defaults import node_defaults

        d = node_defaults("guard.yaml")
        values = {f.name: d[cls.parameter(f.name)] for f in fields(cls) if cls.parameter(f.name) in d}
        return cls(**{**values, **overrides})


@dataclass
class TeacherRecord:
    """What the guard knows of one teacher: a Beta posterior of its agreement, and its counts."""

    agree: float
    disagree: float
    counts: Counter = field(default_factory=Counter)

    @property
    def trust(self) -> float:
        return self.agree / (self.agree + self.disagree)

    def to_json(self) -> dict[str, Any]:
        return {"agree": self.agree, "disagree": self.disagree, "counts": dict(self.counts)}

    @classmethod
    def from_json(cls, d: dict) -> TeacherRecord:
        return cls(float(d["agree"]), float(d["disagree"]), Counter({str(k): int(v) for k, v in d["counts"].items()}))


@dataclass
class Verdict:
    action: str  # learn | quarantine | refuse
    suspicion: float
    reason: str  # ok | no_evidence | suspicious | share | audit | screening_off
    evidence: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


class LabelScreen:
    """Per-teacher trust and the learn / quarantine / refuse policy (not thread-safe: the session locks)."""

    def __init__(self, config: ScreeningConfig | None = None):
        self.config = config or ScreeningConfig()
        self.teachers: dict[str, TeacherRecord] = {}

    def teacher(self, name: str) -> TeacherRecord:
        if name not in self.teachers:
            c = self.config
            self.teachers[name] = TeacherRecord(c.prior_trust * c.prior_weight, (1 - c.prior_trust) * c.prior_weight)
        return self.teachers[name]

    # ------------------------------------------------------------ evidence
    def evidence(self, neighbours: list[str], n_examples: int, n_label: int, classes: list[str], label: str,
                 scores: dict[str, float]) -> dict[str, float | None]:
        """`knn` and `model` evidence against `label`; None where there is none.

        `neighbours`: the labels of the `k_for(n_label)` stored examples nearest
        to the sample; `n_label`: how many examples `label` has; `scores`: the
        model's scores for the sample.
        """
        c = self.config
        if label not in classes or n_examples < c.min_examples or not neighbours:
            return {"knn": None, "model": None}
        knn = float(np.mean([n != label for n in neighbours]))
        model = 0.0
        if scores and label in scores and all(math.isfinite(v) for v in scores.values()):
            top = max(scores, key=scores.get)
            if top != label:  # by how much the model prefers another class (accepted or not)
                model = float(np.clip((scores[top] - scores[label]) / c.margin_scale, 0.0, 1.0))
        return {"knn": knn, "model": model}

    def k_for(self, n_label: int) -> int:
        """As many neighbours as the class could fill: a small class is not outvoted by its size alone."""
        return max(1, min(self.config.neighbours, n_label))

    def assess(self, teacher: str, evidence: dict[str, float | None], share_exceeded: bool = False,
               audit: bool = False) -> Verdict:
        """The policy for one label from `teacher`, given its evidence (`audit`: a random check is due)."""
        c = self.config
        t = self.teacher(teacher).trust
        ev = {**evidence, "trust": t}
        if not c.enabled:
            return Verdict("learn", 0.0, "screening_off", ev)
        parts = [v for k, v in evidence.items() if k in ("knn", "model") and v is not None]
        if parts:
            e = float(np.mean(parts))
            s = 1.0 / (1.0 + math.exp(-(_logit(1.0 - t) + c.evidence_gain * (e - 0.5))))
            reason = "suspicious"
        else:
            s, reason = 1.0 - t, "no_evidence"
        if s >= c.refuse_at:
            return Verdict("refuse", s, reason, ev)
        if s >= c.quarantine_at:
            return Verdict("quarantine", s, reason, ev)
        if share_exceeded:
            return Verdict("quarantine", s, "share", ev)
        if audit:
            return Verdict("quarantine", s, "audit", ev)
        return Verdict("learn", s, "ok" if parts else "no_evidence", ev)

    # -------------------------------------------------------------- trust
    def settle(self, answers: list[tuple[str, str]], agreed: str | None) -> None:
        """A question asked back is settled: credit the answers (label, teacher) against the agreed label.

        The label under test (the first answer) is credited, and so is every
        answer of another teacher; a teacher's own later answers are the check,
        not evidence for it (a liar repeating the truth earns nothing). With no
        agreement (`agreed` None) nobody can be told right: half a disagreement.
        """
        first = answers[0][1]
        for i, (label, teacher) in enumerate(answers):
            if i > 0 and teacher == first:
                continue
            rec = self.teacher(teacher)
            if agreed is None:
                rec.disagree += 0.5
            elif label == agreed:
                rec.agree += 1.0
                rec.counts["confirmed"] += 1
            else:
                rec.disagree += 1.0
                rec.counts["contradicted"] += 1

    def distrust(self, teacher: str) -> None:
        """After `forget_teacher`: trust ≈ 0, so its later labels are refused while screening is on."""
        rec = self.teacher(teacher)
        rec.agree, rec.disagree = 1e-3, self.config.prior_weight

    # ---------------------------------------------------------- persistence
    def state(self) -> dict[str, Any]:
        return {name: rec.to_json() for name, rec in self.teachers.items()}

    def load_state(self, state: dict[str, Any]) -> None:
        try:
            self.teachers = {str(k): TeacherRecord.from_json(v) for k, v in state.items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"unreadable teacher records: {exc}") from exc
