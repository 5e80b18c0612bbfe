"""Durable learning: the label journal, snapshots that record their journal position, replay at start-up."""

import numpy as np
import pytest

from icub_guard.core.errors import ModelFileError
from icub_guard.core.journal import MAGIC, JournalDamaged, LabelJournal, remove_stale_temp_files
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
def test_a_torn_last_record_is_dropped_and_said(tmp_path, rng, cut):
    path = tmp_path / "m.npz.journal"
    j = LabelJournal(path)
    j.open()
    for i in range(3):
        j.append(feats(rng), f"c{i}")
    j.close()
    data = path.read_bytes()
    path.write_bytes(data[:-cut])  # a crash in the middle of the last append
    reopened = LabelJournal(path)
    assert [e.label for e in reopened.open()] == ["c0", "c1"]
    assert reopened.dropped_tail > 0 and reopened.recovery is None  # said, and not damage
    assert reopened.append(feats(rng), "c2") == 3  # appending goes on after the cut
    assert [e.label for e in LabelJournal(path).open()] == ["c0", "c1", "c2"]


def _journal(path, rng, n=6):
    j = LabelJournal(path)
    j.open()
    offsets = []
    for i in range(n):
        offsets.append(path.stat().st_size)
        j.append(feats(rng), f"c{i}")
    j.close()
    return offsets


def _flip(data: bytearray, at: int) -> bytearray:
    data[at] ^= 0xFF
    return data


