"""Demo tasks: a quick one, a slow one, one that fails under a backoff policy, a FIFO one."""

from __future__ import annotations

import time

from celery import shared_task


@shared_task
def add(x: int, y: int) -> int:
    """Quick: returns at once."""
    return x + y


@shared_task
def slow(seconds: float = 5.0) -> float:
    """Slow: sleeps, so a worker shows it as active."""
    time.sleep(seconds)
    return seconds


@shared_task(acks_late=True, acks_on_failure_or_timeout=False)
def flaky(reason: str = "demo failure") -> None:
    """Always fails. Left unacknowledged, SQS redelivers it on the backoff policy's schedule.

    List it in a predefined queue's ``backoff_tasks`` (see the README) to see
    the policy in action.
    """
    raise RuntimeError(reason)


@shared_task(bind=True, acks_late=True, acks_on_failure_or_timeout=False)
def backoff_probe(self, path: str) -> None:
    """Like ``flaky``, but first appends the time and the delivery's receive count to ``path``.

    One line per delivery, ``<unix time> <ApproximateReceiveCount>``, so the
    backoff schedule can be read back. The receive count is in the task's
    delivery_info when SQS_BROKER_TELEMETRY is on ("?" otherwise).
    """
    count = (self.request.delivery_info or {}).get("sqs_receive_count", "?")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{time.time():.3f} {count}\n")
    raise RuntimeError(f"backoff probe, delivery {count}")


@shared_task
def ordered(group: str, n: int) -> str:
    """Routed to the FIFO queue ``demo-ordered.fifo``: same-group tasks run in order."""
    return f"{group}:{n}"


@shared_task(acks_late=True)
def journal(path: str, tag: str, seconds: float = 0.0) -> str:
    """Appends ``tag`` to the file ``path``, then sleeps: each execution leaves one line.

    Acknowledged late, so a worker killed while it sleeps leaves the message to
    another worker: the reliability tests count the lines to prove nothing is
    lost and nothing runs more often than SQS's at-least-once delivery allows.
    """
    import os

    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{tag} {os.getpid()}\n")
    time.sleep(seconds)
    return tag


@shared_task(acks_late=True)
def measure(data: str, path: str, seconds: float = 0.0) -> int:
    """Appends the length and a digest of ``data`` to ``path``, then sleeps; returns the length.

    For task arguments larger than SQS carries (offloaded to S3): each run
    leaves one short line, ``<length> <sha256 prefix> <pid>``, however large
    ``data`` is, and its result is a number, not the data again.
    """
    import hashlib
    import os

    digest = hashlib.sha256(data.encode()).hexdigest()[:16]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{len(data)} {digest} {os.getpid()}\n")
    time.sleep(seconds)
    return len(data)
