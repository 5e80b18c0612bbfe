"""Background model saving for a node: the image callback never waits for the disk.

`request()` marks the model dirty; a worker thread writes the newest state (latest
wins: ten labels in a burst give one or two writes, never a queue). `flush()`
waits until what was requested is on disk — nodes call it before shutting down,
so a restart loses nothing a teacher taught. The write itself is atomic
(`persistence.save`), so a crash mid-write leaves the previous file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class BackgroundSaver:
    def __init__(self, save: Callable[[], None], on_error: Callable[[Exception], None]):
        self._save, self._on_error = save, on_error
        self._cond = threading.Condition()
        self._requested = 0  # generation asked for
        self._done = 0  # generation written (or failed)
        self._stop = False
        self.saves = 0
        self._thread = threading.Thread(target=self._run, name="model-saver", daemon=True)
        self._thread.start()

    def request(self) -> None:
        with self._cond:
            self._requested += 1
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._done == self._requested and not self._stop:
                    self._cond.wait()
                if self._stop and self._done == self._requested:
                    return
                target = self._requested
            try:
                self._save()
                self.saves += 1
            except Exception as exc:  # reported, and the next request tries again
                self._on_error(exc)
            with self._cond:
                self._done = target
                self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every request so far is written; False on timeout."""
        with self._cond:
            target = self._requested
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = 30.0) -> bool:
        ok = self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return ok
