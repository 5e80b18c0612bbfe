"""The teaching protocol on its own, without processes: ids, when to ask, feedback, thresholds, teachers."""

import json
import math

import numpy as np
import pytest

from icub_guard.core import jsonio
from icub_guard.core.errors import InputError
from icub_guard.core.session import (
    DECISION_SCHEMA,
    Feedback,
    LearningDisabled,
    SessionConfig,
    TeachingSession,
    parse_class_thresholds,
    parse_feedback,
)
from icub_guard.defaults import node_defaults
from icub_guard.sim.teachers import MaliciousTeacher, OracleTeacher
from icub_guard.sim.truth import GroundTruth, Tally

from conftest import make_recognizer


class Clock:
    """A test clock: advances `step` seconds per reading (0: only when the test sets `t`)."""

    def __init__(self, step: float = 1.0):
        self.t, self.step = 0.0, step

    def __call__(self):
        self.t += self.step
        return self.t


def make_session(extractor, clock=None, **cfg):
    rec = make_recognizer(extractor)
    config = SessionConfig.defaults(**{"query_rate_limit": 100.0, **cfg})
    return TeachingSession(rec, config, clock=clock or Clock())


@pytest.fixture
def feats(feats7):
    X, y = feats7["train"]
    return {c: X[y == c] for c in ("mug", "duck", "teddy")}


def test_defaults_come_from_the_guards_config_file():
    cfg = SessionConfig.defaults()
    yaml = node_defaults("guard.yaml")
    assert (cfg.query_rate_limit, cfg.query_margin, cfg.threshold) == (
        yaml["query_rate_limit"], yaml["query_margin"], yaml["threshold"])


def test_first_frame_is_asked_and_the_answer_teaches_a_class(extractor, feats):
    s = make_session(extractor)
    step = s.observe(feats["mug"][0])
    assert (step.decision.label, step.decision.reason) == ("unknown", "no_classes")
    assert step.query is not None and step.query.query_id == step.decision_id and step.query.reason == "no_classes"
    report = s.feedback(json.dumps({"query_id": step.query.query_id, "label": "mug"}))
    assert report.action == "learned" and report.report.new_class and s.rec.classes == ["mug"]
    with pytest.raises(InputError, match="unknown or expired"):  # an answered query is closed
        s.feedback(json.dumps({"query_id": step.query.query_id, "label": "mug"}))


def test_a_plain_label_answers_what_a_person_means(extractor, feats):
    """The newest open question asked within the window, else the latest decision (the object in view) if that
    is recent, else nothing; the outcome says which."""
    clock = Clock(step=0.0)
    s = make_session(extractor, clock, plain_label_window=5.0)
    with pytest.raises(InputError, match="no open question and no decision in the last 5 s"):
        s.feedback("mug")
    first = s.observe(feats["mug"][0])  # asked (nothing known)
    clock.t = 0.5
    second = s.observe(feats["mug"][1])  # asked too (rate limit 100/s): the newest open question
    out = s.feedback("mug")
    assert (out.action, out.target, out.decision_id) == ("learned", "newest_query", second.decision_id)
    assert out.answered == second.query.query_id  # the question it closed
    assert "as the answer to the newest open question" in out.describe()
    assert first.query.query_id in s.pending and second.query.query_id not in s.pending
    clock.t = 3.0  # the older question is still open and within the window
    assert s.feedback("mug").decision_id == first.decision_id and not s.pending
    # no open question: the latest decision, which a person's pace still reaches
    s.configure(query_on_reject=False)
    s.observe(feats["duck"][0])
    latest = s.observe(feats["duck"][1])
    assert latest.query is None
    clock.t = 7.5  # 4.5 s after the frame
    out = s.feedback(Feedback("duck", teacher="ann"))
    assert (out.action, out.target, out.decision_id) == ("learned", "latest_decision", latest.decision_id)
    assert out.answered is None
    assert "the object in view" in out.describe() and sorted(s.rec.classes) == ["duck", "mug"]
    clock.t = 8.5  # 5.5 s after it: out of the window, nothing is learned
    with pytest.raises(InputError, match="no decision in the last 5 s"):
        s.feedback("duck")
    s.configure(query_on_reject=True, plain_label_window=60.0)  # a runtime setting, validated
    assert s.feedback("duck").target == "latest_decision"
    with pytest.raises(InputError):
        SessionConfig.defaults(plain_label_window=0.0)
    # an id named is what it names, whatever is newer
    s.observe(feats["teddy"][0])
    assert s.feedback(Feedback("mug", decision_id=first.decision_id)).target == "decision"


