"""Task messages larger than SQS allows: the body stored in S3, a pointer sent in SQS.

SQS refuses a message (body plus attributes) over its queue's
``MaximumMessageSize`` (at most 1 MiB). With ``SQS_BROKER_LARGE_PAYLOAD_BUCKET``
set, :mod:`sqs_broker.publishing` stores such a body here and sends the pointer
AWS's extended clients (Java, Python, ...) write and read::

    ["software.amazon.payloadoffloading.PayloadS3Pointer",
     {"s3BucketName": "<bucket>", "s3Key": "<prefix><queue>/<uuid>"}]

with the message attribute ``ExtendedPayloadSize`` (Number: the stored bytes).
The worker's transport (:mod:`sqs_broker.transport.payloads`) reads the body
back before decoding and deletes the object once the message is acknowledged.
Without a bucket, such a message is refused at publish with
:class:`MessageTooLarge`, which says what to change.

This module owns the format, the keys and the S3 calls; both sides use it.
The key holds the queue's name and a random uuid, never a task argument;
objects are written without encryption parameters, so the bucket's default
encryption (SSE-S3, or SSE-KMS when the bucket is so configured) applies.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from sqs_broker import limits
from sqs_broker.conf import app_settings
from sqs_broker.topology import Topology

if TYPE_CHECKING:
    from celery import Celery

#: The pointer class AWS's extended clients write (payload-offloading library).
POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
#: The class the Java extended client wrote before 2.0; read, never written.
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
#: The message attribute that marks an offloaded message, with the stored size.
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
#: Bytes kept free under the queue's limit: attributes SQS counts a little
#: differently, and the size attribute the pointer message adds.
MARGIN = 4096
#: Keys per S3 DeleteObjects request (S3's limit).
MAX_DELETE_KEYS = 1000


class MessageTooLarge(ValueError):
    """A task message is over its queue's ``MaximumMessageSize`` and nothing offloads it."""

    def __init__(self, task: str, queue: str, size: int, limit: int, bucket: str | None) -> None:
        self.task, self.queue, self.size, self.limit = task, queue, size, limit
        if bucket is None:
            fix = (
                "Set SQS_BROKER_LARGE_PAYLOAD_BUCKET (environment: SQS_LARGE_PAYLOAD_BUCKET) "
                "to store large messages in S3, or pass a reference to the data (an S3 key, "
                "a database id) instead of the data"
            )
        else:
            fix = (
                f"It was not offloaded to S3 bucket {bucket!r} because its message attributes "
                "alone are too large, or the queue's limit is lower than known: lower "
                "SQS_BROKER_LARGE_PAYLOAD_THRESHOLD, or send fewer attributes"
            )
        super().__init__(
            f"Task {task!r} makes an SQS message of {size:,} bytes for queue {queue!r}, over "
            f"the queue's MaximumMessageSize of {limit:,} bytes: SQS would refuse it. {fix}."
        )


class PayloadError(Exception):
    """A stored message body could not be read; ``permanent`` unless trying again may help."""

    def __init__(self, message: str, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Pointer:
    """Where one message body is stored."""

    bucket: str
    key: str

    def body(self) -> str:
        """The SQS body that carries this pointer, in the extended clients' format."""
        return json.dumps([POINTER_CLASS, {"s3BucketName": self.bucket, "s3Key": self.key}])


def pointer_of(body: Any) -> Pointer | None:
    """The pointer an SQS body carries, ``None`` for any other body.

    A body that names a pointer class but is not a well-formed pointer raises
    :class:`PayloadError`: it was meant as one and cannot be read.
    """
    if isinstance(body, bytes):
        try:
            body = body.decode()
        except UnicodeDecodeError:
            return None
    # A kombu body is base64 or a JSON object; only a pointer starts with '['.
    if not isinstance(body, str) or not body.lstrip().startswith("["):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, list) or not data:
        return None
    if data[0] not in (POINTER_CLASS, LEGACY_POINTER_CLASS):
        return None
    where = data[1] if len(data) == 2 else None
    if not isinstance(where, dict):
        raise PayloadError("the S3 pointer is not [class, {s3BucketName, s3Key}]")
    bucket, key = where.get("s3BucketName"), where.get("s3Key")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise PayloadError("the S3 pointer has no s3BucketName or s3Key string")
    return Pointer(bucket, key)


