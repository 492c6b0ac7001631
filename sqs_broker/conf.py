"""Typed reads of the ``SQS_BROKER_*`` Django settings.

Each property reads ``django.conf.settings`` on every access, so
``override_settings`` works in tests and nothing is read at import time.
Broker settings come from the environment through :mod:`sqs_broker.settings`;
these are the app's own knobs.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from celery import Celery

EtaGuard = Literal["error", "warn", "off"]


def _number(name: str, default: float, low: float) -> float:
    value = getattr(settings, name, default)
    # NaN compares false with everything and infinity breaks int() and timeouts.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < low
    ):
        raise ImproperlyConfigured(f"{name} must be a finite number >= {low:g}; got {value!r}.")
    return value


def _flag(name: str, default: bool) -> bool:
    value = getattr(settings, name, default)
    # bool("false") is True: a string from an unparsed environment variable
    # would silently turn the feature on.
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"{name} must be True or False; got {value!r}.")
    return value


class Settings:
    """The app's settings with their defaults; see docs/configuration.md."""

    @property
    def API_TOKEN(self) -> str | None:
        """Bearer token for ``stats.json`` and ``metrics``; ``None`` disables token access."""
        token = getattr(settings, "SQS_BROKER_API_TOKEN", None)
        if token not in (None, "") and (not isinstance(token, str) or len(token) < 16):
            raise ImproperlyConfigured(
                "SQS_BROKER_API_TOKEN must be a string of at least 16 characters, or None."
            )
        return token or None

    @property
    def ETA_GUARD(self) -> EtaGuard:
        """What a task whose ETA outlives its queue's visibility timeout gets: see publishing."""
        value: EtaGuard = getattr(settings, "SQS_BROKER_ETA_GUARD", "error")
        if value not in ("error", "warn", "off"):
            raise ImproperlyConfigured(
                f"SQS_BROKER_ETA_GUARD must be 'error', 'warn' or 'off'; got {value!r}."
            )
        return value

    @property
    def NATIVE_DELAY(self) -> bool:
        """Publish countdowns and ETAs with SQS's own DelaySeconds (up to 900 s)."""
        return _flag("SQS_BROKER_NATIVE_DELAY", True)

    @property
    def MAX_ETA(self) -> float:
        """The longest ETA/countdown (seconds) the project plans to use; 0 = none declared."""
        return _number("SQS_BROKER_MAX_ETA", 0, 0)

    @property
    def CACHE_TTL(self) -> float:
        """Seconds queue attributes are reused before SQS is asked again."""
        return _number("SQS_BROKER_CACHE_TTL", 5, 0)

    @property
    def CACHE(self) -> str:
        """The ``CACHES`` alias that holds queue attributes, listings and online findings.

        Django's default local-memory cache is per process; a shared backend
        (Redis, Memcached, the database cache) lets every web process reuse one
        SQS pass.
        """
        from django.core.exceptions import ImproperlyConfigured

        alias = getattr(settings, "SQS_BROKER_CACHE", "default")
        known = getattr(settings, "CACHES", None) or {"default": {}}
        if not isinstance(alias, str) or alias not in known:
            choices = ", ".join(sorted(known))
            raise ImproperlyConfigured(
                f"SQS_BROKER_CACHE must name one of the CACHES aliases ({choices}); got {alias!r}."
            )
        return alias

    @property
    def PUBLISH_CONCURRENCY(self) -> int:
        """Batch requests ``publish_many`` keeps in flight at once."""
        return int(_number("SQS_BROKER_PUBLISH_CONCURRENCY", 8, 1))

    @property
    def ONLINE_FINDINGS_TTL(self) -> float:
        """Seconds the dashboard reuses the online findings."""
        return _number("SQS_BROKER_ONLINE_FINDINGS_TTL", 60, 0)

    @property
    def MAX_WORKERS(self) -> int:
        """Threads that fetch queue attributes at once.

        The calls wait on the network, not the CPU: with one thread per
        queue, 100 queues cost about one round-trip of wall time.
        """
        return int(_number("SQS_BROKER_MAX_WORKERS", 100, 1))

    @property
    def DISCOVER_BY_PREFIX(self) -> bool:
        """With an empty queue name prefix, list every queue of the account too."""
        return _flag("SQS_BROKER_DISCOVER_BY_PREFIX", False)

    @property
    def REFRESH_SECONDS(self) -> int:
        """Dashboard auto-refresh period; 0 turns it off."""
        return int(_number("SQS_BROKER_REFRESH_SECONDS", 10, 0))

    @property
    def LOG_SCRUBBING(self) -> bool:
        """Scrub secrets from every log record of the process (a log-record factory)."""
        return _flag("SQS_BROKER_LOG_SCRUBBING", True)

    @property
    def START_GUARD(self) -> bool:
        """Add the worker bootstep that refuses to start on E001 (DEBUG with URL keys)."""
        return _flag("SQS_BROKER_START_GUARD", True)

    @property
    def PUBLISH_GUARD(self) -> bool:
        """Install the ETA guard and native delays on the Celery app (its ``amqp_cls``)."""
        return _flag("SQS_BROKER_PUBLISH_GUARD", True)

    @property
    def RUNSERVER(self) -> bool:
        """``runserver`` exits at once on E001 instead of waiting for a code change."""
        return _flag("SQS_BROKER_RUNSERVER", True)

    @property
    def TELEMETRY(self) -> bool:
        """Record worker heartbeats and task counters from inside the workers."""
        return _flag("SQS_BROKER_TELEMETRY", False)

    @property
    def TELEMETRY_INTERVAL(self) -> float:
        """Seconds between telemetry flushes and heartbeats."""
        return _number("SQS_BROKER_TELEMETRY_INTERVAL", 10, 0.1)

    @property
    def REVOCATIONS(self) -> bool:
        """Workers load the task ids revoked in the database (``sqs_revoke``) and refuse them."""
        return _flag("SQS_BROKER_REVOCATIONS", True)

    @property
    def REMOTE_CONTROL(self) -> bool:
        """Celery's remote control through SNS fanout (``include()`` turns Celery's switch on)."""
        return _flag("SQS_BROKER_REMOTE_CONTROL", False)

    @property
    def REMOTE_TIMEOUT(self) -> float:
        """Seconds a dashboard's remote-control call waits for a worker that does not answer."""
        return _number("SQS_BROKER_REMOTE_TIMEOUT", 2, 0.1)

    @property
    def REVOCATION_REFRESH(self) -> float:
        """Seconds between two reads of the revoked task ids by a running worker."""
        return _number("SQS_BROKER_REVOCATION_REFRESH", 5, 0.1)

    @property
    def PIDBOX_SWEEP_AFTER(self) -> float:
        """Seconds a worker must be lost (or stopped) before the sweep deletes its mailbox."""
        return _number("SQS_BROKER_PIDBOX_SWEEP_AFTER", 3600, 60)

    @property
    def REPLY_SWEEP_AFTER(self) -> float | None:
        """Seconds after its creation the sweep deletes an empty reply queue (``None``: never)."""
        if getattr(settings, "SQS_BROKER_REPLY_SWEEP_AFTER", None) is None:
            return None
        return _number("SQS_BROKER_REPLY_SWEEP_AFTER", 0, 600)

    @property
    def RETENTION_DAYS(self) -> float:
        """Days of samples, heartbeats and counters kept before pruning."""
        return _number("SQS_BROKER_RETENTION_DAYS", 7, 0)

    @property
    def CONNECT_TIMEOUT(self) -> float:
        """Seconds to open a connection to SQS for checks and the dashboard."""
        return _number("SQS_BROKER_CONNECT_TIMEOUT", 5, 0.1)

    @property
    def READ_TIMEOUT(self) -> float:
        """Seconds to wait for an SQS answer for checks and the dashboard."""
        return _number("SQS_BROKER_READ_TIMEOUT", 10, 0.1)

    @property
    def PUBLISH_CONNECT_TIMEOUT(self) -> float:
        """Seconds ``publish_many`` waits to open a connection to SQS."""
        return _number("SQS_BROKER_PUBLISH_CONNECT_TIMEOUT", 5, 0.1)

    @property
    def PUBLISH_READ_TIMEOUT(self) -> float:
        """Seconds ``publish_many`` waits for SQS to answer a batch."""
        return _number("SQS_BROKER_PUBLISH_READ_TIMEOUT", 10, 0.1)

    @property
    def CELERY_APP(self) -> Celery | None:
        """The Celery app the dashboard, JSON and metrics describe; ``None``: the current app.

        ``SQS_BROKER_CELERY_APP`` is a dotted path such as ``"mysite.celery.app"``
        or a Celery app object (handy in tests and in projects with several apps).
        """
        value: Any = getattr(settings, "SQS_BROKER_CELERY_APP", None)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = import_string(value)
            except (ImportError, ValueError) as exc:  # ValueError: "." or ".app"
                raise ImproperlyConfigured(
                    f"SQS_BROKER_CELERY_APP must be the dotted path of a Celery app, "
                    f"e.g. 'mysite.celery.app'; {exc}"
                ) from None
        if not hasattr(value, "conf") or not hasattr(value, "send_task"):
            raise ImproperlyConfigured(
                "SQS_BROKER_CELERY_APP must name a Celery app (or be one); "
                f"got a {type(value).__name__}."
            )
        return value

    @property
    def GATHER_TIMEOUT(self) -> float:
        """Seconds a page waits for SQS before it shows what it has, with per-queue errors."""
        return _number("SQS_BROKER_GATHER_TIMEOUT", 15, 0.1)

    @property
    def HISTORY_HOURS(self) -> float:
        """Hours of queue samples the dashboard's sparklines and charts show."""
        return _number("SQS_BROKER_HISTORY_HOURS", 6, 0.1)

    @property
    def CLOUDWATCH(self) -> bool | None:
        """Read queue ages from CloudWatch: ``None`` (default) on AWS endpoints only."""
        value = getattr(settings, "SQS_BROKER_CLOUDWATCH", None)
        if value is not None and not isinstance(value, bool):
            raise ImproperlyConfigured(
                f"SQS_BROKER_CLOUDWATCH must be True, False or None; got {value!r}."
            )
        return value

    @property
    def CLOUDWATCH_TTL(self) -> float:
        """Seconds a CloudWatch answer is reused (its SQS metrics come once a minute)."""
        return _number("SQS_BROKER_CLOUDWATCH_TTL", 60, 0)

    @property
    def REDRIVE_LIMIT(self) -> int:
        """Most messages one dead-letter move copies back when done message by message."""
        return int(_number("SQS_BROKER_REDRIVE_LIMIT", 1000, 1))

    # --- large messages offloaded to S3 (sqs_broker.payloads) ---

    @property
    def LARGE_PAYLOAD_BUCKET(self) -> str | None:
        """The S3 bucket large task messages are stored in; ``None`` (default): none.

        Without it, a message over its queue's ``MaximumMessageSize`` is refused
        at publish with :class:`sqs_broker.payloads.MessageTooLarge`.
        """
        value = getattr(settings, "SQS_BROKER_LARGE_PAYLOAD_BUCKET", None)
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not _BUCKET_RE.fullmatch(value):
            raise ImproperlyConfigured(
                "SQS_BROKER_LARGE_PAYLOAD_BUCKET must be an S3 bucket name (3-63 lowercase "
                f"letters, digits, '.' and '-'), or None; got {value!r}."
            )
        return value

    @property
    def LARGE_PAYLOAD_PREFIX(self) -> str:
        """The key prefix of stored messages in the bucket; default ``"sqs-payloads/"``."""
        value = getattr(settings, "SQS_BROKER_LARGE_PAYLOAD_PREFIX", "sqs-payloads/")
        if not isinstance(value, str) or len(value) > 512 or value.startswith("/"):
            raise ImproperlyConfigured(
                "SQS_BROKER_LARGE_PAYLOAD_PREFIX must be a string of at most 512 characters "
                f"not starting with '/' (e.g. 'sqs-payloads/'); got {value!r}."
            )
        return value

    @property
    def LARGE_PAYLOAD_ENDPOINT_URL(self) -> str | None:
        """The S3 endpoint (a local S3 such as moto's); ``None`` (default): AWS's."""
        value = getattr(settings, "SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL", None)
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise ImproperlyConfigured(
                "SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL must be an http(s):// URL such as "
                f"http://127.0.0.1:4566, or None; got {value!r}."
            )
        return value.rstrip("/")

    @property
    def LARGE_PAYLOAD_THRESHOLD(self) -> int | None:
        """Bytes of an SQS message above which it goes to S3; ``None`` (default): the limit.

        ``None`` offloads what would not fit the queue's ``MaximumMessageSize``
        less a margin for attributes; a number lowers that (never raises it).
        """
        value = getattr(settings, "SQS_BROKER_LARGE_PAYLOAD_THRESHOLD", None)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_048_576:
            raise ImproperlyConfigured(
                "SQS_BROKER_LARGE_PAYLOAD_THRESHOLD must be a whole number of bytes from 0 to "
                f"1048576, or None; got {value!r}."
            )
        return value

    @property
    def LARGE_PAYLOAD_TIMEOUT(self) -> float:
        """Seconds one S3 request of a stored message may take (connect and read); default 10."""
        return _number("SQS_BROKER_LARGE_PAYLOAD_TIMEOUT", 10, 0.1)


#: S3's rules for a bucket name (dots allowed, no uppercase or underscore).
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

app_settings = Settings()
