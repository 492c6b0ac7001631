"""The consumer's progress per queue, as the hub thread reports it: the worker's liveness.

The channel calls :func:`expect` when it starts consuming a queue, :func:`progressed`
each time SQS answers a receive of it (with or without messages) and each time it
finds no free prefetch slot (busy is not stalled), and :func:`forget` when it stops.
Wall-clock times, in a module-level dict under a lock: the heartbeat reads them
from another thread.
"""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
#: queue -> (seconds without progress after which it is stalled, last progress).
_queues: dict[str, tuple[float, float]] = {}


def expect(queue: str, stall_after_seconds: float) -> None:
    """``queue`` is consumed from now on: stalled after ``stall_after_seconds`` with no progress."""
    with _lock:
        _queues[queue] = (stall_after_seconds, time.time())


def progressed(queue: str) -> None:
    """SQS answered a receive of ``queue``, or the consumer had no free slot for it."""
    with _lock:
        known = _queues.get(queue)
        if known is not None:
            _queues[queue] = (known[0], time.time())


def forget(queue: str) -> None:
    """``queue`` is no longer consumed."""
    with _lock:
        _queues.pop(queue, None)
