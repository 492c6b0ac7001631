"""The broker configuration, resolved once: which queues, under which SQS names, where.

kombu derives a queue's SQS name, the endpoint, the region and the
credentials from a Celery app's ``broker_url`` and
``broker_transport_options`` by fixed rules. This module holds those rules
and sqs_broker's own naming rule (a queue's quarantine queue), as pure
functions with no network, and :class:`Topology`, their result for one app,
which a findings pass, a dashboard pass and the transport read instead of
asking ``app.conf`` again each time.

:func:`celery_app` is the one place that decides which Celery app is meant:
an explicit one, else ``SQS_BROKER_CELERY_APP``, else Celery's current app.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from kombu.transport.SQS import CHARS_REPLACE_TABLE
from kombu.utils.url import url_to_parts

from sqs_broker import limits
from sqs_broker.conf import app_settings

if TYPE_CHECKING:
    from celery import Celery

#: Celery's default queue when ``task_default_queue`` is unset.
DEFAULT_QUEUE = "celery"


def celery_app(app: Celery | Topology | None = None) -> Celery:
    """``app``, else ``SQS_BROKER_CELERY_APP``, else Celery's current app.

    Every part of sqs_broker (the app's ``ready()``, findings, the dashboard,
    publishing, the commands) asks here, so they all mean the same app.
    """
    if isinstance(app, Topology):
        return app.app
    if app is not None:
        return app
    configured = app_settings.CELERY_APP
    if configured is not None:
        return configured
    from celery import current_app

    return current_app._get_current_object()


# --- the rules kombu follows ------------------------------------------------------


def entity_name(name: str) -> str:
    """The SQS name kombu gives a queue name (punctuation rewritten, '.fifo' kept)."""
    if name.endswith(".fifo"):
        return name[: -len(".fifo")].translate(CHARS_REPLACE_TABLE) + ".fifo"
    return name.translate(CHARS_REPLACE_TABLE)


#: The quarantine queue of ``q`` is ``q-quarantine`` (``q-quarantine.fifo`` for FIFO).
QUARANTINE_SUFFIX = "-quarantine"


def quarantine_name(queue: str) -> str:
    """The quarantine queue of the SQS queue named ``queue`` (FIFO stays FIFO, 80 characters)."""
    fifo = queue.endswith(".fifo")
    stem = queue.removesuffix(".fifo") if fifo else queue
    tail = QUARANTINE_SUFFIX + (".fifo" if fifo else "")
    return stem[: limits.MAX_QUEUE_NAME - len(tail)] + tail


def is_quarantine(queue: str) -> bool:
    """Whether ``queue`` is named as :func:`quarantine_name` names a quarantine queue."""
    return queue.removesuffix(".fifo").endswith(QUARANTINE_SUFFIX)


#: Celery's remote-control queues end so: a worker's mailbox ``<hostname>.<app>.pidbox``,
#: a caller's reply queue ``<oid>.reply.<app>.pidbox``; in SQS, ``-pidbox`` (dots to dashes).
PIDBOX_SUFFIXES = (".pidbox", "-pidbox")
#: The middle of the reply exchange's and reply queues' names.
REPLY_MARK = "reply."


def is_remote_control(name: str) -> bool:
    """Whether ``name`` (a kombu or an SQS queue name) is a mailbox or a reply queue."""
    return name.endswith(PIDBOX_SUFFIXES)


def is_reply_exchange(exchange: str) -> bool:
    """Whether ``exchange`` is a mailbox's reply exchange (``reply.<app>.pidbox``)."""
    return exchange.startswith(REPLY_MARK) and exchange.endswith(".pidbox")


def reply_queue_name(exchange: str, routing_key: str) -> str:
    """The reply queue kombu's mailbox declares for ``routing_key`` (a caller's oid)."""
    return f"{routing_key}.{exchange}"


def is_reply_queue(name: str) -> bool:
    """Whether ``name`` (kombu's or SQS's spelling) is a caller's reply queue."""
    return is_remote_control(name) and ("reply." in name or "-reply-" in name)


def remote_control_sqs_name(sqs_name: str) -> str:
    """``sqs_name`` of a remote-control queue fitted to SQS's 80 characters.

    A worker's hostname can make its mailbox longer; the end (``-<app>-pidbox``)
    and the start are kept, the middle becomes a digest of the whole name, so
    the name stays unique, recognisable and the same in every process.
    """
    if len(sqs_name) <= limits.MAX_QUEUE_NAME:
        return sqs_name
    digest = hashlib.sha256(sqs_name.encode()).hexdigest()[:10]
    tail = sqs_name[-30:]
    head = sqs_name[: limits.MAX_QUEUE_NAME - len(tail) - len(digest) - 2]
    return f"{head}-{digest}-{tail}"


