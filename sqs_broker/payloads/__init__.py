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

This package owns the format, the keys and the S3 calls (here, for both
sides), the publish side's size check and offload (:mod:`.sending`), the sweep
of objects left behind (:mod:`.sweep`) and the bucket's state for the
checks (:mod:`.bucket`).
The key holds the queue's name and a random uuid, never a task argument;
objects are written without encryption parameters, so the bucket's default
encryption (SSE-S3, or SSE-KMS when the bucket is so configured) applies.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
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


def stored_size(attributes: Any) -> int | None:
    """The stored bytes an offloaded message's attributes give; ``None`` for a message sent inline.

    ``ExtendedPayloadSize`` (or the older ``SQSLargePayloadSize``) marks an offloaded
    message, whichever client sent it, so reading it costs no S3 call. An unreadable
    size still marks the message: 0 bytes.
    """
    if not isinstance(attributes, dict):
        return None
    for name in (SIZE_ATTRIBUTE, LEGACY_SIZE_ATTRIBUTE):
        found = attributes.get(name)
        if isinstance(found, dict) and found.get("StringValue") is not None:
            try:
                return max(0, int(found["StringValue"]))
            except (TypeError, ValueError):
                return 0
    return None


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
