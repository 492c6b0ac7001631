"""Publishing tasks to SQS: the ETA guard, native SQS delays, FIFO options, batches.

**The ETA guard.** A worker that receives a task with an ETA keeps the SQS
message unacknowledged until the ETA. If that hold outlasts the queue's
visibility timeout, SQS delivers the message again and the task runs twice
(or more). The guard runs for every task the Celery app publishes and
compares the hold with the *effective* visibility timeout of the target
queue (the queue's own ``VisibilityTimeout`` attribute, read once per
process; for a queue that does not exist yet, the ``visibility_timeout``
transport option kombu will create it with). ``SQS_BROKER_ETA_GUARD``
decides: ``error`` raises :class:`EtaGuardError`, ``warn`` logs, ``off``
does nothing.

**Native delays.** SQS can hold a message itself for up to 900 s on a
standard queue (``DelaySeconds``; kombu 5.7 reads a ``delay_seconds``
message property). With ``SQS_BROKER_NATIVE_DELAY`` (default on) a
countdown or ETA is published with ``delay_seconds = min(delay, 900)``, so
no worker holds a waiting message and only the part of a delay beyond 900 s
counts against the visibility timeout. The ``eta`` header stays, so the
task still never runs before its ETA. FIFO queues take no per-message delay
(SQS rejects it; kombu drops it with a warning): there the whole delay is
held by the worker.

**Why not only a ``before_task_publish`` handler.** Celery calls signal
receivers inside ``try/except Exception`` and only logs what they raise, so
a handler cannot stop a publish. The guard therefore wraps the app's task
sender (``app.amqp.send_task_message``, the function that sends
``before_task_publish``), through Celery's ``amqp`` class hook
(:class:`GuardedAMQP`). :func:`install` puts it in place; the Django app
calls it in ``ready()``.

**Large messages.** The same sender sends through :func:`sqs_broker.payloads.sending.sized`:
a message over its queue's limit goes to S3, or raises ``MessageTooLarge``.

**FIFO.** :func:`fifo_options` and :func:`publish_fifo` set
``MessageGroupId`` and a ``MessageDeduplicationId`` derived from the task id,
so publishing the same task twice within SQS's 5-minute window is dropped.

**Batches.** :func:`publish_many` publishes many signatures with
``SendMessageBatch`` (up to 10 messages and a byte budget per request). Every
message is built by Celery and kombu exactly as ``.delay()`` builds it: each
signature goes through ``apply_async`` and kombu's own ``_put``, and only
kombu's final ``SendMessage`` call is collected instead of made. An
unmodified worker cannot tell the difference.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from sqs_broker import limits, sqs
from sqs_broker.cache import Local
from sqs_broker.celery_types import AMQP, channel_client
from sqs_broker.conf import app_settings
from sqs_broker.payloads import sending
from sqs_broker.topology import Topology

if TYPE_CHECKING:
    from celery import Celery, Signature
    from celery.result import AsyncResult

logger = logging.getLogger(__name__)

#: SQS's longest per-message delay and most entries per batch (see :mod:`sqs_broker.limits`).
MAX_DELAY_SECONDS = limits.MAX_DELAY_SECONDS
MAX_BATCH_ENTRIES = limits.MAX_BATCH_ENTRIES
#: Bytes of message bodies and attributes per batch request. SQS allows
#: 1 MiB since 2025, but a queue's ``MaximumMessageSize`` can be lower
#: (256 KiB was the default for years), so stay within the older limit.
DEFAULT_MAX_BATCH_BYTES = 262_144
#: Attempts per batch entry before it is reported as failed.
DEFAULT_ATTEMPTS = 3
#: Characters SQS accepts in a message group or deduplication id.
_FIFO_ID_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
)


class EtaGuardError(ValueError):
    """A task's ETA would outlive its queue's visibility timeout: it would run again."""

    def __init__(
        self, task: str, queue: str, delay: float, hold: float, limit: int, sqs_delay: int
    ) -> None:
        self.task, self.queue, self.delay = task, queue, delay
        self.hold, self.limit, self.sqs_delay = hold, limit, sqs_delay
        super().__init__(explain(task, queue, delay, hold, limit, sqs_delay))


class PublishError(RuntimeError):
    """Some tasks of a batch were not accepted by SQS after every attempt."""

    def __init__(self, failed: dict[str, str], results: list[AsyncResult]) -> None:
        self.failed = failed
        self.results = results
        shown = ", ".join(f"{task_id} ({reason})" for task_id, reason in list(failed.items())[:10])
        more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        super().__init__(
            f"{len(failed)} of {len(results)} tasks were not published: {shown}{more}."
        )


# --- the ETA guard -------------------------------------------------------------


def explain(task: str, queue: str, delay: float, hold: float, limit: int, sqs_delay: int) -> str:
    """The guard's message: the task, the delay, the limit and what to change."""
    carried = (
        f"SQS holds it the first {sqs_delay} s, then a worker"
        if sqs_delay
        else "a worker"
        + (" (FIFO queues take no per-message delay)" if queue.endswith(".fifo") else "")
    )
    return (
        f"Task {task!r} is due in {delay:.0f} s on queue {queue!r}: {carried} would hold "
        f"it unacknowledged for {hold:.0f} s, which is not less than the queue's visibility "
        f"timeout of {limit} s, so SQS would deliver it again and it would run more than once. "
        f"Use a delay of at most {limit - 1 + sqs_delay_limit(queue)} s, raise the queue's "
        f"visibility timeout (SQS_VISIBILITY_TIMEOUT, or VisibilityTimeout of a predefined "
        f"queue) above {math.ceil(hold)} s, or set SQS_BROKER_ETA_GUARD to 'warn' or 'off'."
    )


