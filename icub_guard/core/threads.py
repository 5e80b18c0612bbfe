"""numpy's BLAS on one thread while a frame is judged, so its small products do not fight torch for the cores.

A frame is a torch forward (torch's OpenMP threads) followed by a few small numpy matrix products — the
SVM's kernel against its support vectors, the defences' scores, the session's screening — through OpenBLAS,
which keeps a thread pool of its own. Both pools spin while they wait, so on a small CPU each steals the
cores the other needs: on this project's 2-core machine one frame with 8 regions took 211 ms with both
pools at 2 threads and 57 ms with OpenBLAS held to one (the forward alone: 49 ms). A frame's products are a
few rows against at most a few thousand support vectors, which one thread does in well under a
millisecond; training and the evaluations keep every thread.

threadpoolctl lets one Python thread at a time set OpenBLAS's process-wide limit (the first that sets it,
while it lives): a frame judged in another thread runs with the limit as it is, and says so once in the log.
A node's single-threaded executor judges every frame in one thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from threadpoolctl import ThreadpoolController

log = logging.getLogger(__name__)
_lock = threading.Lock()
_depth = 0
_limiter = None
_warned = False


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


@contextmanager
def frame_blas() -> Iterator[None]:
    """numpy's (and scipy's) BLAS on one thread inside the block; the previous limits come back when the last
    of any overlapping blocks (e.g. two nodes' callbacks in one process) ends — the limit is process-wide."""
    global _depth, _limiter, _warned
    with _lock:
        if _depth == 0:
            _limiter = _controller().limit(limits=1, user_api="blas")
            held = [lib.num_threads for lib in _controller().select(user_api="blas").lib_controllers]
            if any(n != 1 for n in held) and not _warned:
                _warned = True
                log.warning("numpy's BLAS keeps %s threads while frames are judged in thread %r: another Python "
                            "thread controls OpenBLAS's limit (threadpoolctl lets one thread set it), so frames may "
                            "be slower on a small CPU", max(held), threading.current_thread().name)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None
_warned = False
