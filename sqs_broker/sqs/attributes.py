"""Queue attributes: every attribute the faces read, fetched concurrently and shared.

Attributes of many queues are fetched concurrently on a bounded pool and
reused for ``SQS_BROKER_CACHE_TTL`` seconds through Django's cache framework
(:mod:`sqs_broker.cache`), so 100 queues cost about one round-trip of wall
time and a reload storm does not multiply SQS calls, in one process or, with
a shared cache, in all of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqs_broker import cache
from sqs_broker.conf import app_settings
from sqs_broker.sqs.clients import client
from sqs_broker.sqs.errors import error_text
from sqs_broker.sqs.inventory import QueueRef
from sqs_broker.topology import Topology

#: Every attribute the dashboard and the checks read, in one call per queue.
ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "VisibilityTimeout",
    "ReceiveMessageWaitTimeSeconds",
    "DelaySeconds",
    "MessageRetentionPeriod",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "QueueArn",
    "MaximumMessageSize",
)


@dataclass
class QueueState:
    """One queue's attributes as SQS answered, or the error it answered with."""

    ref: QueueRef
    url: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None
    #: The API call that failed ("GetQueueUrl", "AssumeRole", ...), when SQS or STS answered.
    error_operation: str | None = None
    fetched_at: float = 0.0

    @property
    def exists(self) -> bool:
        """False only when SQS answered that the queue does not exist."""
        return self.error_code != "QueueDoesNotExist"

    def int(self, name: str) -> int | None:
        """Attribute ``name`` as an integer; ``None`` when SQS did not give it."""
        value = self.attributes.get(name)
        return int(value) if value not in (None, "") else None


def redrive_policy(state: QueueState) -> dict[str, Any] | None:
    """The queue's RedrivePolicy as ``{"name", "account", "arn", "max_receive_count"}``.

    ``None`` when the queue has none, or one SQS would not have accepted.
    """
    raw = state.attributes.get("RedrivePolicy")
    if not raw:
        return None
    try:
        policy = json.loads(raw)
        arn = str(policy["deadLetterTargetArn"])
        count = int(policy["maxReceiveCount"])
    except (ValueError, KeyError, TypeError):
        return None
    # arn:aws:sqs:REGION:ACCOUNT:NAME
    parts = arn.split(":")
    account = parts[4] if len(parts) >= 6 else None
    return {"name": parts[-1], "account": account, "arn": arn, "max_receive_count": count}


def fetch_one(ref: QueueRef, topo: Topology) -> QueueState:
    """Resolve ``ref``'s URL if needed and read every attribute in :data:`ATTRIBUTES`."""
    state = QueueState(ref, ref.url, fetched_at=time.time())
    try:
        sqs = client(ref.name if ref.source == "predefined" else None, topo)
        if state.url is None:
            state.url = sqs.get_queue_url(QueueName=ref.name)["QueueUrl"]
        answer = sqs.get_queue_attributes(QueueUrl=state.url, AttributeNames=list(ATTRIBUTES))
        state.attributes = dict(answer.get("Attributes", {}))
    except Exception as exc:  # one queue's failure is reported on that queue alone
        state.error, state.error_code = error_text(exc)
        state.error_operation = getattr(exc, "operation_name", None)
    return state


def _states_key(endpoint: str | None) -> str:
    # One entry per endpoint, a dict of states by queue name: Django's local-memory cache
    # keeps 300 entries by default, and 300 queues must not cull each other.
    return cache.key("attributes", endpoint)


def _merge_states(endpoint: str | None, states: dict[str, QueueState | None], ttl: float) -> None:
    """Write ``states`` into the endpoint's entry (``None`` drops a queue)."""
    entry = _states_key(endpoint)
    current = dict(cache.get(entry) or {})
    for name, state in states.items():
        if state is None:
            current.pop(name, None)
        else:
            current[name] = state
    now = time.time()
    longest = max(ttl, app_settings.CACHE_TTL)
    current = {n: st for n, st in current.items() if now - st.fetched_at < longest}
    cache.set_many({entry: current}, longest)


def fetch(
    refs: Iterable[QueueRef], topo: Topology, max_age: float | None = None
) -> list[QueueState]:
    """Attributes of every queue, concurrently, reusing answers younger than ``max_age``.

    Answers are shared through :mod:`sqs_broker.cache`. When another process
    is already asking for the same queues, this one waits for its answers
    (up to ``SQS_BROKER_GATHER_TIMEOUT``) instead of asking SQS again.
    """
    refs = list(refs)
    ttl = app_settings.CACHE_TTL if max_age is None else max_age
    endpoint = topo.endpoint
    entry = _states_key(endpoint)
    results: dict[int, QueueState] = {}

    def take(found: Any) -> None:
        now = time.time()
        for index, ref in enumerate(refs):
            state = (found or {}).get(ref.name)
            if (
                index not in results
                and isinstance(state, QueueState)
                and state.ref == ref
                and now - state.fetched_at < ttl
            ):
                results[index] = state

    if ttl > 0:
        take(cache.get(entry))
    missing = [(i, ref) for i, ref in enumerate(refs) if i not in results]
    lease = None
    if missing and ttl > 0:
        lease = cache.key("lease", endpoint, tuple(sorted(ref.name for _, ref in missing)))
        if not cache.acquire(lease, app_settings.GATHER_TIMEOUT):
            wanted = {ref.name: ref for _, ref in missing}

            def complete(found: Any) -> bool:
                now = time.time()
                return isinstance(found, dict) and all(
                    isinstance(found.get(n), QueueState)
                    and found[n].ref == ref
                    and now - found[n].fetched_at < ttl
                    for n, ref in wanted.items()
                )

            take(cache.wait_for([entry], app_settings.GATHER_TIMEOUT, complete).get(entry))
            missing = [(i, ref) for i, ref in enumerate(refs) if i not in results]
            lease = None
    try:
        if missing:
            started = time.time()
            workers = min(app_settings.MAX_WORKERS, len(missing))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sqs-attrs") as pool:
                states = list(pool.map(lambda ref: fetch_one(ref, topo), (r for _, r in missing)))
            for (index, _ref), state in zip(missing, states, strict=True):
                # One pass, one age: its answers expire together, so the next load
                # asks for all of them under one lease. Answers stamped one by one
                # expire a few at a time, and loads in other processes would each
                # ask for a different few under leases that do not exclude each other.
                state.fetched_at = started
                results[index] = state
            _merge_states(endpoint, {ref.name: results[i] for i, ref in missing}, ttl)
    finally:
        if lease is not None:
            cache.delete(lease)
    return [results[i] for i in range(len(refs))]


def forget(queue: str, topo: Topology) -> None:
    """Drop one queue's cached attributes (after a purge or a move), for every process."""
    _merge_states(topo.endpoint, {queue: None}, app_settings.CACHE_TTL)