def message_size(kwargs: dict[str, Any]) -> int:
    """Bytes SQS counts for a ``SendMessage`` request's body and message attributes."""
    body = kwargs.get("MessageBody", "")
    size = len(body if isinstance(body, bytes) else str(body).encode())
    for name, attribute in (kwargs.get("MessageAttributes") or {}).items():
        size += len(name.encode()) + len(str(attribute.get("DataType", "")).encode())
        value = attribute.get("StringValue") or attribute.get("BinaryValue") or ""
        size += len(value if isinstance(value, bytes) else str(value).encode())
    return size


# --- configuration and the S3 client ----------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The offloading settings in force (see docs/configuration.md)."""

    bucket: str
    prefix: str
    endpoint: str | None
    threshold: int | None
    timeout: float

    def limit_for(self, queue_limit: int) -> int:
        """Bytes above which a message for a queue of ``queue_limit`` goes to S3."""
        limit = max(queue_limit - MARGIN, 0)
        return limit if self.threshold is None else min(limit, self.threshold)


def settings() -> Settings | None:
    """The offloading settings, ``None`` when no bucket is configured."""
    bucket = app_settings.LARGE_PAYLOAD_BUCKET
    if bucket is None:
        return None
    return Settings(
        bucket,
        app_settings.LARGE_PAYLOAD_PREFIX,
        app_settings.LARGE_PAYLOAD_ENDPOINT_URL,
        app_settings.LARGE_PAYLOAD_THRESHOLD,
        app_settings.LARGE_PAYLOAD_TIMEOUT,
    )


_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def s3_client(app: Celery | Topology | None = None, where: Settings | None = None) -> Any:
    """S3 with the broker's credentials and region, bounded timeouts and three attempts."""
    where = where or settings()
    topo = Topology.of(app)
    key, secret = topo.credentials
    endpoint = where.endpoint if where else None
    timeout = where.timeout if where else 10.0
    cache_key = (endpoint, topo.region, key, secret, timeout)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            session = boto3.Session(
                region_name=topo.region, aws_access_key_id=key, aws_secret_access_key=secret
            )
            config = BotoConfig(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"total_max_attempts": 3, "mode": "standard"},
                # A local S3 answers on one host: path-style keys, not bucket subdomains.
                s3={"addressing_style": "path"} if endpoint else None,
            )
            kwargs: dict[str, Any] = {"config": config}
            if endpoint:
                kwargs["endpoint_url"] = endpoint
            client = _clients[cache_key] = session.client("s3", **kwargs)
    return client


def forget_clients() -> None:
    """Forget the S3 clients made so far (tests, configuration changes)."""
    with _clients_lock:
        _clients.clear()


# --- the three operations ------------------------------------------------------------


def new_key(where: Settings, queue: str) -> str:
    """A fresh key for a body bound for ``queue``: prefix, queue name, random uuid."""
    return f"{where.prefix}{queue}/{uuid.uuid4().hex}"


def store(body: str | bytes, queue: str, app: Celery | Topology | None = None) -> Pointer:
    """Write ``body`` to the configured bucket; its pointer. Raises what S3 raised."""
    where = settings()
    if where is None:
        raise RuntimeError("no SQS_BROKER_LARGE_PAYLOAD_BUCKET is configured")
    data = body if isinstance(body, bytes) else body.encode()
    pointer = Pointer(where.bucket, new_key(where, queue))
    s3_client(app, where).put_object(
        Bucket=pointer.bucket,
        Key=pointer.key,
        Body=data,
        ContentType="text/plain; charset=utf-8",
    )
    return pointer


