"""The large-payload bucket as S3 answers: for ``sqs_check`` (findings E025, W023-W025) and
for the faces (the objects awaiting deletion per queue).

:func:`bucket_state` makes a few bounded calls; the findings judge its answer.
:func:`stored` lists the prefix, bounded and cached, for :func:`sqs_broker.stats.gather`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sqs_broker import cache
from sqs_broker.payloads import Settings, s3_client, settings
from sqs_broker.topology import Topology

if TYPE_CHECKING:
    from celery import Celery

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


# --- the objects awaiting deletion, for the faces ------------------------------------

#: ``ListObjectsV2`` pages (1,000 keys each) one listing reads at most; past them it is capped.
STORED_PAGES = 10
#: Seconds a listing is reused (shared through ``SQS_BROKER_CACHE``): objects outlive their
#: messages by minutes at least, and each page is a billed request.
STORED_TTL = 30.0


@dataclass
class StoredQueue:
    """The objects stored under one queue's part of the prefix."""

    objects: int = 0
    bytes: int = 0
    #: Unix time of the oldest object's ``LastModified``.
    oldest: float | None = None


@dataclass
class Stored:
    """One bounded listing of the prefix: objects, bytes and the oldest per queue."""

    bucket: str
    prefix: str
    listed_at: float
    by_queue: dict[str, StoredQueue]
    #: Objects listed; the listing stopped at :data:`STORED_PAGES` pages when ``capped``.
    listed: int = 0
    capped: bool = False
    #: Why the listing failed (S3's code and text); the figures are then empty.
    error: str | None = None


def queue_of(key: str, prefix: str) -> str:
    """The queue part of a key ``<prefix><queue>/<uuid>``; ``""`` for a key of another shape."""
    rest = key[len(prefix) :] if key.startswith(prefix) else key
    return rest.split("/", 1)[0] if "/" in rest else ""


def _stored_key(where: Settings) -> str:
    return cache.key("payloads-stored", where.endpoint, where.bucket, where.prefix)


def list_stored(
    app: Celery | Topology | None = None, pages: int = STORED_PAGES, page_size: int = 1000
) -> Stored | None:
    """List the prefix now (at most ``pages`` pages of ``page_size`` keys); ``None`` without a
    bucket. A failed listing is a :class:`Stored` with its ``error``, never an exception."""
    where = settings()
    if where is None:
        return None
    found = Stored(where.bucket, where.prefix, time.time(), {})
    client = s3_client(app, where)
    token: str | None = None
    try:
        for _page in range(pages):
            kwargs: dict[str, Any] = {
                "Bucket": where.bucket, "Prefix": where.prefix, "MaxKeys": page_size,
            }  # fmt: skip
            if token:
                kwargs["ContinuationToken"] = token
            answer = client.list_objects_v2(**kwargs)
            for item in answer.get("Contents") or []:
                queue = found.by_queue.setdefault(
                    queue_of(str(item["Key"]), where.prefix), StoredQueue()
                )
                queue.objects += 1
                queue.bytes += int(item.get("Size") or 0)
                modified = item["LastModified"].timestamp()
                queue.oldest = modified if queue.oldest is None else min(queue.oldest, modified)
                found.listed += 1
            token = answer.get("NextContinuationToken") if answer.get("IsTruncated") else None
            if not token:
                break
        else:
            found.capped = token is not None
    except (ClientError, BotoCoreError) as exc:
        return Stored(where.bucket, where.prefix, time.time(), {}, error=_error(exc)[1])
    return found


def stored(app: Celery | Topology | None = None) -> Stored | None:
    """:func:`list_stored`, reused for :data:`STORED_TTL` seconds; ``None`` without a bucket."""
    where = settings()
    if where is None:
        return None
    key = _stored_key(where)
    cached = cache.get(key)
    if isinstance(cached, Stored) and time.time() - cached.listed_at < STORED_TTL:
        return cached
    try:
        found = list_stored(app)
    except Exception as exc:  # credentials, say: the queues' figures must not fail with it
        return Stored(where.bucket, where.prefix, time.time(), {}, error=_error(exc)[1])
    if found is not None and found.error is None:
        cache.set_many({key: found}, STORED_TTL)
    return found


def forget_stored() -> None:
    """Drop the cached listing (after a sweep deleted objects)."""
    where = settings()
    if where is not None:
        cache.delete(_stored_key(where))
