"""What the admin's environment banner shows: which SQS the project talks to, and DEBUG."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def environment(request: HttpRequest) -> dict[str, Any]:
    """``sqs_environment``: where SQS is ("local SQS at 127.0.0.1:4566", "AWS eu-west-1"), DEBUG."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    # Only the host of the URL: the part before it may hold keys.
    parts = urlsplit(getattr(settings, "CELERY_BROKER_URL", "") or "")
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a port: leave it out
        port = ""
    if host in LOOPBACK:
        where = f"local SQS at {host}{port}"
    elif host:
        where = f"SQS at {host}"
    else:
        where = f"AWS {options.get('region', 'default region')}"
    return {"sqs_environment": {"sqs": where, "debug": settings.DEBUG, "local": host in LOOPBACK}}
