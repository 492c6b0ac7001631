"""The large-payload bucket as S3 answers, for ``sqs_check`` (findings E025, W023-W025).

:func:`bucket_state` makes a few bounded calls; the findings judge its answer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from sqs_broker.payloads import s3_client, settings
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