def sqs_delay_limit(queue: str) -> int:
    """The most SQS can delay one message on ``queue`` (its SQS name)."""
    if queue.endswith(".fifo") or not app_settings.NATIVE_DELAY:
        return 0
    return MAX_DELAY_SECONDS


#: Visibility timeouts read, by endpoint and queue name.
_visibility: Local[tuple[str | None, str], int] = Local("visibility timeouts")


def visibility_timeout(queue: str, topo: Topology) -> int:
    """The visibility timeout that applies to ``queue`` (its SQS name), read once.

    kombu receives without a ``VisibilityTimeout`` argument, so the queue's own
    attribute decides, whatever the transport option says. A queue that does
    not exist yet will be created by kombu with the transport option.
    """
    key = (topo.endpoint, queue)
    known = _visibility.get(key)
    if known is not None:
        return known
    options = topo.options
    predefined = options.get("predefined_queues") or {}
    configured = options.get("visibility_timeout")
    default = (
        int(float(configured)) if configured not in (None, "") else limits.KOMBU_VISIBILITY_TIMEOUT
    )
    spec = predefined.get(queue)
    ref = sqs.QueueRef(queue, "predefined" if spec else "declared", spec and spec.get("url"))
    state = sqs.fetch_one(ref, topo)
    if state.error_code == "QueueDoesNotExist" and not predefined:
        value = default
    elif state.error or state.int("VisibilityTimeout") is None:
        # Unknown for now: judge by the configured value and ask again next time.
        logger.warning(
            "Could not read the visibility timeout of queue %r (%s); the ETA guard uses "
            "the configured %s s.",
            queue,
            state.error,
            default,
        )
        return default
    else:
        value = state.int("VisibilityTimeout") or 0
    _visibility.put(key, value)
    return value


def held_by_worker(delay: float, fifo: bool) -> float:
    """Seconds a worker holds a message due in ``delay`` s, with this app's native delays.

    The part SQS can hold itself (up to 900 s on a standard queue, with
    ``SQS_BROKER_NATIVE_DELAY``) does not count against the visibility
    timeout; the rest does. For checks that know only a longest delay.
    """
    if delay <= 0:
        return 0.0
    if fifo or not app_settings.NATIVE_DELAY or delay < 1:
        return delay
    return delay - min(int(delay), MAX_DELAY_SECONDS)


def _eta(message: Any, app: Celery) -> datetime | None:
    headers = getattr(message, "headers", None) or {}
    eta = headers.get("eta")
    body = getattr(message, "body", None)
    if eta is None and isinstance(body, dict):  # task protocol 1
        eta = body.get("eta")
    if not eta:
        return None
    when = eta if isinstance(eta, datetime) else datetime.fromisoformat(str(eta))
    if when.tzinfo is None:
        # Celery's worker reads a naive ETA in the app's timezone.
        when = when.replace(tzinfo=app.timezone if not app.conf.enable_utc else UTC)
    return when


def _target_queue(app: Celery, queue: Any, exchange: Any, routing_key: Any) -> str:
    """The Celery queue a message goes to, resolved as Celery's task sender does."""
    if queue is None and exchange is None:
        return str(app.amqp.default_queue.name)
    if queue is not None:
        return queue if isinstance(queue, str) else queue.name
    return str(routing_key or app.conf.task_default_queue)