def offload(
    kwargs: dict[str, Any], queue: str, app: Celery | Topology | None = None
) -> tuple[dict[str, Any], Pointer]:
    """``SendMessage`` arguments with the body stored in S3, and the pointer sent instead."""
    body = kwargs["MessageBody"]
    data = body if isinstance(body, bytes) else str(body).encode()
    pointer = store(data, queue, app)
    attributes = dict(kwargs.get("MessageAttributes") or {})
    attributes[SIZE_ATTRIBUTE] = {"DataType": "Number", "StringValue": str(len(data))}
    return {**kwargs, "MessageBody": pointer.body(), "MessageAttributes": attributes}, pointer


#: S3 error codes that trying again will not change.
_PERMANENT = frozenset({"NoSuchKey", "NoSuchBucket", "AccessDenied", "404", "403", "NotFound"})


def fetch(pointer: Pointer, app: Celery | Topology | None = None) -> str:
    """The body ``pointer`` names, as text; :class:`PayloadError` when it cannot be read.

    A pointer to another bucket than the configured one is refused without a
    request: a message must not make a worker read an arbitrary object.
    """
    where = settings()
    if where is None:
        raise PayloadError(
            "it is stored in S3 but SQS_BROKER_LARGE_PAYLOAD_BUCKET is not set on this worker"
        )
    if pointer.bucket != where.bucket:
        raise PayloadError(
            f"its S3 pointer names bucket {pointer.bucket!r}, not the configured {where.bucket!r}"
        )
    try:
        answer = s3_client(app, where).get_object(Bucket=pointer.bucket, Key=pointer.key)
        data = answer["Body"].read()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
        raise PayloadError(
            f"its stored body s3://{pointer.bucket}/{pointer.key} cannot be read ({code})",
            permanent=code in _PERMANENT,
        ) from None
    except BotoCoreError as exc:
        raise PayloadError(
            f"S3 did not answer for s3://{pointer.bucket}/{pointer.key} ({type(exc).__name__})",
            permanent=False,
        ) from None
    try:
        return bytes(data).decode()
    except UnicodeDecodeError:
        raise PayloadError(
            f"its stored body s3://{pointer.bucket}/{pointer.key} is not UTF-8 text"
        ) from None


def delete(pointers: Iterable[Pointer], app: Celery | Topology | None = None) -> list[str]:
    """Delete the stored bodies (``DeleteObjects``, 1,000 a request); the errors, as text."""
    by_bucket: dict[str, list[str]] = {}
    for pointer in pointers:
        by_bucket.setdefault(pointer.bucket, []).append(pointer.key)
    errors: list[str] = []
    if not by_bucket:
        return errors
    client = s3_client(app)
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), MAX_DELETE_KEYS):
            chunk = keys[start : start + MAX_DELETE_KEYS]
            try:
                answer = client.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                errors.append(f"{len(chunk)} object(s) in {bucket}: {type(exc).__name__}: {exc}")
                continue
            for failed in answer.get("Errors") or []:
                errors.append(f"{bucket}/{failed.get('Key')}: {failed.get('Code')}")
    return errors


#: SQS's largest ``MaximumMessageSize``, the limit assumed when a queue's is unknown.
MAX_MESSAGE_SIZE = limits.MAX_MESSAGE_SIZE


# --- the sweep: objects whose message can no longer exist -------------------------------

#: SQS's longest ``MessageRetentionPeriod`` (14 days).
MAX_RETENTION = 1_209_600
#: Added to every bound: clocks, and a message received just before it expired.
SWEEP_MARGIN = 3600


@dataclass
class SweepResult:
    """What one sweep found and did."""

    scanned: int = 0
    #: Keys deleted (or, in a dry run, that would be), by queue name.
    deleted: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    #: Seconds an object of each queue is kept, as worked out from the queues.
    bounds: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def deleted_total(self) -> int:
        """Objects deleted (or to delete) in all."""
        return sum(self.deleted.values())


def _queue_of(key: str, prefix: str) -> str:
    return key[len(prefix) :].split("/", 1)[0] if "/" in key[len(prefix) :] else ""


