"""``SQS_LARGE_PAYLOAD_*``: where task messages too large for SQS are stored (S3)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from sqs_broker.settings.parse import ENDPOINT_RE, raw, shown

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def large_payloads(env: Mapping[str, str]) -> dict[str, Any]:
    """The ``SQS_BROKER_LARGE_PAYLOAD_*`` settings of the ``SQS_LARGE_PAYLOAD_*`` variables.

    Only what the environment sets: an empty result leaves the project's own
    settings (or the defaults: no offloading) alone.
    """
    bucket = raw(env, "SQS_LARGE_PAYLOAD_BUCKET")
    prefix = env.get("SQS_LARGE_PAYLOAD_PREFIX")
    where = raw(env, "SQS_LARGE_PAYLOAD_ENDPOINT_URL")
    if bucket is None:
        for name, value in (
            ("SQS_LARGE_PAYLOAD_PREFIX", prefix),
            ("SQS_LARGE_PAYLOAD_ENDPOINT_URL", where),
        ):
            if value is not None:
                raise ImproperlyConfigured(
                    f"{name} is set but SQS_LARGE_PAYLOAD_BUCKET is not: set the bucket large "
                    f"task messages go to, or unset {name}."
                )
        return {}
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ImproperlyConfigured(
            "SQS_LARGE_PAYLOAD_BUCKET must be an S3 bucket name: 3-63 lowercase letters, "
            f"digits, '.' and '-', starting and ending with a letter or digit; got {shown(bucket)}."
        )
    found: dict[str, Any] = {"SQS_BROKER_LARGE_PAYLOAD_BUCKET": bucket}
    if prefix is not None:
        if len(prefix) > 512 or prefix.startswith("/") or prefix != prefix.strip():
            raise ImproperlyConfigured(
                "SQS_LARGE_PAYLOAD_PREFIX must be a key prefix of at most 512 characters, without "
                f"spaces around it or a leading '/', e.g. sqs-payloads/; got {shown(prefix)}."
            )
        found["SQS_BROKER_LARGE_PAYLOAD_PREFIX"] = prefix
    if where is not None:
        if not ENDPOINT_RE.match(where):
            raise ImproperlyConfigured(
                "SQS_LARGE_PAYLOAD_ENDPOINT_URL must be http(s)://host[:port] with no path or "
                f"credentials, e.g. http://127.0.0.1:4566; got {shown(where)}."
            )
        found["SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL"] = where.rstrip("/")
    return found
