"""The guard's defences online: review each frame's decision on its crop, refit as the teacher teaches.

`OnlineDefences(specs)` is built from the guard's `defences` parameter (an ordered list of specs,
empty: the reject option alone). `review(rec, decision, crop)` runs the crop through the
`DefencePipeline` over the recogniser's current model and returns the decision the guard publishes:
its label and `reason` (the stage that rejected: `below_threshold`, `detector`, `open_set`,
`not_certified`), each stage's score, the certified radius. Detectors are fitted on the examples
the recogniser holds — and refitted after every update — with their thresholds set on those same
examples (online there is no held-out set: the false-reject rate on new data is higher than asked).
A detector that cannot be fitted yet (too few examples) is skipped and says so in the decision's
`notes`; the reject option decides meanwhile. A detector that calibrates on held-out scores
(`open_set`) gets each held example's scores from a classifier fitted without it (stratified
k-fold): the guard's own scores on what it learned sit at its margins, and Weibulls fitted there
call most new crops unknown. Where a class has too few examples for that, the training fit stays
and the notes say so.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

import numpy as np
import torch
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from ..core.rules import REJECTED, Reason, not_ready
from ..core.validation import UNKNOWN, check_text_list
from . import make_defence
from .base import NotFitted
from .pipeline import DefencePipeline, compose

log = logging.getLogger(__name__)

HELD_OUT_FOLDS = 5  # k of the k-fold held-out scores open_set is fitted on online


def parse_specs(text: str) -> list[str]:
    """The guard's `defences` parameter ("multicrop,mahalanobis:false_reject=0.1") as checked specs; control
    characters and empty items are refused (`InputError`, a `ValueError`)."""
    return check_specs(check_text_list(text, "defences"))


def check_specs(specs) -> list[str]:
    """The specs (a list, or the parameter's comma-separated text: `parse_specs`), each built once and composed,
    so a bad list is refused (`ValueError`) before it is applied."""
    if isinstance(specs, str):
        return parse_specs(specs)
    specs = [str(s).strip() for s in specs if str(s).strip()]
    compose([make_defence(s) for s in specs])
    return specs


class OnlineDefences:
    """The guard's defences over its current model. `seed`: None (the default) seeds the randomised defences from
    the OS's entropy, so no one can know their noise; an int makes a run reproducible (tests, evaluations).
    Each rebuild after an update takes the next seed of one sequence: the noise never restarts."""

    def __init__(self, specs: str | list[str] | tuple[str, ...] = (), seed: int | None = None):
        self.specs = check_specs(specs)
        self.seed = seed
        self._seeds = np.random.SeedSequence(seed)
        built = [make_defence(s) for s in self.specs]
        #: adversarial augmentation, if listed: it shapes what is learned, not the decisions
        self.augment = next((d for d in built if d.stage == "train"), None)
        self.decides = any(d.stage != "train" for d in built)
        self._pipe: DefencePipeline | None = None
        self._model = None
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.specs)

    def _pipeline(self, rec) -> DefencePipeline:
        model = rec.guard_model()  # rebuilt by the recogniser only after an update
        if model is not self._model:
            seed = int(self._seeds.spawn(1)[0].generate_state(1)[0] >> 1)  # a defence takes 31 bits
            pipe = DefencePipeline(model, [make_defence(s, seed=seed) for s in self.specs])
            if pipe.detectors:
                X, y, _ = rec.examples()
                f = torch.from_numpy(np.asarray(X, np.float64)).to(model.thresholds.device)
                y_idx = torch.from_numpy(np.asarray(y, np.int64)).to(f.device)
                pipe.fit(f, y_idx)
                self._fit_held_out(rec, pipe, X, y, f, y_idx)
            for note in pipe.notes:
                log.info("%s", note)
            self._pipe, self._model = pipe, model
        return self._pipe

    def _fit_held_out(self, rec, pipe: DefencePipeline, X, y, f: torch.Tensor, y_idx: torch.Tensor) -> None:
        """Refit the detectors that want held-out scores on cross-validated ones (see the module docstring)."""
        wants = [d for d in pipe.detectors if d.held_out and d.fitted]
        if not wants:
            return
        names = np.asarray(rec.classes, dtype=object)[y]
        cv = StratifiedKFold(max(2, min(HELD_OUT_FOLDS, int(np.bincount(y).min()))), shuffle=True,
                             random_state=0)  # which fold holds what: no secret
        try:
            s = cross_val_predict(clone(rec.classifier), X, names, cv=cv, method="decision_function")
            s = torch.from_numpy(np.asarray(s, np.float64)).to(f.device)
            for d in wants:
                d.calibrate(f, s, y_idx)
        except (NotFitted, ValueError) as exc:  # a class too small to hold out, or too few held-out right
            pipe.notes.append(f"{', '.join(d.name for d in wants)}: fitted on training scores ({exc})")

    def review(self, rec, decision, crop: np.ndarray, features: np.ndarray | None = None):
        """The decision after the defences (the classifier's own when there are none or nothing is learned).

        `features`: the crop's, when the caller has them (detectors alone then need no second forward)."""
        if not self.decides or not_ready(rec.classifier) is not None:
            return decision
        with self._lock:
            pipe = self._pipeline(rec)
            x = torch.from_numpy(np.asarray(crop, np.float32)[None]).to(self._model.thresholds.device)
            f = None if features is None else torch.from_numpy(
                np.asarray(features, np.float64).reshape(1, -1)).to(x.device)
            dd = pipe.decide(x, f)[0]
            notes = tuple(pipe.notes)
        if dd.label != REJECTED:
            return replace(decision, label=rec.classes[dd.label], accepted=True, reason=Reason.ACCEPTED,
                           stages=dd.stage_scores, radius=dd.radius, notes=notes)
        return replace(decision, label=UNKNOWN, accepted=False, reason=dd.reason, stages=dd.stage_scores,
                       radius=dd.radius, notes=notes)

    def augmented_features(self, rec, crop: np.ndarray, label: str) -> np.ndarray | None:
        """With `adv_augment`: features of `crop` attacked away from `label` on the current model (None: not
        listed, or fewer than two classes to attack between)."""
        if self.augment is None or rec.classifier is None or len(rec.classes) < 2 or label not in rec.classes:
            return None
        adv = self.augment.attacked(rec.guard_model(), np.asarray(crop)[None], [rec.classes.index(label)])
        return rec.features(adv)
