"""The consumer's liveness, measured where the work happens: when each queue last progressed.

A worker whose consumer stopped consuming (a request that never answers, a
stuck event loop) still heartbeats from its telemetry thread; only the
consumer loop knows it is stuck. So the transport reports here, from the
event loop's thread:

* :func:`expect` when the channel starts consuming a queue, with the seconds
  after which silence means stalled (the long poll's wait, the request
  deadline's margin and a few seconds);
* :func:`progressed` each time SQS answers a receive of the queue (with or
  without messages; a request that fails or has no answer is no progress, so
  a worker cut off from SQS reads as stalled) and each time the scheduler
  finds no free prefetch slot: a busy worker is not stalled;
* :func:`forget` when consumption of the queue stops.

The heartbeat thread reads :func:`snapshot` and writes it with the heartbeat;
the readers judge ``"stalled"`` from it. Everything here is memory under a
lock: no I/O, and nothing of Django or Celery, so the event loop never waits
on more than a dictionary update.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Liveness:
    """One reading of the consumer's progress.

    ``progress`` maps each consumed queue to the wall-clock time (Unix
    seconds) it last progressed, or started being consumed; ``stall_after``
    is the longest silence any of them is allowed (0 when none is consumed);
    ``stalled`` the queues silent for longer than their own allowance, sorted.
    The heartbeat keeps only the longest allowance, by which the readers
    judge every queue: give every queue the same one.
    """

    progress: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    stall_after: float = 0.0
    stalled: tuple[str, ...] = ()
    #: Seconds until the next queue would become overdue without progress (None: none can).
    due_in: float | None = None
    #: The wall-clock time of this reading.
    at: float = 0.0

    @property
    def oldest(self) -> float | None:
        """The earliest last progress among the consumed queues (None when none is consumed)."""
        return min(self.progress.values()) if self.progress else None

    def as_heartbeat(self) -> dict[str, object]:
        """What the heartbeat stores: ``{"queues": {name: unix seconds}, "stall_after": s}``.

        Empty when no queue is consumed or the transport reports no progress:
        the readers then cannot judge the consumer and say nothing about it.
        """
        if not self.progress:
            return {}
        return {
            "queues": {name: round(at, 3) for name, at in sorted(self.progress.items())},
            "stall_after": round(self.stall_after, 3),
        }


class _Queue:
    __slots__ = ("last", "stall_after")

    def __init__(self, last: float, stall_after: float) -> None:
        self.last = last  # monotonic seconds
        self.stall_after = stall_after


class Tracker:
    """Last progress per queue, kept under a lock; the module's functions use one of these.

    Times are kept on the monotonic clock (a clock step must not fake a
    stall) and given out as wall-clock seconds, which the heartbeat's
    readers compare with the heartbeat's own time.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._queues: dict[str, _Queue] = {}
        self._listeners: list[Callable[[], None]] = []

    def expect(self, queue: str, stall_after: float) -> None:
        """``queue`` is consumed from now on: silent for ``stall_after`` seconds, it is stalled.

        A queue already consumed keeps its last progress and takes the new allowance.
        """
        if not stall_after > 0:
            raise ValueError(
                f"stall_after must be a number of seconds above 0; got {stall_after!r}"
            )
        with self._lock:
            current = self._queues.get(queue)
            if current is None:
                self._queues[queue] = _Queue(self._clock(), float(stall_after))
            else:
                current.stall_after = float(stall_after)

    def progressed(self, queue: str) -> None:
        """A receive of ``queue`` completed, or no prefetch slot was free: it is not stalled.

        A queue not expected is ignored: consumption of it has stopped (or not begun).
        """
        now = self._clock()
        with self._lock:
            current = self._queues.get(queue)
            if current is None:
                return
            recovered = now - current.last > current.stall_after
            current.last = now
            listeners = list(self._listeners) if recovered else []
        # Outside the lock: a listener only sets an event, but must not re-enter.
        for listener in listeners:
            listener()

    def progressed_all(self) -> None:
        """Every consumed queue progressed: the worker is busy in a way that blocks reporting.

        The heartbeat thread calls it while a task runs inside the event loop
        (the solo pool), which cannot report meanwhile.
        """
        for queue in list(self._names()):
            self.progressed(queue)

    def _names(self) -> list[str]:
        with self._lock:
            return list(self._queues)

    def forget(self, queue: str) -> None:
        """Consumption of ``queue`` stopped: its silence no longer means anything."""
        with self._lock:
            self._queues.pop(queue, None)

    def clear(self) -> None:
        """Forget every queue (a consumer restarting all of them, or a test)."""
        with self._lock:
            self._queues.clear()

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when a stalled queue progresses again (from the reporting thread).

        The heartbeat thread registers one that wakes it, so recovery is
        written at once; it finds a new stall itself from :attr:`Liveness.due_in`.
        """
        with self._lock:
            if callback not in self._listeners:
                self._listeners.append(callback)

    def unlisten(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``."""
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def snapshot(self) -> Liveness:
        """The last progress of every consumed queue, its allowance, and the overdue ones."""
        with self._lock:
            now = self._clock()
            wall = time.time()
            queues = [(name, q.last, q.stall_after) for name, q in self._queues.items()]
        progress: dict[str, float] = {}
        stalled: list[str] = []
        due: list[float] = []
        for name, last, allowance in queues:
            silent = now - last
            progress[name] = wall - silent
            if silent > allowance:
                stalled.append(name)
            else:
                due.append(allowance - silent)
        return Liveness(
            progress=MappingProxyType(progress),
            stall_after=max((q[2] for q in queues), default=0.0),
            stalled=tuple(sorted(stalled)),
            due_in=min(due) if due else None,
            at=wall,
        )


#: The worker's tracker: the transport reports to it, the heartbeat reads it.
tracker = Tracker()

expect = tracker.expect
progressed = tracker.progressed
forget = tracker.forget
snapshot = tracker.snapshot
