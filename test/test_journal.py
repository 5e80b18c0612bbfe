"""Durable learning: the label journal, snapshots that record their journal position, replay at start-up."""

import logging

import numpy as np
import pytest

from icub_guard.core.errors import ModelFileError
from icub_guard.core.journal import MAGIC, LabelJournal, remove_stale_temp_files
from icub_guard.core.screening import ScreeningConfig
from icub_guard.core.session import Feedback, SessionConfig, TeachingSession

from conftest import make_recognizer


def feats(rng, n=1, d=8):
    return rng.normal(size=(n, d)).astype(np.float32)


def test_append_reopen_and_sequence_numbers(tmp_path, rng):
    j = LabelJournal(tmp_path / "m.npz.journal")
    assert j.open() == []
    rows = [feats(rng) for _ in range(3)]
    assert [j.append(r, f"c{i}") for i, r in enumerate(rows)] == [1, 2, 3]
    j.close()
    again = LabelJournal(tmp_path / "m.npz.journal")
    entries = again.open()
    assert [e.seq for e in entries] == [1, 2, 3] and [e.label for e in entries] == ["c0", "c1", "c2"]
    assert all(np.array_equal(e.features, r) for e, r in zip(entries, rows, strict=True))
    assert again.append(rows[0], "c0") == 4


@pytest.mark.parametrize("cut", [1, 5, 9, 30])
def test_a_torn_last_record_is_dropped_with_a_log_line(tmp_path, rng, caplog, cut):
    path = tmp_path / "m.npz.journal"
    j = LabelJournal(path)
    j.open()
    for i in range(3):
        j.append(feats(rng), f"c{i}")
    j.close()
    data = path.read_bytes()
    path.write_bytes(data[:-cut])  # a crash in the middle of the last append
    caplog.set_level(logging.WARNING, logger="icub_guard.core.journal")
    reopened = LabelJournal(path)
    assert [e.label for e in reopened.open()] == ["c0", "c1"]
    assert "torn last record" in caplog.text and reopened.dropped_tail > 0
    assert reopened.append(feats(rng), "c2") == 3  # appending goes on after the cut
    assert [e.label for e in LabelJournal(path).open()] == ["c0", "c1", "c2"]


def test_a_flipped_bit_ends_the_journal_there(tmp_path, rng):
    path = tmp_path / "j"
    j = LabelJournal(path)
    j.open()
    for i in range(3):
        j.append(feats(rng), f"c{i}")
    j.close()
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # the checksum of the last record no longer matches
    path.write_bytes(bytes(data))
    assert [e.label for e in LabelJournal(path).open()] == ["c0", "c1"]


def test_not_a_journal_is_an_error_and_is_left_alone(tmp_path):
    path = tmp_path / "j"
    path.write_bytes(b"something else entirely")
    with pytest.raises(ModelFileError):
        LabelJournal(path).open()
    assert path.read_bytes() == b"something else entirely"
    path.write_bytes(MAGIC[:5])  # a crash while the file was being created
    assert LabelJournal(path).open() == []


@pytest.fixture
def taught(extractor, feats7, tmp_path):
    """A session with a journal beside tmp/model.npz, and a teacher's labels to give it."""
    X, y = feats7["train"]
    order = np.random.default_rng(0).permutation(len(X))[:40]
    return tmp_path / "model.npz", X[order], y[order]


def new_session(extractor, model):
    rec = make_recognizer(extractor)
    # screening off: every label is learned, so counts are exact (screening has its own tests)
    return TeachingSession(rec, SessionConfig.defaults(), journal=LabelJournal.beside(model),
                           screening=ScreeningConfig(enabled=False))


def teach(session, X, y):
    for x, label in zip(X, y, strict=True):
        session.feedback(Feedback(label, decision_id=session.observe(x).decision_id))


def test_restart_equals_a_session_that_never_stopped(extractor, taught, feats7):
    model, X, y = taught
    s = new_session(extractor, model)
    s.restore(model)
    teach(s, X[:25], y[:25])
    assert s.snapshot(model) == 25
    teach(s, X[25:], y[25:])  # acknowledged, in the journal only: then the process dies
    journal = LabelJournal.beside(model).path
    assert sorted(p.name for p in model.parent.iterdir()) == sorted([journal.name, model.name])
    assert [e.seq for e in LabelJournal(journal).entries()] == list(range(26, 41))  # compacted

    revived = new_session(extractor, model)
    assert revived.restore(model) == 15
    assert revived.rec.n_examples == s.rec.n_examples and revived.rec.classes == s.rec.classes
    Xt, _ = feats7["test"]
    assert np.allclose(revived.rec.classifier.decision_function(Xt), s.rec.classifier.decision_function(Xt),
                       atol=1e-4)


def test_without_a_snapshot_the_journal_alone_restores_everything(extractor, taught):
    model, X, y = taught
    s = new_session(extractor, model)
    s.restore(model)
    teach(s, X[:10], y[:10])
    revived = new_session(extractor, model)
    assert revived.restore(model) == 10 and revived.rec.n_examples == 10 and not model.exists()


def test_reset_forgets_the_journal_too(extractor, taught):
    model, X, y = taught
    s = new_session(extractor, model)
    s.restore(model)
    teach(s, X[:6], y[:6])
    s.reset()
    revived = new_session(extractor, model)
    assert revived.restore(model) == 0 and revived.rec.classes == []


def test_stale_temp_files_are_removed_and_a_bad_model_file_is_refused(extractor, taught):
    model, X, y = taught
    s = new_session(extractor, model)
    s.restore(model)
    teach(s, X[:6], y[:6])
    s.snapshot(model)
    for name in (f".{model.name}.abc123.tmp", f".{model.name}.journal.99.tmp"):
        (model.parent / name).write_bytes(b"x" * 100)  # what a kill during a save leaves
    assert len(remove_stale_temp_files(model)) == 2
    assert sorted(p.name for p in model.parent.iterdir()) == sorted([model.name, model.name + ".journal"])
    model.write_bytes(model.read_bytes()[:1000])  # truncated: unreadable
    before = model.read_bytes()
    with pytest.raises(ModelFileError):
        new_session(extractor, model).restore(model)
    assert model.read_bytes() == before  # never overwritten
