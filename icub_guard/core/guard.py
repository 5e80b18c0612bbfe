"""`Guard`: the one runtime entry point — recogniser + online defences + teaching session.

A robot's guard node, the in-process demo, `evaluate-teaching` and the tests all drive this
object, so what a frame goes through (crop → features → classifier with its reject option →
defences → the protocol's question) and what a label goes through (screening → learning →
journal → adversarial augmentation) exist once. The nodes only convert messages and parameters.

No ROS here. Thread-safe as far as a node needs: frames and labels may arrive on different
threads (the recogniser, the session and the defences each hold their own lock).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GuardError, InputError
from .journal import LabelJournal
from .recognizer import Decision, Recognizer, RecognizerConfig
from .roi import ROI
from .saver import BackgroundSaver
from .screening import ScreeningConfig
from .session import Feedback, Outcome, Query, Seen, SessionConfig, Step, TeachingSession, parse_class_thresholds
from .threads import frame_blas
from .validation import DEFAULT_TEACHER

log = logging.getLogger(__name__)

#: the most regions one frame may hold (`frame_regions`): a detector's output, not an attacker's flood
MAX_REGIONS = 64

#: runtime parameter → the setting it changes (`core.validation.setting` names each field's parameter)
_SESSION_PARAMS = {f.metadata.get("param", f.name): f.name for f in fields(SessionConfig) if f.name != "max_pending"}
_SCREENING_PARAMS = {f.metadata["param"]: f.name for f in fields(ScreeningConfig)}


@dataclass
class GuardConfig:
    """Everything a guard is built from at start-up (the node's read-only parameters and its runtime ones)."""

    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    session: SessionConfig = field(default_factory=SessionConfig.defaults)
    screening: ScreeningConfig = field(default_factory=ScreeningConfig.defaults)
    defences: tuple[str, ...] | list[str] | str = ()  # ordered specs, or the node's comma-separated text
    model_path: str | None = None  # loaded at start, saved to; its label journal lies beside it
    autosave: bool = False  # a snapshot in the background after every change (the journal holds the label first)
    recover_journal: bool = False  # start from a damaged journal: kept aside, every record that verifies recovered
    defence_seed: int | None = None  # randomised defences' noise: None, from the OS (unknowable); an int: repeatable


@dataclass
class FrameStep:
    """What one frame produced: the protocol's step (decision id, decision, question), the crop and its ROI."""

    step: Step
    crop: np.ndarray
    roi: ROI | None = None
    roi_source: str = "crop"  # topic (a region was given) | regions (one of several) | full | fixed | auto | crop
    latency_ms: float = 0.0

    @property
    def decision(self):
        return self.step.decision

    @property
    def decision_id(self) -> int:
        return self.step.decision_id

    @property
    def query(self) -> Query | None:
        return self.step.query


class Guard:
    """A recogniser guarded by its reject option and defences, taught online by its teachers.

    `save_failed` is told of a background save that failed (the node logs and counts it).
    """

    def __init__(self, recognizer: Recognizer, config: GuardConfig | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 save_failed: Callable[[Exception], None] | None = None):
        cfg = config or GuardConfig(recognizer=recognizer.config)
        self.config = cfg
        self.rec = recognizer
        self.model_path = str(cfg.model_path) if cfg.model_path else None
        self.autosave = cfg.autosave
        journal = LabelJournal.beside(self.model_path) if self.model_path else None
        self.session = TeachingSession(recognizer, cfg.session, clock=clock, journal=journal,
                                       screening=cfg.screening)
        self.defences = self._new_defences(cfg.defences)
        self.problem: str | None = None  # the last durability problem (the journal or a save), for diagnostics
        self.notes = list(recognizer.notes)  # why it is degraded (e.g. random backbone weights)
        self.saves = 0  # saves asked for (`save`); background ones are `saver.saves`
        self._save_failed = save_failed
        #: background snapshots (only where there is a file to write)
        self.saver = BackgroundSaver(self._save_quietly, self._background_save_failed) if self.model_path else None

    def _new_defences(self, specs):
        """The online defences for `specs` (text or a list; a bad one raises and changes nothing)."""
        from ..defences.online import OnlineDefences  # torch and the defences: only when guarding

        return OnlineDefences(specs, seed=self.config.defence_seed)

    @classmethod
    def build(cls, config: GuardConfig, extractor=None, **kwargs) -> Guard:
        """A guard with a new recogniser (`extractor`: share one already loaded; else the configured backbone,
        "auto" weights resolved: ImageNet when cached, else seeded random ones, said in `notes`)."""
        return cls(Recognizer(config.recognizer, extractor=extractor), config, **kwargs)

    # ----------------------------------------------------------- frames
    def frame(self, image: np.ndarray, roi=None, now: float | None = None, source: Any = None) -> FrameStep:
        """Judge one camera frame: crop the ROI (given, else the configured mode), then `judge` the crop.

        `source`: kept with the decision (`seen`), e.g. the image's header. A malformed image or ROI is an
        `InputError` and changes nothing.
        """
        t0 = time.perf_counter()
        crop, r = self.rec.crop(image, roi)
        out = self.judge(crop, now=now, source=source)
        out.roi, out.roi_source = r, "topic" if roi is not None else self.rec.config.roi_mode
        out.latency_ms = 1e3 * (time.perf_counter() - t0)
        return out

    def frame_regions(self, image: np.ndarray, rois, now: float | None = None, source: Any = None) -> list[FrameStep]:
        """Judge every region of one frame (e.g. a detector's detections): all cropped, their features extracted
        in one batch (one forward pass), each decided and recorded under its own decision id; questions as the
        rate limit allows. A malformed image or any bad region is an `InputError` and changes nothing."""
        t0 = time.perf_counter()
        rois = list(rois)
        if not 1 <= len(rois) <= MAX_REGIONS:
            raise InputError(f"a frame needs 1 to {MAX_REGIONS} regions, got {len(rois)}")
        cropped = [self.rec.crop(image, roi) for roi in rois]  # every region checked before anything is recorded
        crops = np.stack([c for c, _ in cropped])
        out = []
        with frame_blas():
            feats = self.rec.features(crops)
            for (crop, r), d, f in zip(cropped, self.decide(crops, feats), feats, strict=True):
                step = self.session.observe(f, now=now, decision=d, crop=crop, source=source)
                out.append(FrameStep(step, crop, r, "regions"))
        latency = 1e3 * (time.perf_counter() - t0)
        for fs in out:
            fs.latency_ms = latency  # the frame's, all regions together
        return out

    def judge(self, crop: np.ndarray, features: np.ndarray | None = None, now: float | None = None,
              source: Any = None) -> FrameStep:
        """Judge one crop (`features`: its features, when already extracted): classifier, defences, question."""
        t0 = time.perf_counter()
        with frame_blas():
            feats = self.rec.features(crop) if features is None else features
            decision = self.decide([crop], feats)[0]
            step = self.session.observe(feats, now=now, decision=decision, crop=np.asarray(crop), source=source)
        return FrameStep(step, crop, latency_ms=1e3 * (time.perf_counter() - t0))

    def decide(self, crops, features: np.ndarray | None = None) -> list[Decision]:
        """The guard's decisions on crops (classifier, reject option, defences) with nothing recorded and no
        question asked: what a held-out check measures."""
        feats = self.rec.features(np.asarray(crops)) if features is None else np.asarray(features)
        return [self.defences.review(self.rec, d, c, f[None])
                for d, c, f in zip(self.rec.classify_features(feats), crops, feats.reshape(len(crops), -1),
                                   strict=True)]

    def seen(self, decision_id: int | None) -> Seen | None:
        """A recent decision's features, label, crop and source (None: unknown or forgotten)."""
        return self.session.recent.get(decision_id if decision_id is not None else -1)

    def crop_of(self, decision_id: int | None) -> np.ndarray | None:
        """The crop of a recent decision (None: unknown, forgotten, or only features were seen)."""
        seen = self.seen(decision_id)
        return None if seen is None else seen.crop

    # --------------------------------------------------------- teachers
    def feedback(self, message: str | Feedback) -> Outcome:
        """A teacher's label: screened, then learned (durable before this returns), held or refused.

        `InputError` (malformed, unknown id, learning off: nothing changes); `OSError`: the journal could not
        store the label, which is then not acknowledged.
        """
        return self._settle(self.session.feedback(message))

    def confirm(self, teacher: str = DEFAULT_TEACHER) -> Outcome:
        """The teacher says the last decision was right: learned like a label."""
        return self._settle(self.session.confirm(teacher))

    def _settle(self, outcome: Outcome) -> Outcome:
        if outcome.report is not None:
            self._augment(outcome)
            self._changed()
        return outcome

    def _augment(self, outcome: Outcome) -> None:
        """With `adv_augment` among the defences, the label's crop, attacked, is learned too (same teacher and
        decision). The label itself is already stored: a failure here is reported on the outcome."""
        crop = self.crop_of(outcome.decision_id)
        if self.defences.augment is None or crop is None:
            return
        try:
            feats = self.defences.augmented_features(self.rec, crop, outcome.label)
            if feats is None:
                return
            self.session.learn_extra(feats, outcome.label, outcome.teacher, outcome.decision_id, "adversarial")
        except OSError as exc:
            outcome.problem = self._durability_problem(f"the adversarial example was not stored durably: {exc}")
            return
        outcome.augmented = True
        self.session.counts["augmented"] += 1

    def forget_decision(self, decision_id: int | str) -> list[int]:
        """Remove what one decision's label taught (`decision_id`: a whole number, or its digits as text);
        returns the example ids removed (journaled, then saved)."""
        if isinstance(decision_id, str):
            text = decision_id.strip()
            if not (text.isascii() and text.isdigit()) or len(text) > 18:  # "²" is a digit to isdigit()
                raise InputError(f"decision id must be a whole number, got {text[:40]!r}")
            decision_id = int(text)
        removed = self.session.forget_decision(decision_id)
        self._changed()
        return removed

    def forget_teacher(self, teacher: str) -> list[int]:
        """Remove everything a teacher taught and distrust it; returns the example ids removed."""
        removed = self.session.forget_teacher(teacher)
        self._changed()
        return removed

    # ---------------------------------------------------------- settings
    def check_settings(self, changes: dict[str, Any]) -> None:
        """Validate runtime settings by their parameter names (`threshold`, `screening_refuse_at`, `defences`,
        …; others are ignored) as a whole, without applying anything: `ValueError` (`InputError`) says why."""
        session, screening, defences = self._split(changes)
        if defences is not None:
            from ..defences.online import check_specs

            check_specs(defences)
        SessionConfig(**{**vars(self.session.config), **session})
        ScreeningConfig(**{**vars(self.session.screen.config), **screening})

    def apply_settings(self, changes: dict[str, Any]) -> list[str]:
        """Apply runtime settings already checked (`check_settings`); returns what changed, for the log."""
        session, screening, defences = self._split(changes)
        done = []
        if session:
            self.session.configure(**session)
            done.append(f"teaching: {', '.join(session)}")
        if screening:
            self.session.configure_screening(**screening)
            done.append(f"screening: {', '.join(screening)}")
        if defences is not None:
            self.defences = self._new_defences(defences)
            done.append(f"defences: {', '.join(self.defences.specs) or 'none (reject option alone)'}")
        if "autosave" in changes:
            self.autosave = bool(changes["autosave"])
        return done

    @staticmethod
    def _split(changes: dict[str, Any]) -> tuple[dict, dict, Any]:
        """Parameter names → (session fields, screening fields, the defences' specs or None when unchanged)."""
        session = {f: changes[p] for p, f in _SESSION_PARAMS.items() if p in changes}
        if isinstance(session.get("class_thresholds"), str):
            session["class_thresholds"] = parse_class_thresholds(session["class_thresholds"])
        screening = {f: changes[p] for p, f in _SCREENING_PARAMS.items() if p in changes}
        return session, screening, changes.get("defences")

    @property
    def learning(self) -> bool:
        return self.session.config.learning_enabled

    @property
    def classes(self) -> list[str]:
        return self.rec.classes

    # ------------------------------------------------------- durability
    def restore(self) -> str:
        """Start-up: load the model file and replay the journal's later records; returns what was restored.

        An unreadable model file raises `ModelFileError`, a damaged journal `JournalDamaged` (refuse to start;
        nothing is overwritten) unless `recover_journal`, when what was recovered and lost is said here and in
        `problem`.
        """
        if not self.model_path:
            return "model_path is empty: nothing learned here survives a restart"
        Path(self.model_path).parent.mkdir(parents=True, exist_ok=True)
        replayed = self.session.restore(self.model_path, recover_journal=self.config.recover_journal)
        text = (f"model {self.model_path}: {len(self.classes)} classes, {self.rec.n_examples} examples "
                f"({replayed} replayed from the label journal)")
        r = self.session.journal.recovery if self.session.journal is not None else None
        if r is not None:
            self.problem = (f"label journal recovered: {r.recovered} records kept, records "
                            f"{', '.join(map(str, r.missing)) or 'none known'} lost"
                            f"{' and an unknown number at its end' if r.unknown_tail else ''}; "
                            f"the damaged file is kept as {r.kept_aside}")
            text += f"; {self.problem}"
        return text

    def save(self) -> str:
        """Write the model now, in this thread (after any background write); returns what was done.

        `InputError` when there is nothing to save or nowhere to save it; `OSError`/`GuardError` on failure.
        """
        if not self.model_path:
            raise InputError("no model path: nothing is saved")
        if self.rec.classifier is None:
            raise InputError("nothing learned yet")
        self.saver.flush()  # no background write may land after this one (a model path means a saver)
        try:
            self.session.snapshot(self.model_path)
        except (OSError, GuardError) as exc:
            self._durability_problem(f"saving {self.model_path} failed: {exc}")
            raise
        self.saves += 1
        return f"saved {self.model_path}"

    def _save_quietly(self) -> None:
        if self.model_path and self.rec.classifier is not None:
            self.session.snapshot(self.model_path)

    def _background_save_failed(self, exc: Exception) -> None:
        self._durability_problem(f"saving {self.model_path} failed: {exc}")
        if self._save_failed is not None:
            self._save_failed(exc)

    def _durability_problem(self, text: str) -> str:
        self.problem = text
        self.session.counts["durability_errors"] += 1
        log.error("%s", text)
        return text

    def _changed(self) -> None:
        if self.autosave and self.saver is not None and self.rec.classifier is not None:
            self.saver.request()  # the label itself is already in the journal

    def reset(self) -> None:
        """Forget everything (classes, questions, teachers, journal) and delete the model file."""
        if self.saver is not None:
            self.saver.flush()  # a pending autosave must not resurrect the old model
        self.session.reset()
        if self.model_path:
            Path(self.model_path).unlink(missing_ok=True)  # a restart must not bring the old model back

    def close(self, timeout: float = 60.0) -> bool:
        """Finish pending saves; False when they did not finish in time."""
        return self.saver is None or self.saver.close(timeout)

    # ---------------------------------------------------------- reports
    def decision_payload(self, frame: FrameStep, **extra) -> dict[str, Any]:
        """The decision as the core's record (the node publishes it as `icub_guard_msgs/Decision`: `ros.messages`)."""
        roi = {} if frame.roi is None else {"roi": list(frame.roi.as_tuple())}
        return self.session.decision_payload(frame.step, roi_source=frame.roi_source,
                                             latency_ms=frame.latency_ms, **roi, **extra)

    def query_payload(self, item: Step | Query, **extra) -> dict[str, Any]:
        """A question to the teacher as the core's record (published as `icub_guard_msgs/Query`)."""
        return self.session.query_payload(item, **extra)

    def status(self) -> dict[str, Any]:
        """What /diagnostics reports: classes, examples, learning, the protocol's counts, per-teacher records."""
        fx = self.rec.extractor
        return {"device": fx.device, "backbone": fx.spec.id, "classes": len(self.rec.classes),
                "examples": self.rec.n_examples, "learning": self.learning,
                "model_path": self.model_path or "-", "saves": self.saves + (self.saver.saves if self.saver else 0),
                "defences": ",".join(self.defences.specs) or "-",
                **self.session.counts,
                **{f"teacher.{name}.{k}": f"{v:.3f}" if isinstance(v, float) else v
                   for name, rec in self.session.teachers().items() for k, v in rec.items()}}