def keep_for(queues: Iterable[str], app: Celery | Topology | None = None) -> dict[str, float]:
    """Seconds an object stored for each queue may still be needed.

    A message lives at most its queue's retention; moved to a dead-letter
    queue (standard queues keep its first enqueue time, FIFO ones restart it)
    or to quarantine (a new message), it may live that queue's retention again.
    So: the queue's retention plus the longest of its dead-letter and
    quarantine queues', plus an hour. A queue SQS does not answer for (or that
    no longer exists) gets the longest bound SQS allows, twice.
    """
    from sqs_broker import sqs
    from sqs_broker.transport.poison import quarantine_name

    names = sorted(set(queues))
    refs = [sqs.QueueRef(name, "declared") for name in names]
    states = {s.ref.name: s for s in sqs.fetch(refs, app, max_age=0)}
    followers: dict[str, list[str]] = {}
    for name, state in states.items():
        policy = sqs.redrive_policy(state)
        followers[name] = [quarantine_name(name)] + ([policy["name"]] if policy else [])
    wanted = sorted({f for names in followers.values() for f in names} - set(states))
    states.update({s.ref.name: s for s in sqs.fetch(
        [sqs.QueueRef(n, "declared") for n in wanted], app, max_age=0
    )})  # fmt: skip

    def retention(name: str) -> float | None:
        state = states.get(name)
        if state is None or (state.error and state.exists):
            return None  # unknown: assume the longest
        if not state.exists:
            return 0.0
        return float(state.int("MessageRetentionPeriod") or limits.DEFAULT_RETENTION_PERIOD)

    bounds: dict[str, float] = {}
    for name in names:
        own = retention(name)
        after = [retention(f) for f in followers.get(name, [])]
        if own is None or not states[name].exists or any(r is None for r in after):
            bounds[name] = 2.0 * MAX_RETENTION + SWEEP_MARGIN
        else:
            bounds[name] = own + max([r for r in after if r is not None] or [0.0]) + SWEEP_MARGIN
    return bounds


def sweep(
    app: Celery | Topology | None = None,
    dry_run: bool = False,
    older_than: float | None = None,
    now: float | None = None,
) -> SweepResult:
    """Delete stored bodies older than any message that could still point to them.

    ``older_than`` (seconds) replaces the bounds worked out from the queues
    (:func:`keep_for`). Raises :class:`RuntimeError` without a bucket, and what
    S3 raised when the listing fails; failed deletes are in the result.
    """
    where = settings()
    if where is None:
        raise RuntimeError("SQS_BROKER_LARGE_PAYLOAD_BUCKET is not set: there is nothing to sweep")
    client = s3_client(app, where)
    now = time.time() if now is None else now
    result = SweepResult()
    listed: list[tuple[str, str, float]] = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=where.bucket, Prefix=where.prefix
    ):
        for item in page.get("Contents") or []:
            key = str(item["Key"])
            age = now - item["LastModified"].timestamp()
            listed.append((key, _queue_of(key, where.prefix), age))
    result.scanned = len(listed)
    if older_than is None:
        result.bounds = keep_for({queue for _, queue, _ in listed if queue}, app)
    doomed: list[Pointer] = []
    for key, queue, age in listed:
        bound = older_than if older_than is not None else result.bounds.get(queue)
        if bound is None:  # not a key this app wrote (no queue part): the longest bound
            bound = 2.0 * MAX_RETENTION + SWEEP_MARGIN
        if age > bound:
            doomed.append(Pointer(where.bucket, key))
            result.deleted[queue] = result.deleted.get(queue, 0) + 1
        else:
            result.kept += 1
    if doomed and not dry_run:
        result.errors = delete(doomed, app)
    return result


# --- the bucket's state, for sqs_check -------------------------------------------------

#: Objects listed at most when looking for ones left behind (one request).
LEFTOVER_SAMPLE = 1000


