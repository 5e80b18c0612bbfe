"""The guard's decision rules, each written once: what "accepted" and "fooled" mean, and why a frame was rejected.

Every classifier, torch model, attack, defence and evaluation judges a sample by these functions, so the
robot, the attacker and the evaluation cannot disagree about the reject option. Pure (no ROS, no torch
import): the functions take numpy arrays or torch tensors and return the same kind.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

#: the label index of a rejected sample (where a class index is expected); the string label is `UNKNOWN`
REJECTED = -1


class Reason(StrEnum):
    """Why the guard decided as it did; a `str`, so JSON and ROS payloads carry the plain value.

    A decision's reason is one of the first seven; a question to the teacher carries its decision's reason
    unchanged (a rejected frame is asked about with `below_threshold`, `detector`, …) or one of the two
    query-only reasons.
    """

    ACCEPTED = "accepted"
    BELOW_THRESHOLD = "below_threshold"  # the top score is not above its class's threshold
    NO_CLASSES = "no_classes"  # nothing learned yet
    ONE_CLASS = "one_class"  # one class: the robot needs two before it names anything
    DETECTOR = "detector"  # a defence's detector flagged the crop
    OPEN_SET = "open_set"  # open-set recalibration: "unknown" won
    NOT_CERTIFIED = "not_certified"  # randomised smoothing abstained
    # query-only
    LOW_MARGIN = "low_margin"  # accepted, but the top-2 margin is below `query_margin`
    CONFIRM = "confirm"  # a label held by the screening, asked back


def not_ready(classifier) -> Reason | None:
    """`NO_CLASSES` / `ONE_CLASS` while fewer than two classes are known, else None: a one-vs-all score means
    nothing without a rival class, so the guard names nothing until then."""
    if classifier is None:
        return Reason.NO_CLASSES
    return Reason.ONE_CLASS if len(classifier.classes_) < 2 else None


def _take_top(scores, top):
    """scores[..., top[...]] for numpy or torch."""
    if isinstance(scores, np.ndarray):
        return np.take_along_axis(scores, top[..., None], -1)[..., 0]
    return scores.gather(-1, top[..., None])[..., 0]


def _like(thresholds, scores):
    """`thresholds` as the scores' kind, dtype (and device): the guard judges at the scores' precision, as the
    attacker's margins (`accept_margins`) do."""
    if isinstance(scores, np.ndarray):
        return np.asarray(thresholds, dtype=scores.dtype)
    if hasattr(thresholds, "to"):
        return thresholds.to(scores.device, scores.dtype)
    return scores.new_tensor(np.asarray(thresholds))


def decide(scores, thresholds=None):
    """(top class index, accepted) per sample of a …×K score array (numpy or torch, any leading dims).

    Accepted: the top score strictly above its own class's threshold, so a score equal to the threshold is
    rejected (SVM-adv at threshold 0 rejects a sample on the boundary). `thresholds` None: no reject option,
    everything is accepted.
    """
    top = scores.argmax(-1)
    if thresholds is None:
        return top, top >= 0
    return top, _take_top(scores, top) > _like(thresholds, scores)[top]


def label_indices(scores, thresholds=None):
    """The class index per sample, `REJECTED` where the reject option refuses it."""
    top, ok = decide(scores, thresholds)
    if isinstance(top, np.ndarray):
        return np.where(ok, top, REJECTED)
    return top.masked_fill(~ok, REJECTED)


def fooled(labels, y):
    """Accepted with a wrong label (`labels`: indices, `REJECTED` where rejected): the one way a sample counts
    as an error. A rejection is never an error: under attack the attack was caught, on clean data the robot
    asks instead of answering wrongly."""
    return (labels != REJECTED) & (labels != y)


def accept_margins(scores, thresholds=None):
    """a_l = f_l − max(thr_l, max_{m≠l} f_m), N×K torch: > 0 iff l is the strict top class and `decide` accepts
    it (the same rule, with a margin); the reject-aware attacker's objective."""
    import torch

    top2 = scores.topk(2, dim=1).values if scores.shape[1] > 1 else torch.cat([scores, scores - 1], 1)
    is_top = scores >= top2[:, :1]
    best_other = torch.where(is_top, top2[:, 1:2], top2[:, :1])
    if thresholds is not None:
        best_other = torch.maximum(best_other, _like(thresholds, scores)[None, :])
    return scores - best_other