def _requested_delay(properties: dict[str, Any]) -> int | None:
    for key in ("delay_seconds", "DelaySeconds"):
        value = properties.get(key)
        if value is not None:
            try:
                return max(0, min(int(value), MAX_DELAY_SECONDS))
            except (TypeError, ValueError, OverflowError):
                return None
    return None


def guard(
    app: Celery,
    name: str,
    message: Any,
    options: dict[str, Any],
    queue: Any = None,
    exchange: Any = None,
    routing_key: Any = None,
) -> None:
    """Add an SQS delay to a delayed task's ``options``, and refuse or warn per the setting.

    ``options`` are the extra publish options that become message properties;
    they are changed in place.
    """
    eta = _eta(message, app)
    if eta is None:
        return
    delay = (eta - datetime.now(UTC)).total_seconds()
    if delay <= 0:
        return
    # Resolved here, past the early returns: most publishes carry no ETA.
    topo = Topology.of(app)
    sqs_name = topo.canonical_name(_target_queue(app, queue, exchange, routing_key))
    fifo = sqs_name.endswith(".fifo")
    properties = {**(getattr(message, "properties", None) or {}), **options}
    requested = _requested_delay(properties)
    if requested is None and not fifo and app_settings.NATIVE_DELAY and delay >= 1:
        # Floor, so SQS never releases the message after its ETA.
        requested = options["delay_seconds"] = min(int(delay), MAX_DELAY_SECONDS)
    sqs_delay = 0 if fifo or requested is None else requested
    hold = delay - sqs_delay
    mode = app_settings.ETA_GUARD
    if mode == "off" or hold <= 0:
        return
    limit = visibility_timeout(sqs_name, topo)
    if hold < limit:
        return
    if mode == "error":
        raise EtaGuardError(name, sqs_name, delay, hold, limit, sqs_delay)
    logger.warning(explain(name, sqs_name, delay, hold, limit, sqs_delay))


def _guarded_sender(app: Celery, send: Any) -> Any:
    def send_task_message(
        producer: Any,
        name: str,
        message: Any,
        exchange: Any = None,
        routing_key: Any = None,
        queue: Any = None,
        **kwargs: Any,
    ) -> Any:
        guard(app, name, message, kwargs, queue, exchange, routing_key)
        with sending.sized(producer, app, name):
            return send(
                producer, name, message, exchange=exchange, routing_key=routing_key, queue=queue,
                **kwargs,
            )  # fmt: skip

    send_task_message.sqs_broker_guarded = True  # type: ignore[attr-defined]
    return send_task_message


class GuardedAMQP(AMQP):
    """Celery's AMQP helper whose task sender runs the ETA guard first.

    Use it with ``Celery(..., amqp="sqs_broker.publishing:GuardedAMQP")`` or
    let :func:`install` set it.
    """

    def _create_task_sender(self) -> Any:
        return _guarded_sender(self.app, super()._create_task_sender())


def install(app: Celery) -> None:
    """Run the ETA guard (and native delays) for every task ``app`` publishes.

    Safe to call more than once. Before the app's first publish this only
    swaps in :class:`GuardedAMQP`; afterwards it wraps the live sender.
    """
    if "amqp" not in app.__dict__:
        if app.amqp_cls in ("celery.app.amqp:AMQP", AMQP):
            app.amqp_cls = "sqs_broker.publishing:GuardedAMQP"
            return
        if isinstance(app.amqp_cls, type) and issubclass(app.amqp_cls, GuardedAMQP):
            return
        if app.amqp_cls == "sqs_broker.publishing:GuardedAMQP":
            return
    amqp = app.amqp
    if isinstance(amqp, GuardedAMQP):
        return
    send = amqp.send_task_message
    if not getattr(send, "sqs_broker_guarded", False):
        amqp.send_task_message = _guarded_sender(app, send)


# --- FIFO ----------------------------------------------------------------------


def _fifo_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise ValueError(f"{kind} must be a string of 1 to 128 characters; got {value!r}.")
    bad = sorted(set(value) - _FIFO_ID_CHARS)
    if bad:
        raise ValueError(
            f"{kind} may hold only letters, digits and ASCII punctuation; "
            f"{value!r} has {''.join(bad)!r}."
        )
    return value


def fifo_options(
    group: str, task_id: str | None = None, deduplication_id: str | None = None
) -> dict[str, str]:
    """``apply_async`` options for a FIFO queue: task id, group, deduplication id.

    The deduplication id defaults to the task id, so publishing the same task
    twice within SQS's 5-minute window delivers it once. Celery's
    ``Task.retry`` re-publishes with the same task id but without these
    options, so a retry gets kombu's random deduplication id and group
    ``"default"``: it is not dropped.
    """
    task_id = task_id or str(uuid.uuid4())
    return {
        "task_id": task_id,
        "MessageGroupId": _fifo_id("MessageGroupId", group),
        "MessageDeduplicationId": _fifo_id("MessageDeduplicationId", deduplication_id or task_id),
    }


