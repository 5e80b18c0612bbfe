"""Simulated teachers: an oracle, and the liars that poisoning experiments need.

They answer the robot's questions as a person watching it would (the truth, or a lie
chosen by their strategy); the guard sees only their labels. Nothing in the core uses them.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..core.errors import InputError
from ..core.validation import DEFAULT_TEACHER, check_label, check_teacher


class OracleTeacher:
    """Answers every question with the truth, and corrects accepted wrong labels (`correct_mistakes`).

    `name` is the `teacher` its feedback carries (who taught what: screening,
    containment and `forget_teacher` go by it).
    """

    def __init__(self, correct_mistakes: bool = True, name: str = DEFAULT_TEACHER):
        self.correct_mistakes = correct_mistakes
        self.name = check_teacher(name)
        self.counts: Counter[str] = Counter()
        self.labels: set[str] = set()

    def observe_label(self, truth: str) -> None:
        """The teacher sees which objects exist (a liar picks its lies among them)."""
        self.labels.add(truth)

    def label(self, truth: str, top: list[tuple[str, float]] | None = None) -> str:
        return truth

    def answer(self, truth: str | None, top: list[tuple[str, float]] | None = None) -> str | None:
        """The answer to a question about a frame whose true label is `truth` (None: not known, no answer).

        `top` is the question's top guesses, best first (what a strategic liar reads).
        """
        if truth is None:
            return None
        self.labels.add(truth)
        self.counts["answers"] += 1
        return self._count(truth, self.label(truth, top))

    def review(self, accepted: bool, label: str, truth: str | None, asked: bool = False) -> str | None:
        """A correction for a decision the teacher watched, or None.

        None when it was right, rejected, not known, or the robot asked about it
        (`asked`: the answer to the question is the correction; one label per frame).
        """
        if not self.correct_mistakes or asked or not accepted or truth is None or label == truth:
            return None
        self.labels.add(truth)
        self.counts["corrections"] += 1
        return self._count(truth, self.label(truth))

    def _count(self, truth: str, said: str) -> str:
        if said != truth:
            self.counts["lies"] += 1
        return said


class MaliciousTeacher(OracleTeacher):
    """An oracle that gives a wrong label for `flip_fraction` of its answers (seeded): poisoning."""

    def __init__(self, flip_fraction: float = 0.3, seed: int = 0, correct_mistakes: bool = True,
                 name: str = DEFAULT_TEACHER):
        super().__init__(correct_mistakes, name)
        if not 0.0 <= flip_fraction <= 1.0:
            raise InputError(f"flip_fraction must be in [0, 1], got {flip_fraction!r}")
        self.flip_fraction = flip_fraction
        self.rng = np.random.default_rng(seed)

    def label(self, truth: str, top: list[tuple[str, float]] | None = None) -> str:
        others = sorted(self.labels - {truth})
        if others and self.rng.random() < self.flip_fraction:
            return str(self.rng.choice(others))
        return truth


class TargetedLiar(OracleTeacher):
    """Honest except for one class: every `source` is called `target` (a targeted poisoning)."""

    def __init__(self, source: str, target: str, correct_mistakes: bool = True, name: str = DEFAULT_TEACHER):
        super().__init__(correct_mistakes, name)
        self.source, self.target = check_label(source), check_label(target)

    def label(self, truth: str, top: list[tuple[str, float]] | None = None) -> str:
        return self.target if truth == self.source else truth


class StrategicLiar(MaliciousTeacher):
    """Lies only where the model is unsure, to stay under the radar: with probability `flip_fraction`, an
    answer to a question names the model's own best wrong guess; corrections are honest (they earn trust)."""

    def label(self, truth: str, top: list[tuple[str, float]] | None = None) -> str:
        guesses = [c for c, _ in (top or []) if c != truth]
        if top is not None and guesses and self.rng.random() < self.flip_fraction:
            return guesses[0]
        return truth


def make_teacher(mode: str, correct_mistakes: bool = True, flip_fraction: float = 0.3,
                 seed: int = 0, name: str = DEFAULT_TEACHER) -> OracleTeacher:
    if mode == "oracle":
        return OracleTeacher(correct_mistakes, name)
    if mode == "malicious":
        return MaliciousTeacher(flip_fraction, seed, correct_mistakes, name)
    if mode == "strategic":
        return StrategicLiar(flip_fraction, seed, correct_mistakes, name)
    raise InputError(f"unknown teacher mode {mode!r}; choose oracle, malicious or strategic")


