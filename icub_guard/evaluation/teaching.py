"""Teaching under a lying teacher: accuracy with and without label screening, measured.

Each seed renders one teaching stream (SimWorld objects, `rounds` × objects ×
`frames_per_object` frames) and a held-out test set, extracts their features
once, then replays the stream through a fresh `Guard` per scenario — the
runtime the guard node runs, on frame time. A scenario is a set of
teachers (an oracle, a random liar at a flip fraction, a targeted liar that
turns class A into class B, a strategic liar that lies only where the model is
unsure, or an honest and a lying teacher together), with screening on or off.

Reported per scenario (mean over seeds): held-out accuracy after each round
(a rejection counts as not correct here: the robot did not recognise the
object), the final accuracy, the robot's questions, the labels the teacher
gave and their fate (learned right/wrong, asked back, refused), and for the
two-teacher scenario the undo: `forget_teacher(liar)` half-way through, teaching
going on, beside a run where the liar never spoke (its turns unanswered), and
how far the classifier right after forgetting is from a refit without the
liar's examples.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..core.features import BackboneSpec, FeatureExtractor
from ..core.guard import Guard, GuardConfig
from ..core.recognizer import Recognizer, RecognizerConfig
from ..core.screening import ScreeningConfig
from ..core.session import SessionConfig
from ..core.svm import OneVsAllSVC
from ..recordings.dataset import teaching_frames
from ..sim.datasets import load_dataset, simworld
from ..sim.teachers import MaliciousTeacher, OracleTeacher, StrategicLiar, TargetedLiar
from ..sim.teaching import LiveFrame, live_frame, render_stream, teach
from ..sim.world import simworld_objects

log = logging.getLogger(__name__)


@dataclass
class TeachingEvalConfig:
    variant: str = "7"
    recording: str = ""  # a `bag:FILE` dataset spec: teach from a recording's frames instead of SimWorld
    rounds: int = 5
    frames_per_object: int = 8
    test_per_class: int = 20
    seeds: tuple[int, ...] = (0, 1, 2)
    flips: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5)
    backbone: str = "alexnet"
    weights: str = "random"
    input_size: int = 224
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.frames_per_object < 1 or self.test_per_class < 1:
            raise ValueError("rounds, frames_per_object and test_per_class must be >= 1")
        if not self.seeds:
            raise ValueError("at least one seed")
        if any(not 0.0 <= f <= 1.0 for f in self.flips):
            raise ValueError("flip fractions must be in [0, 1]")


class Silent(OracleTeacher):
    """A teacher that never answers (the liar's turns in the run that never heard it)."""

    def answer(self, truth, top=None):
        return None

    def review(self, accepted, label, truth, asked=False):
        return None


@dataclass
class Scenario:
    name: str
    make: Callable[[int, list[str]], list[OracleTeacher]]  # (seed, class names) → teachers
    liar: str | None = None  # the liar's name, for forget_teacher


def scenarios(flips: tuple[float, ...]) -> list[Scenario]:
    out = []
    for f in flips:
        if f == 0:
            out.append(Scenario("honest", lambda s, c: [OracleTeacher(name="alice")]))
        else:
            out.append(Scenario(f"liar {f:g}", lambda s, c, f=f: [MaliciousTeacher(f, s, name="mallory")],
                                "mallory"))
    out += [
        Scenario("targeted liar", lambda s, c: [TargetedLiar(c[0], c[1], name="mallory")], "mallory"),
        Scenario("strategic liar 0.5", lambda s, c: [StrategicLiar(0.5, s, name="mallory")], "mallory"),
        Scenario("honest + liar 0.3", lambda s, c: [OracleTeacher(name="alice"), MaliciousTeacher(0.3, s,
                                                                                                 name="mallory")],
                 "mallory"),
    ]
    return out


@dataclass
class Stream:
    frames: list[LiveFrame]
    test_X: np.ndarray
    test_y: np.ndarray


@dataclass
class RunResult:
    accuracy_per_round: list[float]
    final_accuracy: float
    queries: int
    labels: dict[str, int]
    trust: dict[str, float]
    after_forget: float | None = None  # forget_teacher(liar) mid-stream, teaching went on: final accuracy
    never_heard: float | None = None  # the liar silent throughout: final accuracy
    refit_gap: float | None = None  # max |score difference| right after forget vs a refit without its examples


@dataclass
class TeachingEvalResult:
    config: dict
    runs: dict[str, dict[str, list[RunResult]]] = field(default_factory=dict)  # scenario → screening → seeds
    timing: dict[str, float] = field(default_factory=dict)

    def summary(self) -> list[dict]:
        rows = []
        def mean(runs, key):
            vals = [getattr(r, key) for r in runs if getattr(r, key) is not None]
            return float(np.mean(vals)) if vals else None

        for name, by in self.runs.items():
            for screening, runs in by.items():
                labels: dict[str, float] = {}
                for r in runs:
                    for k, v in r.labels.items():
                        labels[k] = labels.get(k, 0) + v / len(runs)
                rows.append({"scenario": name, "screening": screening, "final_accuracy": mean(runs, "final_accuracy"),
                             "final_accuracy_std": float(np.std([r.final_accuracy for r in runs])),
                             "queries": mean(runs, "queries"), "labels": labels,
                             "curve": np.mean([r.accuracy_per_round for r in runs], axis=0).tolist(),
                             "after_forget": mean(runs, "after_forget"), "never_heard": mean(runs, "never_heard"),
                             "refit_gap": max((r.refit_gap for r in runs if r.refit_gap is not None), default=None),
                             "per_seed": [{"seed": seed, "final_accuracy": r.final_accuracy, "queries": r.queries,
                                           "trust": r.trust} for seed, r in zip(self.config["seeds"], runs,
                                                                                 strict=True)]})
        return rows


def held_out_accuracy(rec: Recognizer, X: np.ndarray, y: np.ndarray) -> float:
    if len(rec.classes) < 2:
        return 0.0
    labels = np.array([d.label for d in rec.classify_features(X)], dtype=object)
    return float(np.mean(labels == y))


def record_stream(rec: Recognizer, cfg: TeachingEvalConfig, seed: int) -> Stream:
    if cfg.recording:  # the robot's own frames, in recorded order; its test split held out
        frames = [live_frame(rec, f.image, f.roi, f.label, r) for r, f in teaching_frames(cfg.recording, cfg.rounds)]
        test = load_dataset(cfg.recording, "test", cfg.test_per_class)
    else:
        frames = list(render_stream(rec, cfg.variant, cfg.rounds, cfg.frames_per_object, seed))
        test = simworld(cfg.variant, "test", cfg.test_per_class, seed=seed)
    return Stream(frames, rec.features(test.images), np.asarray(test.labels, dtype=object))


def refit_gap(rec: Recognizer, X_test: np.ndarray) -> float:
    """Max |score difference| on `X_test` between the classifier and a refit on its examples (same γ)."""
    X, y, _ = rec.examples()
    clf = rec.classifier
    ref = OneVsAllSVC(kernel=clf.kernel, C=clf.C, gamma=clf.gamma_, reject=clf.reject, tol=clf.tol)
    ref.fit(X, np.asarray(rec.classes, dtype=object)[y])
    return float(np.max(np.abs(clf.decision_function(X_test) - ref.decision_function(X_test))))


def run_one(extractor: FeatureExtractor, stream: Stream, teachers: list[OracleTeacher], screening: bool,
            seed: int, forget: str | None = None, forget_after: int = 0, **overrides
            ) -> tuple[RunResult, Guard]:
    """One teaching run through a fresh `Guard` (the runtime a robot runs); with `forget`,
    `forget_teacher(forget)` after round `forget_after` (0-based)."""
    rec = Recognizer(RecognizerConfig(classifier="svm-adv"), extractor=extractor)
    guard = Guard(rec, GuardConfig(rec.config, SessionConfig.defaults(),
                                   ScreeningConfig.defaults(enabled=screening, **overrides)))
    curve: list[float] = []
    gap: list[float] = []

    def after_round(r: int) -> None:
        if forget is not None and r == forget_after and forget in guard.session.teachers():
            guard.forget_teacher(forget)
            gap.append(refit_gap(rec, stream.test_X))
        curve.append(held_out_accuracy(rec, stream.test_X, stream.test_y))

    result = teach(guard, stream.frames, teachers, seed, after_round=after_round)
    trust = {k: v["trust"] for k, v in guard.session.teachers().items()}
    run = RunResult(curve, curve[-1], int(result["total"]["queries"]), result["labels"], trust)
    if forget is not None:
        run.after_forget, run.refit_gap = curve[-1], gap[0] if gap else None
    return run, guard


def run_teaching_evaluation(cfg: TeachingEvalConfig, progress: Callable[[str], None] | None = None
                            ) -> TeachingEvalResult:
    t0 = time.perf_counter()
    extractor = FeatureExtractor(BackboneSpec(cfg.backbone, cfg.weights, 0, cfg.input_size), cfg.device)
    classes = (load_dataset(cfg.recording, "live", 1).classes if cfg.recording
               else [o.label for o in simworld_objects(cfg.variant)])
    if len(classes) < 2:
        raise ValueError(f"teaching needs at least two classes; {cfg.recording} has {classes}")
    result = TeachingEvalResult(config=asdict(cfg))
    todo = scenarios(cfg.flips)
    for seed in cfg.seeds:
        t1 = time.perf_counter()
        stream = record_stream(Recognizer(RecognizerConfig(), extractor=extractor), cfg, seed)
        result.timing[f"stream_{seed}_s"] = time.perf_counter() - t1
        for sc in todo:
            for screening in (False, True):
                key = "on" if screening else "off"
                run, _ = run_one(extractor, stream, sc.make(seed, classes), screening, seed)
                if sc.liar is not None and len(sc.make(seed, classes)) > 1:
                    # undo: the liar is found out half-way and forgotten; teaching goes on
                    undo, _ = run_one(extractor, stream, sc.make(seed, classes), screening, seed, sc.liar,
                                      (cfg.rounds - 1) // 2)
                    run.after_forget, run.refit_gap = undo.after_forget, undo.refit_gap
                    quiet = [t if t.name != sc.liar else Silent(name=sc.liar) for t in sc.make(seed, classes)]
                    run.never_heard = run_one(extractor, stream, quiet, screening, seed)[0].final_accuracy
                result.runs.setdefault(sc.name, {}).setdefault(key, []).append(run)
                if progress is not None:
                    progress(f"seed {seed}: {sc.name}, screening {key}: accuracy {run.final_accuracy:.2f}")
    result.timing["total_s"] = time.perf_counter() - t0
    return result
