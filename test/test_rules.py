"""The one accept rule, the one encoding of "rejected" and "fooled", the one set of reasons (core/rules.py).

These pin the rule itself: if "accepted" or a reason string changes, the robot, the attacker and both
evaluations change together, and these tests say so.
"""

import json

import numpy as np
import pytest
import torch

from icub_guard.core import jsonio, rules
from icub_guard.core.recognizer import Decision
from icub_guard.core.rules import REJECTED, Reason, accept_margins, decide, fooled, label_indices, not_ready
from icub_guard.core.session import SessionConfig, Step, TeachingSession
from icub_guard.core.validation import UNKNOWN
from icub_guard.defences.base import _vote

from conftest import make_recognizer

SCORES = np.array([[0.5, 0.2, -1.0],  # top 0, above its threshold 0.1: accepted
                   [0.3, 0.4, 0.0],  # top 1, equal to its threshold 0.4: rejected
                   [0.1000001, 0.1, 0.05],  # top 0, just above 0.1: accepted
                   [-0.5, -0.2, -0.1]])  # top 2, above its threshold -0.3 though negative: accepted
THRESHOLDS = np.array([0.1, 0.4, -0.3])


def test_a_score_equal_to_its_threshold_is_rejected_and_each_class_has_its_own():
    top, ok = decide(SCORES, THRESHOLDS)
    assert top.tolist() == [0, 1, 0, 2] and ok.tolist() == [True, False, True, True]
    # the top class's own threshold decides, not the others'
    top, ok = decide(np.array([[0.35, 0.0, 0.3]]), np.array([0.4, -9.0, -9.0]))
    assert top.tolist() == [0] and ok.tolist() == [False]
    assert label_indices(SCORES, THRESHOLDS).tolist() == [0, REJECTED, 0, 2]


def test_without_thresholds_everything_is_accepted():
    for s in (SCORES, torch.from_numpy(SCORES)):
        top, ok = decide(s, None)
        assert bool(ok.all()) and top.tolist() == [0, 1, 0, 2]


@pytest.mark.parametrize("shape", [(64, 5), (3, 64, 5)])
def test_numpy_and_torch_give_the_same_answer(shape):
    rng = np.random.default_rng(0)
    s = rng.normal(size=shape).round(1)  # rounded: many scores equal to a threshold
    t = rng.normal(size=shape[-1]).round(1)
    top_n, ok_n = decide(s, t)
    for thr in (torch.from_numpy(t), t):  # thresholds as a tensor (a model's buffer) or an array
        top_t, ok_t = decide(torch.from_numpy(s), thr)
        assert np.array_equal(top_t.numpy(), top_n) and np.array_equal(ok_t.numpy(), ok_n)
    assert np.array_equal(label_indices(torch.from_numpy(s), t).numpy(), label_indices(s, t))
    tie = s.max(-1) == t[top_n]
    assert tie.any() and not ok_n[tie].any()  # the case that matters occurs, and is rejected


def test_accept_margins_are_positive_exactly_where_decide_accepts_that_class():
    rng = np.random.default_rng(1)
    s = torch.from_numpy(rng.normal(size=(200, 4)))
    t = torch.from_numpy(rng.normal(size=4) * 0.5)
    a = accept_margins(s, t)
    top, ok = decide(s, t)
    expected = torch.zeros_like(a, dtype=torch.bool)
    expected[torch.arange(len(top))[ok], top[ok]] = True
    assert torch.equal(a > 0, expected)


def test_the_defences_vote_uses_the_same_rule_per_view():
    rng = np.random.default_rng(2)
    s = torch.from_numpy(rng.normal(size=(5, 8, 3)))
    t = torch.tensor([0.2, 0.0, -0.1], dtype=torch.float64)
    top, ok = decide(s, t)
    votes = torch.nn.functional.one_hot(top, 3).double() * ok[..., None]
    assert torch.allclose(_vote(s, t), votes.mean(0) - 0.5 + 1e-3 * s.mean(0))