#: Celery's remote control: a worker's mailbox is ``<hostname>.<exchange>.pidbox``, bound to the
#: fanout exchange ``<exchange>.pidbox`` (an SNS topic on SQS); a client collects replies in
#: ``<oid>.reply.<exchange>.pidbox``. ``<exchange>`` is ``control_exchange`` (``celery``).
PIDBOX = "pidbox"

QueueKind = Literal["task", "pidbox", "reply"]


def pidbox_queue(hostname: str, prefix: str = "", exchange: str = DEFAULT_QUEUE) -> str:
    """The SQS name of worker ``hostname``'s mailbox queue (fitted to 80 characters)."""
    return remote_control_sqs_name(entity_name(f"{prefix}{hostname}.{exchange}.{PIDBOX}"))


def pidbox_topic(prefix: str = "", exchange: str = DEFAULT_QUEUE) -> str:
    """The SNS topic kombu names after the fanout exchange ``<exchange>.pidbox``."""
    return entity_name(f"{prefix}{exchange}.{PIDBOX}")


def queue_kind(name: str, prefix: str = "", exchange: str = DEFAULT_QUEUE) -> QueueKind:
    """``"reply"`` for a client's reply queue, ``"pidbox"`` for a worker's mailbox, else ``"task"``.

    Judged from the SQS name ``name`` under the (unrewritten) ``prefix``: the
    names end with ``-reply-<exchange>-pidbox`` and ``-<exchange>-pidbox``.
    """
    head = entity_name(prefix)
    if not name.startswith(head) or name.endswith(".fifo"):
        return "task"
    tail = entity_name(f".{exchange}.{PIDBOX}")
    if name.endswith(entity_name(".reply") + tail):
        return "reply"
    if name.endswith(tail) and len(name) > len(head) + len(tail):
        return "pidbox"
    return "task"


def held_queues(queues: Iterable[Mapping[str, Any]]) -> set[str]:
    """Names among ``queues`` (rows of ``stats.gather()``) that hold messages for a person.

    A dead-letter queue (some row's ``dlq``) and a quarantine queue
    (:func:`is_quarantine`) keep what failed, for triage: no worker is meant
    to consume them, so they are no backlog, and holding messages there is a
    dead letter, not an unconsumed queue. Every face (health strip, metrics,
    alerts, scaling recipes, ``stats.json``) asks this one rule.
    """
    rows = list(queues)
    found = {dlq["name"] for q in rows if (dlq := q.get("dlq"))}
    return found | {q["name"] for q in rows if is_quarantine(q["name"])}


def transport_options(app: Celery) -> dict[str, Any]:
    """A copy of the app's ``broker_transport_options``."""
    return dict(app.conf.broker_transport_options or {})


def declared_queues(app: Celery) -> list[str]:
    """Celery queue names the app declares: default queue, ``task_queues``, routes."""
    conf = app.conf
    names: list[str] = [conf.task_default_queue or DEFAULT_QUEUE]
    for queue in conf.task_queues or ():
        names.append(getattr(queue, "name", None) or str(queue))
    routes = conf.task_routes
    for route_map in routes if isinstance(routes, list | tuple) else [routes]:
        if isinstance(route_map, Mapping):
            for route in route_map.values():
                queue = route.get("queue") if isinstance(route, Mapping) else None
                name = getattr(queue, "name", queue)
                if isinstance(name, str) and name:
                    names.append(name)
    return list(dict.fromkeys(names))


def endpoint_url(broker_url: str, options: Mapping[str, Any]) -> str | None:
    """The endpoint kombu will use: the broker URL's host with ``is_secure``."""
    parts = url_to_parts(broker_url or "sqs://")
    if not parts.hostname:
        return None
    scheme = "https" if options.get("is_secure") else "http"
    port = f":{parts.port}" if parts.port else ""
    return f"{scheme}://{parts.hostname}{port}"


def url_credentials(broker_url: str) -> tuple[str | None, str | None]:
    """The access key and secret in ``broker_url``, unquoted as kombu reads them."""
    parts = url_to_parts(broker_url or "sqs://")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return user, password


def is_sqs_url(broker_url: str | None) -> bool:
    """Whether ``broker_url`` names the SQS transport."""
    url = broker_url or ""
    return "://" in url and url.split("://", 1)[0].lower() == "sqs"


# --- one app's configuration -------------------------------------------------------


