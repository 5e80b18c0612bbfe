"""Poisoning-robust teaching: teacher identity, screening (ask back / refuse), containment, undo, persistence."""

import json

import numpy as np
import pytest

from icub_guard.core.errors import InputError
from icub_guard.core.journal import LabelJournal
from icub_guard.core.screening import LabelScreen, ScreeningConfig
from icub_guard.core.session import Feedback, SessionConfig, TeachingSession, parse_feedback
from icub_guard.core.svm import OneVsAllSVC, RLSClassifier
from icub_guard.sim.teachers import StrategicLiar, TargetedLiar

from conftest import make_recognizer

CLASSES = ("mug", "duck", "teddy")


@pytest.fixture
def feats(feats7):
    X, y = feats7["train"]
    return {c: X[y == c] for c in CLASSES}


def make_session(extractor, model=None, **screening):
    rec = make_recognizer(extractor)
    return TeachingSession(rec, SessionConfig.defaults(query_rate_limit=100.0),
                           journal=LabelJournal.beside(model) if model else None,
                           screening=ScreeningConfig.defaults(**screening))


def say(s, x, label, teacher="alice"):
    """A correction-style label (by decision id) for features x."""
    return s.feedback(Feedback(label, decision_id=s.observe(x).decision_id, teacher=teacher))


def teach_honestly(s, feats, n=6, teacher="alice"):
    """Every label true; one asked back is confirmed by the same teacher (two answers agree: learned)."""
    for i in range(n):
        for c in CLASSES:
            out = say(s, feats[c][i], c, teacher)
            if out.action == "quarantined":
                out = s.feedback(Feedback(c, query_id=out.query.query_id, teacher=teacher))
            assert out.action == "learned", out.describe()


# ------------------------------------------------------------------ undo in the estimators
@pytest.mark.parametrize("make", [lambda: OneVsAllSVC(C=10.0, gamma=0.2, reject=True, tol=1e-4),
                                  lambda: RLSClassifier(kernel="rbf", gamma=0.2)])
def test_forget_equals_a_refit_without_those_examples(make, rng):
    X = np.vstack([rng.normal(c, 1.0, (25, 6)) for c in range(4)]).astype(np.float32)
    y = np.repeat(np.array(list("abcd"), dtype=object), 25)
    clf = make().partial_fit(X[:2], y[:2])
    for i in range(2, len(X)):  # online, one example at a time: ids 0..99 in order
        clf.partial_fit(X[i : i + 1], y[i : i + 1])
    gone = np.flatnonzero((y == "b") | (np.arange(len(X)) % 5 == 0))  # a whole class, and a fifth of the rest
    removed = clf.forget(clf.example_ids_[gone])
    assert sorted(removed.tolist()) == gone.tolist()  # ids 0..99 were given in order, so id = row here
    keep = np.setdiff1d(np.arange(len(X)), gone)
    ref = make().fit(X[keep], y[keep])
    assert clf.classes_.tolist() == ["a", "c", "d"] == ref.classes_.tolist()
    T = rng.normal(1.5, 1.5, (40, 6)).astype(np.float32)
    assert np.max(np.abs(clf.decision_function(T) - ref.decision_function(T))) < 2e-3
    assert set(clf.example_ids_.tolist()) == set(keep.tolist())  # ids are stable, never reused
    clf.partial_fit(X[:1], y[:1])
    assert clf.example_ids_.max() == len(X)


def test_ids_survive_a_saved_state(rng):
    X = rng.normal(size=(30, 5)).astype(np.float32)
    y = np.array(list("ab") * 15, dtype=object)
    clf = OneVsAllSVC(gamma=0.3).fit(X, y)
    clf.forget([0, 29])
    again = OneVsAllSVC(gamma=0.3).set_state(clf.get_state())
    assert again.example_ids_.tolist() == clf.example_ids_.tolist()
    again.partial_fit(X[:1], y[:1])
    assert again.example_ids_.max() == 30  # the next id continues, 29 is not given out again