DAMAGE = {  # damage at rest to a journal of six records (record k starts at offsets[k], seq k + 1)
    "a flipped byte in a middle record": lambda d, o: _flip(d, o[2] + 40),
    "a flipped length field": lambda d, o: _flip(d, o[2] + 9),
    "a record cut out": lambda d, o: d[: o[2]] + d[o[3]:],
    "4 KiB zeroed in the middle": lambda d, o: d[: o[1]] + bytearray(4096) + d[o[1] + 4096:],
    "the last record's checksum": lambda d, o: _flip(d, len(d) - 3),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_refused_untouched_then_recovered_on_request(tmp_path, rng, damage):
    path = tmp_path / "m.npz.journal"
    offsets = _journal(path, rng, 6 if "zeroed" not in damage else 60)
    original = path.read_bytes()
    damaged = bytes(DAMAGE[damage](bytearray(original), offsets))
    path.write_bytes(damaged)
    with pytest.raises(JournalDamaged, match="is damaged") as err:
        LabelJournal(path).open()
    assert "recover_journal" in str(err.value) and "torn" not in str(err.value)
    assert path.read_bytes() == damaged and list(tmp_path.iterdir()) == [path]  # the evidence untouched

    j = LabelJournal(path)
    labels = [e.label for e in j.open(recover=True)]
    r = j.recovery
    assert r is not None and r.kept_aside.read_bytes() == damaged  # kept aside, byte for byte
    named = {f"c{k - 1}" for k in r.missing}
    assert not set(labels) & named and len(labels) >= 4  # every record that verifies; the rest named
    assert r.missing or r.unknown_tail
    assert j.append(feats(rng), "new") == j.last_seq
    assert [e.label for e in LabelJournal(path).open()][-1] == "new"  # the recovered journal opens clean


def test_not_a_journal_is_an_error_and_is_left_alone(tmp_path):
    path = tmp_path / "j"
    path.write_bytes(b"something else entirely")
    with pytest.raises(ModelFileError):
        LabelJournal(path).open()
    assert path.read_bytes() == b"something else entirely"
    path.write_bytes(MAGIC[:5])  # a crash while the file was being created
    assert LabelJournal(path).open() == []


def test_a_failed_append_leaves_the_journal_as_it_was(tmp_path, rng, monkeypatch):
    """A full disk mid-append: the partial record is cut back at once, so what is appended later stays readable."""
    import os

    path = tmp_path / "j"
    j = LabelJournal(path)
    j.open()
    j.append(feats(rng), "c0")
    before = path.read_bytes()
    real = os.pwrite

    def half_then_full(fd, data, offset):
        real(fd, data[: len(data) // 2], offset)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", half_then_full)
    with pytest.raises(OSError, match="No space"):
        j.append(feats(rng), "lost")
    monkeypatch.setattr(os, "pwrite", real)
    assert path.read_bytes() == before  # exactly as before the failed append
    assert j.append(feats(rng), "c1") == 2  # the failed one took no sequence number
    assert [e.label for e in LabelJournal(path).open()] == ["c0", "c1"]


FULL_DISK = r"""
import os, resource, signal, sys
import numpy as np
from icub_guard.core.journal import LabelJournal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk (ENOSPC)
j = LabelJournal(sys.argv[1]); j.open()
rng = np.random.default_rng(0)
acked = [j.append(rng.normal(size=(1, 64)).astype(np.float32), "early")]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(sys.argv[1]) + 100, hard))  # the next one does not fit
try:
    j.append(rng.normal(size=(1, 64)).astype(np.float32), "refused")
except OSError:
    pass
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space freed
for _ in range(20):
    acked.append(j.append(rng.normal(size=(1, 64)).astype(np.float32), "later"))
print(len(acked), flush=True)
os._exit(0)  # no close, no snapshot: as a SIGKILL
"""


def test_labels_acknowledged_after_a_full_disk_survive_a_kill(tmp_path):
    """In a real process, with a real short write: 20 of 20 were lost before the journal cut back failed appends."""
    import subprocess
    import sys

    path = tmp_path / "m.npz.journal"
    out = subprocess.run([sys.executable, "-c", FULL_DISK, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    entries = LabelJournal(path).open()
    assert len(entries) == int(out.stdout) == 21 and [e.label for e in entries].count("later") == 20


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


def test_a_label_the_journal_refuses_is_neither_learned_nor_counted(extractor, taught, monkeypatch):
    import os

    model, X, y = taught
    s = new_session(extractor, model)
    s.restore(model)
    teach(s, X[:4], y[:4])
    n, learned = s.rec.n_examples, s.counts["learned"]

    def full(fd, data, offset):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OSError):
        teach(s, X[4:5], y[4:5])
    assert s.rec.n_examples == n and s.counts["learned"] == learned  # memory holds only what the disk holds
    monkeypatch.undo()
    teach(s, X[5:7], y[5:7])
    revived = new_session(extractor, model)
    assert revived.restore(model) == 6 and revived.rec.n_examples == s.rec.n_examples == n + 2


@pytest.mark.parametrize("snapshot", ["deleted", "older"])
def test_a_snapshot_missing_beside_its_journal_stops_the_start(extractor, taught, snapshot):
    model, X, y = taught
    s = new_session(extractor, model)
    s.restore(model)
    teach(s, X[:10], y[:10])
    s.snapshot(model)
    old = model.read_bytes()
    teach(s, X[10:20], y[10:20])
    s.snapshot(model)  # the journal now starts after record 20
    teach(s, X[20:25], y[20:25])
    if snapshot == "deleted":
        model.unlink()
    else:
        model.write_bytes(old)  # a backup restored over the model: records 11-20 are in neither file
    files = {p.name: p.read_bytes() for p in model.parent.iterdir()}
    with pytest.raises(JournalDamaged, match=r"records (1|11)-20 are lost"):
        new_session(extractor, model).restore(model)
    assert {p.name: p.read_bytes() for p in model.parent.iterdir()} == files  # nothing touched

    revived = new_session(extractor, model)
    assert revived.restore(model, recover_journal=True) == 5  # what verifies, the loss named and kept aside
    r = revived.journal.recovery
    assert r.missing[:1] == [1 if snapshot == "deleted" else 11] and r.missing[-1] == 20
    assert revived.rec.n_examples == (5 if snapshot == "deleted" else 15)
    again = new_session(extractor, model)  # and from then on it starts clean
    assert again.restore(model) == 5 and again.journal.recovery is None


def test_a_reset_replays_over_an_older_snapshot(extractor, taught):
    model, X, y = taught
    s = new_session(extractor, model)
    s.restore(model)
    teach(s, X[:6], y[:6])
    s.snapshot(model)
    s.reset()  # the guard deletes the model file after this; a crash before that must not revive the model
    teach(s, X[6:8], y[6:8])
    revived = new_session(extractor, model)
    assert revived.restore(model) == 2 and revived.rec.n_examples == 2