@dataclass
class BucketState:
    """What S3 answered about the large-payload bucket (one pass, a few bounded calls)."""

    bucket: str
    prefix: str
    #: The S3 action that failed, with S3's error code and text; ``None`` when all worked.
    failed_action: str | None = None
    error_code: str | None = None
    error: str | None = None
    region: str | None = None
    #: Days after which a rule that covers the prefix expires objects; ``None``: no rule.
    expiration_days: int | None = None
    lifecycle_error: str | None = None
    #: Objects (of the first :data:`LEFTOVER_SAMPLE` listed) older than ``max_age``.
    leftovers: int = 0
    listed: int = 0


def _error(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "ClientError")
        return code, f"{code}: {error.get('Message', '') or ''}".strip(": ")
    return "Unreachable", f"{type(exc).__name__}: {exc}"


def _covers(rule: dict[str, Any], prefix: str) -> bool:
    """Whether a lifecycle rule applies to every object under ``prefix`` (ours carry no tags)."""
    where = rule.get("Filter")
    if where is None:  # the older form: a Prefix beside the rule's fields
        return prefix.startswith(str(rule.get("Prefix", "")))
    both = where.get("And") or {}
    if where.get("Tag") or both.get("Tags") or where.get("ObjectSizeGreaterThan"):
        return False
    return prefix.startswith(str(where.get("Prefix", both.get("Prefix", ""))))


def bucket_state(
    app: Celery | Topology | None = None, max_age: float = 2.0 * 1_209_600, probe: bool = True
) -> BucketState | None:
    """The configured bucket as S3 answers: reachable, writable, region, lifecycle, leftovers.

    ``probe`` writes, reads and deletes one small object under the prefix: the
    only way to know that ``PutObject``, ``GetObject`` and ``DeleteObject`` (and
    the bucket's KMS key) are allowed. ``None`` when no bucket is configured.
    """
    where = settings()
    if where is None:
        return None
    state = BucketState(where.bucket, where.prefix)
    client = s3_client(app, where)

    def attempt(action: str, call: Any) -> Any:
        try:
            return call()
        except Exception as exc:  # reported as a finding, never a traceback
            state.failed_action = action
            state.error_code, state.error = _error(exc)
            raise

    try:
        attempt("s3:ListBucket", lambda: client.head_bucket(Bucket=where.bucket))
        location = attempt(
            "s3:GetBucketLocation", lambda: client.get_bucket_location(Bucket=where.bucket)
        )
        state.region = location.get("LocationConstraint") or "us-east-1"
        if probe:
            key = f"{where.prefix}sqs_check/{uuid.uuid4().hex}"
            attempt(
                "s3:PutObject",
                lambda: client.put_object(Bucket=where.bucket, Key=key, Body=b"sqs_check"),
            )
            attempt(
                "s3:GetObject",
                lambda: client.get_object(Bucket=where.bucket, Key=key)["Body"].read(),
            )
            attempt("s3:DeleteObject", lambda: client.delete_object(Bucket=where.bucket, Key=key))
        listed = attempt(
            "s3:ListBucket",
            lambda: client.list_objects_v2(
                Bucket=where.bucket, Prefix=where.prefix, MaxKeys=LEFTOVER_SAMPLE
            ),
        )
    except Exception:
        return state
    now = time.time()
    items = listed.get("Contents") or []
    state.listed = len(items)
    state.leftovers = sum(1 for i in items if now - i["LastModified"].timestamp() > max_age)
    try:
        rules = client.get_bucket_lifecycle_configuration(Bucket=where.bucket).get("Rules", [])
    except ClientError as exc:
        code, text = _error(exc)
        if code != "NoSuchLifecycleConfiguration":
            state.lifecycle_error = text
        return state
    except BotoCoreError as exc:
        state.lifecycle_error = _error(exc)[1]
        return state
    days = [
        int(rule["Expiration"]["Days"])
        for rule in rules
        if rule.get("Status") == "Enabled"
        and "Days" in (rule.get("Expiration") or {})
        and _covers(rule, where.prefix)
    ]
    state.expiration_days = min(days) if days else None
    return state