# ------------------------------------------------------------------ teacher identity
def test_feedback_names_its_teacher_and_bad_names_change_nothing(extractor, feats):
    assert parse_feedback("mug").teacher == "default"
    assert parse_feedback(json.dumps({"decision_id": 3, "label": "mug", "teacher": " ａlice "})).teacher == "alice"
    s = make_session(extractor)
    step = s.observe(feats["mug"][0])
    for bad in ("", "x" * 33, "bob\x00", 7, None, ["alice"]):
        with pytest.raises(InputError):
            s.feedback(json.dumps({"decision_id": step.decision_id, "label": "mug", "teacher": bad}))
    assert s.rec.n_examples == 0 and s.teachers() == {}
    out = s.feedback(json.dumps({"decision_id": step.decision_id, "label": "mug", "teacher": "alice"}))
    assert out.action == "learned" and out.teacher == "alice"
    (eid,) = out.report.ids
    assert s.provenance[eid].teacher == "alice" and s.provenance[eid].decision == step.decision_id
    assert s.teachers()["alice"]["examples"] == 1


# ------------------------------------------------------------------ screening
def test_a_lie_against_the_evidence_is_held_asked_back_and_settled_by_agreement(extractor, feats):
    s = make_session(extractor)
    teach_honestly(s, feats)
    n, trust, before = s.rec.n_examples, s.screen.teacher("mallory").trust, s.counts.copy()
    out = say(s, feats["mug"][10], "duck", "mallory")  # a mug, called a duck
    assert out.action == "quarantined" and s.rec.n_examples == n  # held, not learned
    assert out.verdict.evidence["knn"] > 0.5 and out.verdict.suspicion >= s.screen.config.quarantine_at
    q = out.query
    assert q.reason == "confirm" and (q.label, q.teacher, q.ask) == ("duck", "mallory", "alice")
    payload = s.query_payload(q)
    assert (payload["reason"], payload["label"], payload["ask"]) == ("confirm", "duck", "alice")
    again = s.feedback(Feedback("mug", query_id=q.query_id, teacher="alice"))  # duck vs mug: ask a third time
    assert again.action == "quarantined" and again.resolved == "contradicted" and s.rec.n_examples == n
    final = s.feedback(Feedback("mug", query_id=again.query.query_id, teacher="alice"))
    assert final.action == "learned" and final.label == "mug" and final.resolved == "confirmed"
    assert s.rec.n_examples == n + 1 and s.provenance[final.report.ids[0]].teacher == "alice"
    assert s.screen.teacher("mallory").trust < trust  # the lie was contradicted
    assert s.counts["quarantined"] - before["quarantined"] == 1 and s.counts["confirmed"] - before["confirmed"] == 1


def test_trust_banked_on_confirmations_cannot_silence_strong_evidence(extractor, feats):
    """Issue 20 §5: a lone teacher whose early labels were asked back and confirmed (by itself) reached a trust
    (~0.97) at which even a label both the neighbours and the model contradict passed, so its lies were never
    asked back and its trust could never fall. Evidence from `evidence_check` is asked back whatever the trust."""
    s = make_session(extractor)
    s.configure_screening(quarantine_at=0.0)  # early on, every label is asked back and confirmed: trust is banked
    teach_honestly(s, feats, teacher="mallory")
    s.configure_screening(quarantine_at=ScreeningConfig().quarantine_at)
    banked = s.screen.teacher("mallory").trust
    assert banked > 0.95
    n = s.rec.n_examples
    out = say(s, feats["mug"][10], "duck", "mallory")  # a mug, called a duck: every piece of evidence disagrees
    assert out.verdict.suspicion < s.screen.config.quarantine_at  # trust alone would have let it pass
    assert out.action == "quarantined" and out.verdict.reason == "evidence" and s.rec.n_examples == n
    out = s.feedback(Feedback("mug", query_id=out.query.query_id, teacher="mallory"))
    out = s.feedback(Feedback("mug", query_id=out.query.query_id, teacher="mallory"))
    assert out.action == "learned" and out.label == "mug"  # the truth, not the lie
    assert s.screen.teacher("mallory").trust < banked  # and the lie cost trust


def test_a_teacher_contradicting_itself_loses_trust_even_when_its_label_is_agreed():
    """Asked back alone, a random liar confirms a true label after a lie in between: that is no evidence of
    honesty. Before, (mug, duck, mug) credited it a full agreement, so such checks banked trust."""
    screen = LabelScreen(ScreeningConfig())
    prior = screen.teacher("mallory").trust
    screen.settle([("mug", "mallory"), ("duck", "mallory"), ("mug", "mallory")], "mug")
    assert screen.teacher("mallory").trust < prior and screen.teacher("mallory").counts["inconsistent"] == 1
    screen.settle([("mug", "alice"), ("mug", "alice")], "mug")  # consistent: credited as before
    assert screen.teacher("alice").trust > prior and screen.teacher("alice").counts["inconsistent"] == 0
    screen.settle([("duck", "bob"), ("mug", "bob"), ("mug", "bob")], "mug")  # its label refuted: one disagreement
    assert screen.teacher("bob").disagree == pytest.approx(ScreeningConfig().prior_weight * 0.1 + 1.0)


