"""The worker's SQS requests: made on a few threads, each with a deadline, completed on the hub.

A botocore client (connect and read timeouts, no retries of its own) makes each
call on a small thread pool; its completion is handed back to the event loop's
thread through a self-pipe the hub reads, so the channel's state (QoS, callbacks,
timers) changes on the hub thread only. A watchdog on the hub ends a request
whose deadline and grace passed without a completion (its late answer goes to
``on_late``, never to ``on_done``), so a queue is never left waiting on a
request that no longer runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

#: Called on the hub with ``(answer, None)`` or ``(None, error)``.
OnDone = Callable[[Any, BaseException | None], None]
#: Called with an answer nobody waits for any more (abandoned, or after closing).
OnLate = Callable[[Any], None]


class NoAnswer(Exception):
    """A request that had no answer within its deadline."""


@dataclass(eq=False)
class Request:
    operation: str
    queue: str
    started: float
    deadline: float
    on_done: OnDone
    on_late: OnLate | None = None
    done: bool = False
    future: Future[None] | None = field(default=None, repr=False)


class Threads:
    """A few daemon threads running calls: unlike ThreadPoolExecutor's, the interpreter's
    exit does not wait for them, so a long poll in flight cannot hold up a worker's exit
    beyond what :meth:`Requests.close` chooses to wait."""

    def __init__(self, workers: int, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]]
        self._calls = queue.SimpleQueue()
        for n in range(workers):
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True).start()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._calls.put((future, function, args))
        return future

    def _work(self) -> None:
        while True:
            future, function, args = self._calls.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as exc:
                future.set_exception(exc)


class Requests:
    """SQS calls on ``workers`` threads; completions run on the hub thread in arrival order."""

    def __init__(self, workers: int, grace: float = 2.0, watch_every: float = 0.5) -> None:
        self.grace = grace
        self.watch_every = watch_every
        self.executor = Threads(workers, "sqs_broker-io")
        self._done: deque[tuple[Request | None, Any, BaseException | None]] = deque()
        self._pending: set[Request] = set()
        self._lock = threading.Lock()
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._hub: Any = None
        self._watchdog: Any = None
        self.hub_thread: int | None = None
        self.closed = False
        #: Requests ended by the watchdog, for the tests and benchmarks.
        self.abandoned = 0

    def attach(self, hub: Any) -> None:
        """Read completions and run the watchdog on ``hub``; call from the hub's thread."""
        if self._hub is hub:
            return
        self._hub = hub
        self.hub_thread = threading.get_ident()
        hub.add_reader(self._read, self._on_readable)
        self._watchdog = hub.call_repeatedly(self.watch_every, self.watch)

    def on_hub(self) -> bool:
        """Whether the caller runs on the hub's thread (or no hub is attached yet)."""
        return self.hub_thread is None or threading.get_ident() == self.hub_thread

    def submit(
        self,
        operation: str,
        queue: str,
        call: Callable[[], Any],
        timeout: float,
        on_done: OnDone,
        on_late: OnLate | None = None,
    ) -> Request:
        """Run ``call`` on a thread; ``on_done`` on the hub within ``timeout`` + grace seconds."""
        now = time.monotonic()
        request = Request(operation, queue, now, now + timeout, on_done, on_late)
        self._pending.add(request)
        request.future = self.executor.submit(self._run, request, call)
        return request

    def post(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the hub thread soon; callable from any thread.

        Once closed there is no hub to run it: it runs at once, on the caller's thread.
        """
        with self._lock:
            closed = self.closed
            if not closed:
                self._done.append((None, function, None))
        if closed:
            self._call(function)
            return
        self._wake()

    def pending(self, operation: str | None = None) -> list[Request]:
        return [r for r in self._pending if operation is None or r.operation == operation]

    def _run(self, request: Request, call: Callable[[], Any]) -> None:
        try:
            answer, error = call(), None
        except BaseException as exc:  # handed to on_done, which sorts and logs it
            answer, error = None, exc
        with self._lock:
            late = self.closed
            if not late:
                self._done.append((request, answer, error))
        if late:
            if request.on_late is not None and error is None:
                request.on_late(answer)
            return
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._write, b"\0")
        except BlockingIOError:  # the pipe is full: the hub has reading to do anyway
            pass
        except OSError:  # closed
            pass

    def _on_readable(self) -> None:
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass
        except OSError:
            return
        self.complete()

    def complete(self) -> None:
        """Run the completions that arrived; on the hub thread."""
        while True:
            try:
                request, answer, error = self._done.popleft()
            except IndexError:
                return
            if request is None:
                self._call(answer)
                continue
            if request.done:  # abandoned by the watchdog: the answer came too late
                if request.on_late is not None and error is None:
                    self._call(request.on_late, answer)
                continue
            request.done = True
            self._pending.discard(request)
            self._call(request.on_done, answer, error)

    def _call(self, function: Callable[..., None], *args: Any) -> None:
        try:
            function(*args)
        except Exception:
            # A bug of ours: said loudly, but the other completions still run.
            logger.exception("Handling an SQS answer failed")

    def watch(self) -> None:
        """End the requests whose deadline and grace passed; on the hub thread."""
        now = time.monotonic()
        for request in list(self._pending):
            if now > request.deadline + self.grace and not request.done:
                request.done = True
                self._pending.discard(request)
                self.abandoned += 1
                waited = now - request.started
                self._call(request.on_done, None, NoAnswer(f"no answer within {waited:.0f} s"))

    def close(self, timeout: float, receives: float | None = None) -> None:
        """Wait up to ``timeout`` s for the requests running (``receives`` s for receives).

        What answers later goes to ``on_late`` on its thread, while the process lives.
        """
        with self._lock:
            self.closed = True
            leftover = list(self._done)
            self._done.clear()
        if self._hub is not None:
            # A hub already closed has forgotten its readers.
            with contextlib.suppress(Exception):
                self._hub.remove(self._read)
            if self._watchdog is not None:
                self._watchdog.cancel()
        for request, answer, error in leftover:
            if request is None:
                # Posted to the hub and not run yet (an acknowledgement from another
                # thread, say): run now, or a delete collected just before the close is lost.
                self._call(answer)
            elif request.on_late is not None and error is None:
                self._call(request.on_late, answer)
        started = time.monotonic()
        others = [r.future for r in self._pending if r.future and r.operation != "ReceiveMessage"]
        receiving = [
            r.future for r in self._pending if r.future and r.operation == "ReceiveMessage"
        ]
        if others:
            wait(others, timeout)
        if receiving:
            bound = timeout if receives is None else receives
            wait(receiving, max(0.0, bound - (time.monotonic() - started)))
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