def test_fooled_is_accepted_with_a_wrong_label_and_a_rejection_never_is():
    assert REJECTED == -1
    labels, y = np.array([0, 1, REJECTED, 2]), np.array([0, 2, 1, 2])
    assert fooled(labels, y).tolist() == [False, True, False, False]
    assert fooled(torch.from_numpy(labels), torch.from_numpy(y)).tolist() == [False, True, False, False]


def test_both_evaluations_score_a_crop_the_same_way():
    from icub_guard.evaluation import defences, security

    labels, y = np.array([0, 1, REJECTED, 2, REJECTED]), np.array([0, 2, 1, 2, 0])
    assert security._accuracy(labels, y) == defences._accuracy(labels, y) == pytest.approx(0.8)


def test_reasons_are_their_plain_strings():
    assert [r.value for r in Reason] == ["accepted", "below_threshold", "no_classes", "one_class", "detector",
                                         "open_set", "not_certified", "low_margin", "confirm"]
    assert all(r == r.value and str(r) == f"{r}" == r.value and Reason(r.value) is r for r in Reason)
    assert json.dumps({"reason": Reason.BELOW_THRESHOLD}) == '{"reason": "below_threshold"}'


class Classes:
    def __init__(self, n):
        self.classes_ = np.array([f"c{i}" for i in range(n)], dtype=object)


def test_two_classes_before_the_guard_names_anything():
    assert (not_ready(None), not_ready(Classes(1)), not_ready(Classes(2))) == (Reason.NO_CLASSES, Reason.ONE_CLASS,
                                                                              None)


@pytest.fixture
def session(extractor, feats7):
    rec = make_recognizer(extractor)
    X, y = feats7["train"]
    for c in ("mug", "duck"):
        rec.learn(X[y == c][:6], c)
    return TeachingSession(rec, SessionConfig.defaults(query_rate_limit=100.0, query_on_reject=True, query_margin=0.0),
                           clock=lambda: 0.0), X[y == "mug"]


def test_every_reason_reaches_the_decision_json_unchanged(session):
    s, X = session
    for r in Reason:
        step = Step(7, Decision("unknown", r == Reason.ACCEPTED, r), X[:1])
        body = json.loads(jsonio.dumps(s.decision_payload(step)))
        assert body["reason"] == r.value and type(body["reason"]) is str


def test_a_rejected_frames_question_carries_below_threshold(session):
    s, X = session
    s.rec.set_thresholds([1e6, 1e6])
    step = s.observe(X[6])
    assert not step.decision.accepted and step.decision.reason is Reason.BELOW_THRESHOLD
    assert step.query is not None and step.query.reason is Reason.BELOW_THRESHOLD
    assert json.loads(jsonio.dumps(s.query_payload(step)))["reason"] == "below_threshold"
    assert json.loads(jsonio.dumps(s.decision_payload(step)))["reason"] == "below_threshold"


def test_the_classifier_and_the_torch_model_use_the_rule(trained, feats7):
    from icub_guard.core.pipeline import GuardModel

    clf = trained.classifier
    X, _ = feats7["val"]
    S = clf.decision_function(X)
    clf.set_thresholds(np.sort(S.max(1))[len(S) // 2] * np.ones(len(clf.classes_)))  # a median frame: rejected
    top, ok = rules.decide(S, clf.thresholds_)
    labels, accepted = clf.decide(S)
    assert np.array_equal(accepted, ok) and 0 < ok.sum() < len(ok)
    assert np.array_equal(labels == UNKNOWN, ~ok)
    assert np.array_equal(clf.predict_indices(X), np.where(ok, top, REJECTED))
    model = GuardModel(trained.extractor, clf.torch_scores(), clf.classes_, clf.thresholds_, reject=True)
    assert np.array_equal(model.accepted(torch.from_numpy(S)).numpy(), ok)
