"""A backoff policy as kombu applies it: attempts, waits and cumulative times.

kombu's ``QoS.apply_backoff_policy`` runs when a delivery of a listed task is
rejected. It reads the delivery's ``ApproximateReceiveCount`` (n) and sets
that delivery's visibility timeout to ``policy[n]``. So the wait *before*
attempt n+1 is ``policy[n]``: with ``{1: 10, 2: 20}`` attempt 2 comes 10 s
after attempt 1 fails, attempt 3 20 s after attempt 2 fails. (The Celery
guide's table pairs "attempt 2" with 20 s; this module follows the code.)
Past the last key the queue's own visibility timeout applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    """Attempt ``attempt`` starts ``delay`` s after the previous one failed."""

    attempt: int
    delay: int
    cumulative: int

    def as_dict(self) -> dict[str, int]:
        """The row as a plain dict (attempt, delay, cumulative)."""
        return asdict(self)


def schedule(policy: Mapping[int, int]) -> list[Step]:
    """The attempts a policy produces, after the first one (which has no wait).

    Task runtime is not counted: ``cumulative`` is the least time from the
    first delivery to the start of each attempt. kombu looks the policy up
    with the integer receive count, so keys that are not integers (``"1"``
    from hand-written JSON, say) never apply and are not part of the schedule.
    """
    steps: list[Step] = []
    total = 0
    for receive_count in sorted(
        k for k in policy if isinstance(k, int) and not isinstance(k, bool)
    ):
        delay = int(policy[receive_count])
        total += delay
        steps.append(Step(receive_count + 1, delay, total))
    return steps


def as_rows(policy: Mapping[Any, Any] | None) -> list[dict[str, int]]:
    """:func:`schedule` as JSON-ready rows: ``[{"attempt", "delay", "cumulative"}]``."""
    return [step.as_dict() for step in schedule(policy or {})]