def publish_fifo(
    signature: Signature, group: str, deduplication_id: str | None = None, **options: Any
) -> AsyncResult:
    """Publish ``signature`` to its (FIFO) queue in message group ``group``."""
    fifo = fifo_options(
        group, options.pop("task_id", None) or signature.options.get("task_id"), deduplication_id
    )
    return signature.apply_async(**{**options, **fifo})


# --- batches -------------------------------------------------------------------


@dataclass
class _Entry:
    client_queue: str | None
    kwargs: dict[str, Any]
    result_index: int

    @property
    def size(self) -> int:
        size = len(self.kwargs["MessageBody"].encode())
        for name, attribute in (self.kwargs.get("MessageAttributes") or {}).items():
            size += len(name.encode()) + len(str(attribute.get("DataType", "")).encode())
            value = attribute.get("StringValue") or attribute.get("BinaryValue") or ""
            size += len(value if isinstance(value, bytes) else str(value).encode())
        return size


@dataclass
class _Recorder:
    """Stands in for kombu's SQS client while messages are built: collects sends."""

    client: Any
    queue: str | None
    sink: list[_Entry]
    index: list[int] = field(default_factory=lambda: [0])

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sink.append(_Entry(self.queue, kwargs, self.index[0]))
        return {}

    def __getattr__(self, name: str) -> Any:
        # Queue lookups and creation (_new_queue) still reach SQS, as for .delay().
        return getattr(self.client, name)


def _task_id(entry: _Entry, results: list[AsyncResult]) -> str:
    """The id in the message's own headers (a group or chain may hold several)."""
    body = entry.kwargs["MessageBody"]
    for decode in (lambda b: b, lambda b: base64.b64decode(b).decode()):
        try:
            envelope = json.loads(decode(body))
            return str(envelope["headers"]["id"])
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            continue
    return str(results[entry.result_index].id)


def _batches(entries: list[_Entry], max_bytes: int) -> Iterable[list[_Entry]]:
    batch: list[_Entry] = []
    size = 0
    for entry in entries:
        entry_size = entry.size
        if batch and (len(batch) == MAX_BATCH_ENTRIES or size + entry_size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch


def _send_batch(client: Any, url: str, batch: list[_Entry], attempts: int) -> dict[int, str]:
    """Send one batch; retry what SQS did not take. Returns entry position -> reason."""
    pending = dict(enumerate(batch))
    failed: dict[int, str] = {}
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(0.1 * 2**attempt, 2.0))
        request = []
        for position, entry in pending.items():
            item = {k: v for k, v in entry.kwargs.items() if k != "QueueUrl"}
            request.append({"Id": str(position), **item})
        try:
            answer = client.send_message_batch(QueueUrl=url, Entries=request)
        except Exception as exc:
            # Network or throttling: retry the whole batch. If SQS took it before
            # the answer was lost, a standard queue gets it twice (at-least-once,
            # as SQS itself); a FIFO entry keeps its deduplication id, so SQS
            # drops the repeat.
            failed.update(dict.fromkeys(pending, sqs.error_text(exc)[0]))
            continue
        for done in answer.get("Successful", []):
            failed.pop(int(done["Id"]), None)
        retry: dict[int, _Entry] = {}
        for item in answer.get("Failed", []):
            position = int(item["Id"])
            failed[position] = f"{item.get('Code')}: {item.get('Message', '')}".strip()
            if not item.get("SenderFault"):  # the sender's fault fails the same way again
                retry[position] = pending[position]
        pending = retry
        if not pending:
            break
    return failed


def _send_after(
    earlier: list[Future[dict[int, str]]], client: Any, url: str, batch: list[_Entry], attempts: int
) -> dict[int, str]:
    for future in earlier:
        future.exception()  # wait; an earlier batch's failure is reported on its own
    return _send_batch(client, url, batch, attempts)