def test_decision_id_feedback_corrects_any_recent_decision(extractor, feats):
    s = make_session(extractor, max_pending=3)
    steps = [s.observe(f) for f in feats["duck"][:5]]
    s.feedback(Feedback("duck", decision_id=steps[-1].decision_id))
    with pytest.raises(InputError, match="expired"):  # only the last max_pending decisions are kept
        s.feedback(Feedback("duck", decision_id=steps[0].decision_id))
    assert len(s.recent) == 3 and len(s.pending) <= 3


def test_rate_limit_runs_on_the_sessions_clock(extractor, feats):
    clock = Clock(step=0.0)
    s = make_session(extractor, clock, query_rate_limit=2.0)
    asked = []
    for i in range(10):  # 10 rejected frames at 5 frames a second: 2 s, so 4 questions at most 2/s
        clock.t = i / 5.0
        asked.append(s.observe(feats["mug"][i]).query is not None)
    assert sum(asked) == 4 and asked[0]
    s.configure(query_rate_limit=0.0)
    clock.t = 100.0
    assert s.observe(feats["mug"][0]).query is None  # 0 = never ask


def test_query_on_reject_and_low_margin(extractor, feats):
    s = make_session(extractor)
    for c in ("mug", "duck"):
        s.rec.learn(feats[c][:6], c)
    s.configure(query_on_reject=False, query_margin=0.0)
    assert all(s.observe(f).query is None for f in feats["teddy"][:4])
    s.configure(query_margin=10.0)  # every accepted frame is "unsure" now
    accepted = [st for st in (s.observe(f) for f in feats["mug"][6:10]) if st.decision.accepted]
    assert accepted and all(st.query is not None and st.query.reason == "low_margin" for st in accepted)


@pytest.mark.parametrize("text,match", [
    ("", "empty"), ("unknown", "reserved"), ('{"label": "mug"}', "exactly one"),
    ('{"query_id": 1, "decision_id": 2, "label": "mug"}', "exactly one"), ('{"query_id": "1", "label": "mug"}', "int"),
    ('{"query_id": true, "label": "mug"}', "int"), ('{"query_id": 1, "label": 3}', "str"),
    ('{"query_id": 1e3, "label": "mug"}', "int"), ('{"query_id": [1], "label": "mug"}', "int"),
    ('{"query_id": 1,', "valid JSON"),
    ("{" * 2000 + "}" * 2000, "nested"), ('{"query_id": ' + "9" * 5000 + ', "label": "mug"}', "digits"),
    ('{"query_id": NaN, "label": "mug"}', "NaN"), ("x" * 100_000, "characters"),
])
def test_malformed_feedback_is_an_input_error_and_changes_nothing(extractor, feats, text, match):
    s = make_session(extractor)
    s.observe(feats["mug"][0])
    before = (dict(s.pending), s.latest_query)
    with pytest.raises(InputError, match=match):
        s.feedback(text)
    assert (dict(s.pending), s.latest_query) == before and s.rec.classes == []


def test_learning_off_ignores_feedback_and_keeps_the_query_open(extractor, feats):
    s = make_session(extractor, learning_enabled=False)
    step = s.observe(feats["mug"][0])
    with pytest.raises(LearningDisabled):
        s.feedback("mug")
    assert step.query.query_id in s.pending and s.counts["feedback_ignored_learning_off"] == 1
    s.configure(learning_enabled=True)
    assert s.feedback("mug").label == "mug"


def test_new_classes_get_the_threshold_and_overrides_win(extractor, feats):
    s = make_session(extractor, threshold=0.3, class_thresholds={"duck": -0.2})
    s.rec.learn(feats["mug"][:4], "mug")
    step = s.observe(feats["duck"][0])
    s.feedback(Feedback("duck", decision_id=step.decision_id))
    assert s.thresholds() == {"duck": -0.2, "mug": 0.0}  # mug was learned behind the session's back
    s.feedback(Feedback("teddy", decision_id=s.observe(feats["teddy"][0]).decision_id))
    assert s.thresholds()["teddy"] == 0.3
    s.configure(threshold=0.1)  # a runtime change resets every class; overrides still win
    assert s.thresholds() == {"duck": -0.2, "mug": 0.1, "teddy": 0.1}


def test_a_loaded_models_calibrated_thresholds_survive(extractor, feats):
    rec = make_recognizer(extractor)
    for c in ("mug", "duck"):
        rec.learn(feats[c][:6], c)
    rec.set_thresholds([0.25, 0.4])
    s = TeachingSession(rec, SessionConfig.defaults(threshold=0.0))
    assert s.thresholds() == {"duck": 0.25, "mug": 0.4}