@dataclass(frozen=True)
class Topology:
    """One Celery app's broker configuration, with every derived fact kombu would derive.

    Build it with :meth:`of` once per pass; the fields are copies, so a pass
    sees one consistent configuration even if ``app.conf`` changes meanwhile.
    """

    app: Celery = field(repr=False, compare=False)
    broker_url: str = field(repr=False)
    options: dict[str, Any] = field(repr=False)
    #: Celery queue name -> SQS queue name (prefix + sanitised name), in declaration order.
    declared: dict[str, str]
    #: ``broker_read_url`` and ``broker_write_url`` when set: Celery uses them instead.
    other_urls: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, app: Celery | Topology | None = None) -> Topology:
        """The topology of ``app`` (resolved by :func:`celery_app`); a topology is kept."""
        if isinstance(app, Topology):
            return app
        celery = celery_app(app)
        options = transport_options(celery)
        prefix = options.get("queue_name_prefix", "") or ""
        declared = {q: entity_name(prefix + q) for q in declared_queues(celery)}
        others = tuple(
            url
            for url in (celery.conf.get("broker_read_url"), celery.conf.get("broker_write_url"))
            if isinstance(url, str) and url
        )
        return cls(celery, celery.conf.broker_url or "", options, declared, others)

    @property
    def is_sqs(self) -> bool:
        """Whether the broker is SQS at all."""
        return is_sqs_url(self.broker_url)

    @property
    def transport(self) -> str:
        """``broker_transport`` as a dotted path (``""``: the URL's scheme decides)."""
        value = self.app.conf.broker_transport
        if isinstance(value, type):
            return f"{value.__module__}:{value.__qualname__}"
        return str(value or "")

    @property
    def prefix(self) -> str:
        """``queue_name_prefix`` as configured (before kombu's rewriting)."""
        return str(self.options.get("queue_name_prefix", "") or "")

    @property
    def predefined(self) -> dict[str, Any]:
        """``predefined_queues``: SQS name -> spec (url, keys, backoff, region)."""
        return dict(self.options.get("predefined_queues") or {})

    @property
    def control_exchange(self) -> str:
        """Celery's ``control_exchange`` (its remote control's namespace), ``celery`` by default."""
        return str(self.app.conf.get("control_exchange") or DEFAULT_QUEUE)

    @property
    def remote_control(self) -> bool:
        """Whether workers serve remote control over SNS fanout (both must be on)."""
        return bool(
            self.app.conf.get("worker_enable_remote_control")
            and self.options.get("supports_fanout")
        )

    @property
    def pidbox_topic(self) -> str:
        """The SNS topic of the app's remote control (see :func:`pidbox_topic`)."""
        return pidbox_topic(self.prefix, self.control_exchange)

    def pidbox_queue(self, hostname: str) -> str:
        """The SQS name of worker ``hostname``'s mailbox (see :func:`pidbox_queue`)."""
        return pidbox_queue(hostname, self.prefix, self.control_exchange)

    def kind(self, sqs_name: str) -> QueueKind:
        """What the queue named ``sqs_name`` is for: see :func:`queue_kind`."""
        return queue_kind(sqs_name, self.prefix, self.control_exchange)

    def canonical_name(self, celery_queue: str) -> str:
        """The SQS name kombu uses for Celery queue ``celery_queue``."""
        return self.declared.get(celery_queue) or entity_name(self.prefix + celery_queue)

    @cached_property
    def visibility_lease(self) -> int:
        """Seconds of the visibility lease the workers keep (0: none, or kombu's transport)."""
        if self.app.conf.get("broker_transport") != "sqs_broker.transport:Transport":
            return 0
        try:
            return max(0, int(self.options.get("visibility_lease") or 0))
        except (TypeError, ValueError):
            return 0  # the transport refuses it when the worker starts

    @cached_property
    def endpoint(self) -> str | None:
        """The endpoint URL, or ``None`` for AWS's own."""
        return endpoint_url(self.broker_url, self.options)

    @cached_property
    def region(self) -> str:
        """The region kombu signs for: the transport option, else boto3's, else us-east-1."""
        configured = self.options.get("region")
        if configured:
            return str(configured)
        import boto3

        return boto3.Session().region_name or limits.DEFAULT_REGION

    @property
    def credentials(self) -> tuple[str | None, str | None]:
        """The access key and secret of the broker URL (never shown)."""
        return url_credentials(self.broker_url)

    @property
    def visibility_timeout(self) -> float | None:
        """The configured visibility timeout (kombu's default if unset); ``None`` if unreadable."""
        value = self.options.get("visibility_timeout", limits.KOMBU_VISIBILITY_TIMEOUT)
        if value is None or value == "":
            return limits.KOMBU_VISIBILITY_TIMEOUT
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    @cached_property
    def key(self) -> tuple[Any, ...]:
        """Identifies the configuration, for caches shared across requests."""
        options = json.dumps(self.options, sort_keys=True, default=str)
        return (self.broker_url, options, tuple(self.declared))
