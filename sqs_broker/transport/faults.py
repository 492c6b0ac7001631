"""SQS call failures in the worker: sorted, logged once per outage, retried with backoff."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.response import get_response

from sqs_broker.redact import scrub

logger = logging.getLogger(__name__)


class Fault(Exception):
    """A request SQS did not answer, or answered with an error; ``code`` when it said one."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.code = code


@dataclass
class _Outage:
    since: float
    failures: int = 0
    #: Failures since SQS last answered anything: the backoff's step.
    step: int = 0
    #: The last failure had no answer at all (refused, reset, timed out).
    silent: bool = False


class Faults:
    """Failures per (operation, queue): logged once per outage, and when SQS answers again."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self._outages: dict[tuple[str, str], _Outage] = {}
        self._lock = threading.Lock()

    def failed(self, operation: str, queue: str, exc: BaseException) -> float:
        """Record a failure; the seconds to wait before the next attempt."""
        with self._lock:
            outage = self._outages.get((operation, queue))
            first = outage is None
            if outage is None:
                outage = self._outages[(operation, queue)] = _Outage(time.monotonic())
            silent = not isinstance(exc, Fault | ClientError)
            if outage.silent and not silent:
                outage.step = 0  # SQS answers again, if with an error: start low
            outage.failures += 1
            outage.step += 1
            outage.silent = silent
            step = outage.step
        delay = self.delay(step)
        if first:
            expected = isinstance(exc, Fault | ClientError | BotoCoreError | OSError)
            logger.warning(
                "SQS %s on queue %s failed: %s. Retrying with backoff (at most %g s apart); "
                "logged again when SQS answers.",
                operation,
                queue,
                scrub(describe(exc)),
                self.cap,
                exc_info=not expected,
            )
        else:
            logger.debug("SQS %s on queue %s failed again: %s", operation, queue, describe(exc))
        return delay

    def delay(self, failures: int) -> float:
        """Capped exponential backoff with jitter (half to all of the step)."""
        step = min(self.cap, self.base * 2 ** min(failures - 1, 30))
        return step * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not secrecy

    def answered(self, operation: str, queue: str) -> None:
        """SQS answered: end the outage of (operation, queue), if any, with one log line."""
        if not self._outages:
            return
        with self._lock:
            outage = self._outages.pop((operation, queue), None)
        if outage is not None:
            logger.warning(
                "SQS %s on queue %s answers again after %.1f s and %d failed attempt(s).",
                operation,
                queue,
                time.monotonic() - outage.since,
                outage.failures,
            )

    def failing(self, operation: str, queue: str) -> bool:
        """Whether (operation, queue) is failing now."""
        return (operation, queue) in self._outages

    def relax(self) -> list[tuple[str, str]]:
        """SQS answered something: the outages with no answer at all start their backoff low.

        Only those that backed off more than once, so that a queue SQS cannot
        reach is not tried again on every answer of another. The (operation,
        queue) pairs relaxed.
        """
        if not self._outages:
            return []
        relaxed = []
        with self._lock:
            for key, outage in self._outages.items():
                if outage.silent and outage.step >= 2:
                    outage.step = 0
                    relaxed.append(key)
        return relaxed

    def ongoing(self) -> list[tuple[str, str]]:
        """The (operation, queue) pairs failing now."""
        with self._lock:
            return list(self._outages)


def describe(exc: BaseException) -> str:
    """A one-line account of a failed request."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def answer_of(operation: str, client: Any, response: Any) -> dict[str, Any]:
    """The parsed answer of an asynchronous request; :class:`Fault` unless it is HTTP 200."""
    status = response.status
    body = response.read() or b""
    if status == 200:
        try:
            _, parsed = get_response(
                client.meta.service_model.operation_model(operation), response.response
            )
        except Exception as exc:
            raise Fault(f"unreadable answer ({type(exc).__name__})") from None
        if isinstance(parsed, dict):
            return parsed
        raise Fault("unreadable answer")
    if not body:  # no answer at all: refused, reset, timed out (curl reports 599)
        raise Fault(f"HTTP {status}: {response.reason or 'no answer'}")
    code = message = None
    try:
        _, parsed = get_response(
            client.meta.service_model.operation_model(operation), response.response
        )
        code = parsed.get("Error", {}).get("Code")
        message = parsed.get("Error", {}).get("Message")
    except Exception:  # noqa: S110 - an unparsable error body still has its status
        pass
    text = f"HTTP {status} {code or ''}: {message or response.reason or ''}".replace(" :", ":")
    raise Fault(text.strip(), code)


# --- batched deletes -------------------------------------------------------------
