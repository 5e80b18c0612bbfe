"""BackgroundSaver: latest wins, flush waits for the disk, errors are reported and retried."""

import threading
import time

from icub_guard.core.saver import BackgroundSaver


def test_bursts_coalesce_and_flush_waits():
    written, errors = [], []
    state = {"v": 0}

    def save():
        time.sleep(0.05)
        written.append(state["v"])

    s = BackgroundSaver(save, errors.append)
    for v in range(1, 21):
        state["v"] = v
        s.request()
    assert s.flush(timeout=10)
    assert written[-1] == 20  # the newest state is on disk
    assert len(written) < 20  # a burst does not queue twenty writes
    assert s.close() and not errors


def test_errors_are_reported_and_the_next_request_retries():
    calls, errors = [], []
    fail = threading.Event()
    fail.set()

    def save():
        calls.append(1)
        if fail.is_set():
            raise OSError("disk full")

    s = BackgroundSaver(save, errors.append)
    s.request()
    assert s.flush(timeout=5) and len(errors) == 1 and "disk full" in str(errors[0])
    fail.clear()
    s.request()
    assert s.flush(timeout=5) and len(calls) == 2 and s.saves == 1
    s.close()


def test_flush_times_out_on_a_stuck_disk():
    release = threading.Event()
    s = BackgroundSaver(lambda: release.wait(5), lambda e: None)
    s.request()
    assert not s.flush(timeout=0.2)
    release.set()
    assert s.close(timeout=5)