def test_answers_that_never_agree_are_refused(extractor, feats):
    s = make_session(extractor, max_answers=3)
    teach_honestly(s, feats)
    n = s.rec.n_examples
    out = say(s, feats["mug"][10], "duck", "mallory")
    out = s.feedback(Feedback("teddy", query_id=out.query.query_id, teacher="mallory"))
    out = s.feedback(Feedback("mug", query_id=out.query.query_id, teacher="mallory"))
    assert out.action == "refused" and out.resolved == "no_agreement" and s.rec.n_examples == n


def test_an_honest_label_is_learned_and_screening_off_learns_everything(extractor, feats):
    s = make_session(extractor)
    teach_honestly(s, feats)
    assert say(s, feats["teddy"][10], "teddy").action == "learned"
    off = make_session(extractor, enabled=False)
    teach_honestly(off, feats)
    out = say(off, feats["mug"][10], "duck", "mallory")
    assert out.action == "learned" and out.verdict.reason == "screening_off"


def test_containment_holds_a_label_that_would_give_one_teacher_the_class(extractor, feats):
    s = make_session(extractor, max_teacher_share=0.75, share_min_examples=6)
    teach_honestly(s, feats, n=2, teacher="alice")
    actions = [say(s, feats["mug"][i], "mug", "bob").action for i in range(2, 12)]
    held = [a for a in actions if a == "quarantined"]
    assert held, actions  # bob may not hold more than 3/4 of "mug" without alice confirming
    mug = s.rec.classes.index("mug")
    _, y, ids = s.rec.examples()
    bobs = sum(s.provenance[int(i)].teacher == "bob" for i in ids[y == mug])
    assert bobs / np.sum(y == mug) <= 0.75
    last = say(s, feats["mug"][12], "mug", "bob")
    assert last.action == "quarantined" and last.verdict.reason == "share" and last.query.ask == "alice"
    assert s.feedback(Feedback("mug", query_id=last.query.query_id, teacher="alice")).action == "learned"


def test_screening_settings_are_checked():
    for bad in (dict(quarantine_at=0.9, refuse_at=0.5), dict(max_answers=1), dict(neighbours=0),
                dict(prior_trust=1.0), dict(audit_rate=-0.1), dict(enabled="yes"), dict(margin_scale=0),
                dict(evidence_check=1.5), dict(evidence_check="high")):
        with pytest.raises(InputError):
            ScreeningConfig(**bad)
    screen = LabelScreen(ScreeningConfig())
    assert screen.teacher("new").trust == pytest.approx(ScreeningConfig().prior_trust)


# ------------------------------------------------------------------ undo in the session
def test_forget_teacher_removes_exactly_its_examples_and_equals_a_refit(extractor, feats):
    s = make_session(extractor, enabled=False)  # every label learned: the undo is what is tested
    teach_honestly(s, feats, n=5, teacher="alice")
    for i in range(5, 9):  # mallory's lies: mugs called ducks, and a class only she taught
        say(s, feats["mug"][i], "duck", "mallory")
    say(s, feats["teddy"][9], "robot", "mallory")
    assert "robot" in s.rec.classes
    with pytest.raises(InputError, match="unknown teacher"):
        s.forget_teacher("nobody")
    removed = s.forget_teacher("mallory")
    assert len(removed) == 5 and "robot" not in s.rec.classes
    assert all(p.teacher == "alice" for p in s.provenance.values()) and len(s.provenance) == s.rec.n_examples == 15
    X, y, _ = s.rec.examples()
    clf = s.rec.classifier
    ref = OneVsAllSVC(kernel=clf.kernel, C=clf.C, gamma=clf.gamma_, reject=True, tol=clf.tol)
    ref.fit(X, np.asarray(s.rec.classes, dtype=object)[y])
    T = np.vstack([feats[c][10:14] for c in CLASSES])
    assert np.max(np.abs(clf.decision_function(T) - ref.decision_function(T))) < 2e-3
    assert s.teachers()["mallory"]["trust"] < 0.01 and s.teachers()["mallory"]["forgotten"] == 5
    s.configure_screening(enabled=True)
    assert say(s, feats["mug"][12], "mug", "mallory").action == "refused"  # distrusted from now on