def _send_all(
    jobs: list[tuple[Any, str, list[_Entry]]], attempts: int, concurrency: int
) -> list[dict[int, str]]:
    """Send every batch, ``concurrency`` at a time; what each refused, in ``jobs`` order.

    A FIFO batch starts after the last earlier batch of each of its message
    groups (on that queue) has finished. The pool starts tasks in the order
    they were submitted, so a batch only waits on batches already running or
    done: no deadlock however small the pool.
    """
    if not jobs:
        return []
    last: dict[tuple[str, Any], Future[dict[int, str]]] = {}
    futures: list[Future[dict[int, str]]] = []
    workers = min(concurrency, len(jobs))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sqs-publish") as pool:
        for client, url, batch in jobs:
            groups = set()
            if url.endswith(".fifo"):
                groups = {entry.kwargs.get("MessageGroupId") for entry in batch}
            earlier = list({id(f): f for g in groups if (f := last.get((url, g)))}.values())
            future = pool.submit(_send_after, earlier, client, url, batch, attempts)
            for group in groups:
                last[(url, group)] = future
            futures.append(future)
        return [future.result() for future in futures]


def publish_many(
    signatures: Iterable[Signature],
    *,
    app: Celery | None = None,
    group: str | None = None,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    attempts: int = DEFAULT_ATTEMPTS,
    concurrency: int | None = None,
    **options: Any,
) -> list[AsyncResult]:
    """Publish ``signatures`` with ``SendMessageBatch``: about 0.1 SQS requests per task.

    Each signature is applied as ``signature.apply_async(**options)`` would
    apply it (routing, ``queue=``, countdown and ETA with the guard, FIFO
    options), then the messages go out ten to a request per queue, up to
    ``concurrency`` requests at once (default ``SQS_BROKER_PUBLISH_CONCURRENCY``).
    On a FIFO queue a batch waits for the earlier batches that hold any of
    its message groups, so each group arrives in the order given.
    ``group`` publishes every task to a FIFO queue in that message group,
    with the task id as deduplication id.

    Nothing is sent until every message is built, so an :class:`EtaGuardError`
    or a bad signature publishes nothing. Entries SQS refuses are retried
    (``attempts`` in all, unless the refusal is the sender's fault); what is
    still refused raises :class:`PublishError` naming the failed task ids,
    after the rest has been sent. ``after_task_publish`` fires as each
    message is built, before it is sent.
    """
    from kombu.transport.SQS import Channel

    signatures = list(signatures)
    if not signatures:
        return []
    if not 1 <= attempts <= 10:
        raise ValueError(f"attempts must be from 1 to 10; got {attempts!r}.")
    if max_batch_bytes < 1024:
        raise ValueError(f"max_batch_bytes must be at least 1024; got {max_batch_bytes!r}.")
    concurrency = app_settings.PUBLISH_CONCURRENCY if concurrency is None else concurrency
    if not 1 <= concurrency <= 100:
        raise ValueError(f"concurrency must be from 1 to 100; got {concurrency!r}.")
    topo = Topology.of(app)
    app = topo.app
    entries: list[_Entry] = []
    results: list[AsyncResult] = []
    with app.producer_or_acquire() as producer:
        channel = producer.channel
        if not isinstance(channel, Channel):
            raise ImproperlyConfigured(
                "publish_many needs the SQS transport (a sqs:// broker URL); this app's "
                f"broker uses {type(channel).__module__}."
            )
        index = [0]

        def recording_client(queue: str | None = None) -> _Recorder:
            return _Recorder(channel_client(channel, queue), queue, entries, index)

        # An instance attribute shadows Channel.sqs for this channel only, and
        # only while the messages are built; the producer is ours alone meanwhile.
        channel.sqs = recording_client  # type: ignore[method-assign]
        try:
            with sending.collected(app):  # a refusal here deletes the bodies stored so far
                for position, signature in enumerate(signatures):
                    index[0] = position
                    extra = dict(options)
                    if group is not None:
                        task_id = extra.pop("task_id", None) or signature.options.get("task_id")
                        extra.update(fifo_options(group, task_id))
                    results.append(signature.apply_async(producer=producer, **extra))
        finally:
            del channel.sqs
    by_queue: dict[tuple[str | None, str], list[_Entry]] = {}
    for entry in entries:
        by_queue.setdefault((entry.client_queue, entry.kwargs["QueueUrl"]), []).append(entry)
    jobs: list[tuple[Any, str, list[_Entry]]] = []
    for (client_queue, url), queue_entries in by_queue.items():
        client = sqs.client(client_queue, topo, purpose="publish")
        jobs.extend((client, url, batch) for batch in _batches(queue_entries, max_batch_bytes))
    sent = list(zip(jobs, _send_all(jobs, attempts, concurrency), strict=True))
    failed = {
        _task_id(b[n], results): why for (_, _, b), refused in sent for n, why in refused.items()
    }
    sending.discard_unsent([b[n].kwargs["MessageBody"] for (_, _, b), no in sent for n in no], app)
    if failed:
        raise PublishError(failed, results)
    return results