def test_bad_settings_are_refused_as_a_whole(extractor):
    s = make_session(extractor)
    before = s.config
    for bad in ({"query_rate_limit": -1.0}, {"query_margin": 11.0}, {"threshold": math.nan},
                {"class_thresholds": '{"mug": "high"}'}, {"class_thresholds": "[1]"}, {"max_pending": 0}):
        with pytest.raises(InputError):
            s.configure(**bad)
    assert s.config is before
    assert parse_class_thresholds('{"mug": 1}') == {"mug": 1.0} and parse_class_thresholds("  ") == {}


def test_confirm_learns_the_last_accepted_decision(extractor, feats):
    s = make_session(extractor)
    s.observe(feats["mug"][0])
    with pytest.raises(InputError, match="no accepted prediction"):
        s.confirm()
    for c in ("mug", "duck"):
        s.rec.learn(feats[c][:6], c)
    d = s.observe(feats["mug"][7]).decision
    assert d.accepted
    n = s.rec.n_examples
    assert s.confirm().label == d.label and s.rec.n_examples == n + 1


def test_payloads_are_strict_json_with_null_for_nan(extractor, feats):
    s = make_session(extractor)
    s.rec.learn(feats["mug"][:3], "mug")  # one class: its score is NaN
    step = s.observe(feats["mug"][4])
    body = s.decision_payload(step, stamp={"sec": 1, "nanosec": 2})
    text = jsonio.dumps(body)
    assert "NaN" not in text and json.loads(text)["scores"] == {"mug": None}
    assert body["schema"] == DECISION_SCHEMA and body["query_id"] == step.query.query_id
    q = json.loads(jsonio.dumps(s.query_payload(step)))
    assert q["query_id"] == step.decision_id and q["known_classes"] == ["mug"]


def test_reset_forgets_classes_and_open_questions(extractor, feats):
    s = make_session(extractor)
    s.observe(feats["mug"][0])
    s.feedback("mug")
    s.observe(feats["duck"][0])
    s.reset()
    assert s.rec.classes == [] and not s.pending and not s.recent and s.latest_query is None


def test_oracle_answers_and_corrects_once_per_frame():
    t = OracleTeacher()
    assert t.answer("mug") == "mug" and t.answer(None) is None
    assert t.review(True, "duck", "mug") == "mug"
    assert t.review(True, "duck", "mug", asked=True) is None  # the answer to the question corrects it
    assert t.review(False, "unknown", "mug") is None and t.review(True, "mug", "mug") is None
    assert OracleTeacher(correct_mistakes=False).review(True, "duck", "mug") is None


def test_malicious_teacher_lies_at_its_rate_and_is_seeded():
    t = MaliciousTeacher(flip_fraction=0.3, seed=1)
    for c in ("mug", "duck", "teddy"):
        t.observe_label(c)
    answers = [t.answer("mug") for _ in range(400)]
    lies = np.mean([a != "mug" for a in answers])
    assert 0.24 < lies < 0.36 and set(answers) == {"mug", "duck", "teddy"}
    again = MaliciousTeacher(flip_fraction=0.3, seed=1)
    for c in ("mug", "duck", "teddy"):
        again.observe_label(c)
    assert [again.answer("mug") for _ in range(400)] == answers
    with pytest.raises(InputError):
        MaliciousTeacher(flip_fraction=1.5)


def test_ground_truth_and_tally():
    gt = GroundTruth(capacity=2)
    for i, c in enumerate(("mug", "duck", "teddy")):
        gt.add({"sec": i, "nanosec": 0}, c)
    assert gt.get({"sec": 0, "nanosec": 0}) is None and gt.get({"sec": 2, "nanosec": 0}) == "teddy"
    with pytest.raises(InputError):
        gt.get({"sec": "0", "nanosec": 0})
    t = Tally()
    outcomes = [t.add(True, "mug", "mug"), t.add(True, "duck", "mug"), t.add(False, "unknown", "mug"),
                t.add(False, "unknown", "mug", attacked=True, top="duck"), t.add(True, "duck", "mug", True, "duck")]
    assert outcomes == ["correct", "wrong", "rejected", "caught", "fooled"]
    assert t.accuracy == 0.2 and t.reject_rate == 0.4 and t.counts["fooled_without_reject"] == 2


def test_parse_feedback_forms():
    assert parse_feedback("  mug ") == Feedback("mug")
    assert parse_feedback('{"query_id": 3, "label": "mug"}') == Feedback("mug", query_id=3)
    assert parse_feedback('{"decision_id": 4, "label": "MUG"}') == Feedback("MUG", decision_id=4)