def test_forget_one_decision(extractor, feats):
    s = make_session(extractor, enabled=False)
    teach_honestly(s, feats, n=4)
    wrong = say(s, feats["mug"][5], "duck")
    n = s.rec.n_examples
    assert s.forget_decision(wrong.decision_id) == wrong.report.ids and s.rec.n_examples == n - 1
    with pytest.raises(InputError):
        s.forget_decision(wrong.decision_id)


def test_teachers_trust_and_undo_survive_a_restart(extractor, feats, tmp_path):
    model = tmp_path / "model.npz"
    s = make_session(extractor, model)
    s.restore(model)
    teach_honestly(s, feats, n=4, teacher="alice")
    say(s, feats["mug"][10], "duck", "mallory")  # held (asked back), never learned
    s.snapshot(model)
    for i in range(4, 6):  # after the snapshot: in the journal only
        say(s, feats["teddy"][i], "teddy", "bob")
    removed = s.forget_teacher("bob")  # journaled too
    assert len(removed) == 2
    revived = make_session(extractor, model)
    revived.restore(model)
    assert revived.rec.n_examples == s.rec.n_examples == 12
    assert {i: (p.teacher, p.decision) for i, p in revived.provenance.items()} == \
        {i: (p.teacher, p.decision) for i, p in s.provenance.items()}
    assert revived.teachers()["mallory"]["trust"] == pytest.approx(s.teachers()["mallory"]["trust"])
    assert revived.next_id >= s.next_id - 1  # decision ids are not reused after a restart
    later = say(revived, feats["duck"][12], "duck", "alice")
    assert later.report.ids[0] > max(s.provenance)  # nor example ids


# ------------------------------------------------------------------ the liars the evaluation uses
def test_targeted_and_strategic_liars():
    t = TargetedLiar("mug", "duck", name="eve")
    assert [t.answer(c) for c in ("mug", "teddy", "mug")] == ["duck", "teddy", "duck"] and t.counts["lies"] == 2
    sl = StrategicLiar(1.0, seed=0, name="eve")
    assert sl.answer("mug", [("duck", 0.1), ("mug", 0.05)]) == "duck"  # names the robot's best wrong guess
    assert sl.answer("mug", [("mug", 0.3), ("teddy", 0.1)]) == "teddy"
    assert sl.review(True, "duck", "mug") == "mug"  # corrections stay honest: they earn trust


def test_evaluate_teaching_runs_every_scenario_and_writes_its_report(tmp_path):
    from icub_guard.evaluation import TeachingEvalConfig, run_teaching_evaluation, write_teaching_report

    cfg = TeachingEvalConfig(rounds=2, frames_per_object=3, test_per_class=3, seeds=(0,), flips=(0.0, 0.5),
                             input_size=128, device="cpu")
    res = run_teaching_evaluation(cfg)
    rows = {(r["scenario"], r["screening"]): r for r in res.summary()}
    names = {"honest", "liar 0.5", "targeted liar", "strategic liar 0.5", "honest + liar 0.3"}
    assert {n for n, _ in rows} == names and len(rows) == 2 * len(names)
    for r in rows.values():
        assert 0.0 <= r["final_accuracy"] <= 1.0 and len(r["curve"]) == 2
    for screening in ("off", "on"):  # an honest teacher tells no lie, so none can be learned
        assert not any(k.startswith("lie") for k in rows[("honest", screening)]["labels"])
    undo = rows[("honest + liar 0.3", "on")]
    assert undo["after_forget"] is not None and undo["refit_gap"] < 2e-3
    files = write_teaching_report(res, tmp_path)
    assert files["markdown"] == "teaching.md" and (tmp_path / "teaching_accuracy.png").stat().st_size > 0
    assert "| liar 0.5 |" in (tmp_path / "teaching.md").read_text()
    assert "| liar 0.5 | on | " in (tmp_path / "teaching.md").read_text()  # per seed, not only the mean
    assert [p["seed"] for p in rows[("liar 0.5", "on")]["per_seed"]] == [0]
