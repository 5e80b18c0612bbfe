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
  disagreement for each who gave another, and a teacher who contradicts its own
  label while answering counts one more disagreement (an honest teacher never
  does; a random liar does, so self-confirmations cannot lift its trust above
  how consistent it is). Only checks move trust: an honest teacher who corrects
  a confidently wrong model is asked back, not blamed.

suspicion = σ(logit(1 − trust) + `evidence_gain` · (evidence − ½)), the
evidence being the mean of `knn` and `model`; without evidence (fewer than
`min_examples` stored, or a label that names a new class) it is 1 − trust.
Trust cannot silence evidence: a label whose evidence reaches `evidence_check`
is asked back however trusted its teacher is. Without that floor, a teacher
whose trust reached 0.957 (four early labels confirmed) could never be asked
back again, so its trust could never fall: trust banked while the model could
not judge was spent on lies the evidence saw.
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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .validation import check_settings, setting

ACTIONS = ("learn", "quarantine", "refuse")


@dataclass
class ScreeningConfig:
    """The screening's settings; each field's description and range are the guard parameter's too."""

    enabled: bool = setting("screening", "screen teachers' labels: learn, ask back (confirm) or refuse")
    quarantine_at: float = setting("screening_quarantine_at", "suspicion from which a label is held and asked back",
                                   0.0, 1.0)
    refuse_at: float = setting("screening_refuse_at", "suspicion from which a label is refused at once", 0.0, 1.0)
    max_answers: int = setting("screening_max_answers",
                               "answers to a label asked back before it is refused (two must agree)", 2, 10)
    audit_rate: float = setting("screening_audit_rate", "share of passing labels asked back at random", 0.0, 1.0)
    neighbours: int = setting("screening_neighbours", "nearest stored examples consulted", 1, 100_000)
    min_examples: int = setting("screening_min_examples", "no evidence before the model holds this many examples",
                                1, 100_000)
    evidence_gain: float = setting("screening_evidence_gain", "log-odds of suspicion per unit of evidence",
                                   0.0, 100.0)
    margin_scale: float = setting("screening_margin_scale",
                                  "score margin at which the model's disagreement counts fully", 1e-6, 100.0)
    prior_trust: float = setting("screening_prior_trust", "a new teacher's trust", 0.01, 0.99)
    prior_weight: float = setting("screening_prior_weight", "how many labels the trust prior is worth", 0.1, 1e6)
    max_teacher_share: float = setting("screening_max_teacher_share",
                                       "containment: most of a class one teacher may teach unconfirmed", 0.0, 1.0)
    share_min_examples: int = setting("screening_share_min_examples", "classes smaller than this are not capped",
                                      1, 100_000)
    evidence_check: float = setting("screening_evidence_check",
                                    "evidence from which a label is asked back however trusted its teacher (1: never)",
                                    0.0, 1.0)

    def __post_init__(self) -> None:
        check_settings(self, "screening ")
        if self.quarantine_at > self.refuse_at:
            raise InputError(f"screening quarantine_at ({self.quarantine_at}) must not exceed refuse_at "
                             f"({self.refuse_at})")

    @staticmethod
    def parameter(name: str) -> str:
        """The guard's parameter for a field: `screening` (enabled) or `screening_<field>`."""
        return "screening" if name == "enabled" else f"screening_{name}"

    @classmethod
    def defaults(cls, **overrides) -> ScreeningConfig:
        """The guard's defaults (config/guard.yaml: `screening`, `screening_*`), with overrides by field name."""
        return cls(**overrides)


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
    reason: str  # ok | no_evidence | suspicious | evidence | share | audit | screening_off
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
        if parts and e >= c.evidence_check:  # trust does not silence evidence this strong
            return Verdict("quarantine", s, "evidence", ev)
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
        not evidence for it (a liar repeating the truth earns nothing). But a
        teacher that contradicted its own label while answering was wrong at
        least once: if its label is the one agreed (or none is), that counts one
        disagreement too. With no agreement (`agreed` None) nobody can be told
        right: half a disagreement.
        """
        held, first = answers[0]
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
        if agreed in (held, None):
            if any(label != held for label, teacher in answers[1:] if teacher == first):
                self.teacher(first).disagree += 1.0
                self.teacher(first).counts["inconsistent"] += 1

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
