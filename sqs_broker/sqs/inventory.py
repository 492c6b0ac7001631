"""Which queues the app uses: declared, predefined and found under the prefix.

Listings are shared through :mod:`sqs_broker.cache` for ``SQS_BROKER_CACHE_TTL``
seconds, with a lease so that processes missing at once list only once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from botocore.exceptions import ClientError

from sqs_broker import cache
from sqs_broker.conf import app_settings
from sqs_broker.sqs.clients import client
from sqs_broker.sqs.errors import failure_kind
from sqs_broker.topology import Topology, entity_name

Source = Literal["declared", "predefined", "prefix"]


@dataclass(frozen=True)
class QueueRef:
    """A queue the app uses: its SQS name, where it was found and its URL if known."""

    name: str
    source: Source
    url: str | None = None
    celery_name: str | None = None

    @property
    def fifo(self) -> bool:
        """Whether the name is a FIFO queue's (it ends with .fifo)."""
        return self.name.endswith(".fifo")


def dead_letter_ref(name: str, topo: Topology) -> QueueRef:
    """The ref of dead-letter queue ``name``: predefined (with its URL) if it is one."""
    spec = topo.predefined.get(name)
    if spec is not None:
        return QueueRef(name, "predefined", spec.get("url"), name)
    return QueueRef(name, "declared", None, None)


def list_queue_urls(prefix: str, topo: Topology, max_age: float | None = None) -> list[str]:
    """Every queue URL under ``prefix``, paging past SQS's 1,000 per answer.

    An answer younger than ``max_age`` (default ``SQS_BROKER_CACHE_TTL``) is
    reused from the shared cache (:mod:`sqs_broker.cache`), so a reload storm
    costs one listing per TTL, not one per request or per process.
    """
    entry = cache.key("listing", prefix, topo.endpoint)
    ttl = app_settings.CACHE_TTL if max_age is None else max_age

    def fresh(hit: Any) -> bool:
        return hit is not None and time.time() - hit[0] < ttl

    if ttl > 0:
        hit = cache.get(entry)
        if not fresh(hit):
            lease = f"{entry}:lease"
            if not cache.acquire(lease, app_settings.GATHER_TIMEOUT):
                hit = cache.wait_for([entry], app_settings.GATHER_TIMEOUT, fresh).get(entry)
            else:
                try:
                    hit = (time.time(), _list_queue_urls(prefix, topo))
                    cache.set_many({entry: hit}, ttl)
                finally:
                    cache.delete(lease)
        if fresh(hit):
            return list(hit[1])
    return _list_queue_urls(prefix, topo)


def _list_queue_urls(prefix: str, topo: Topology) -> list[str]:
    sqs = client(None, topo)
    urls: list[str] = []
    kwargs: dict[str, Any] = {"MaxResults": 1000}
    if prefix:
        kwargs["QueueNamePrefix"] = prefix
    while True:
        answer = sqs.list_queues(**kwargs)
        urls.extend(answer.get("QueueUrls", []))
        token = answer.get("NextToken")
        if not token:
            return urls
        kwargs["NextToken"] = token


def inventory(topo: Topology, discover: bool | None = None) -> list[QueueRef]:
    """Declared, predefined and (with a prefix, or when asked) discovered queues.

    Discovery lists queues and raises when that fails; callers that must
    still show something ask again with ``discover=False``. A declared queue
    that discovery finds keeps the URL it was listed with, which saves its
    ``GetQueueUrl`` call in :func:`fetch_one`.
    """
    predefined = topo.predefined
    refs: dict[str, QueueRef] = {}
    for name, spec in predefined.items():
        refs[name] = QueueRef(name, "predefined", spec.get("url"), name)
    if not predefined:
        for celery_name, name in topo.declared.items():
            refs.setdefault(name, QueueRef(name, "declared", None, celery_name))
        prefix = topo.prefix
        if discover if discover is not None else (bool(prefix) or app_settings.DISCOVER_BY_PREFIX):
            # kombu names a queue entity_name(prefix + name): "app." lists as "app-".
            for url in list_queue_urls(entity_name(prefix), topo):
                name = url.rstrip("/").rsplit("/", 1)[-1]
                known = refs.get(name)
                if known is None:
                    refs[name] = QueueRef(name, "prefix", url)
                elif known.url is None:
                    refs[name] = replace(known, url=url)
    return list(refs.values())


def queue_exists(
    name: str,
    topo: Topology,
    owner: str | None = None,
    via: str | None = None,
) -> bool:
    """Whether queue ``name`` (of account ``owner``) exists, asked with ``via``'s client."""
    kwargs: dict[str, Any] = {"QueueName": name}
    if owner:
        kwargs["QueueOwnerAWSAccountId"] = owner
    try:
        client(via, topo).get_queue_url(**kwargs)
    except ClientError as exc:
        if failure_kind(exc) == "missing":
            return False
        raise
    return True


def list_queue_names(prefix: str, topo: Topology, max_age: float | None = None) -> list[str]:
    """Queue names under ``prefix``; the listing is shared with :func:`list_queue_urls`."""
    return [url.rstrip("/").rsplit("/", 1)[-1] for url in list_queue_urls(prefix, topo, max_age)]
