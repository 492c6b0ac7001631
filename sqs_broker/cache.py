"""Every cache of sqs_broker: the shared ones through Django's cache framework, and this
process's own, with one :func:`reset`.

Queue attributes, queue listings and the online findings are kept in the
``CACHES`` alias named by ``SQS_BROKER_CACHE`` (default ``"default"``). With
Django's default local-memory cache that is one process, as before; with
Redis, Memcached or the database cache every web process and every viewer
reuses one SQS pass per TTL.

Keys are hashes of what identifies an entry (the broker configuration may
hold keys: they never reach the cache server as text). :func:`lease` keeps
several processes that miss at the same moment from asking SQS together:
one takes the lease and asks, the others wait for its answer. Dead-letter
moves keep their records there too (:mod:`sqs_broker.moves`).

What cannot leave the process (boto3 clients, STS credentials, futures of
passes in flight, CloudWatch answers, what an endpoint lacks) is kept in a
:class:`Local`, each with its own lock; :func:`reset` forgets all of them and
every shared entry at once (tests, configuration changes).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from django.core.cache import BaseCache, caches

from sqs_broker.conf import app_settings

logger = logging.getLogger(__name__)

#: Bumped by :func:`clear`: this process stops reading entries written before.
_generation = 0
_generation_lock = threading.Lock()
#: Seconds between looks at the cache while another process holds the lease.
POLL = 0.05


def backend() -> BaseCache:
    """The cache named by ``SQS_BROKER_CACHE``."""
    return caches[app_settings.CACHE]


def key(kind: str, *parts: Any) -> str:
    """A short key for ``parts`` (hashed: no configuration text reaches the cache)."""
    digest = hashlib.sha256(repr((_generation, *parts)).encode()).hexdigest()[:40]
    return f"sqs_broker:{kind}:{digest}"


def _timeout(ttl: float) -> int:
    # Whole seconds (Memcached and Redis take no fractions); readers check the age exactly.
    return max(1, math.ceil(ttl))


def _failed(action: str, exc: Exception) -> None:
    # A cache outage costs SQS calls, not the page: said in the log, then asked without it.
    logger.warning("The %s cache could not %s: %s", app_settings.CACHE, action, exc)


def get_many(keys: Iterable[str]) -> dict[str, Any]:
    """Entries found under ``keys``; an unreachable cache finds none (and logs why)."""
    keys = list(keys)
    if not keys:
        return {}
    try:
        return backend().get_many(keys)
    except Exception as exc:
        _failed("be read", exc)
        return {}


def get(key: str) -> Any:
    """The entry under ``key``, or ``None``."""
    return get_many([key]).get(key)


def set_many(entries: Mapping[str, Any], ttl: float) -> None:
    """Store ``entries`` for ``ttl`` seconds (rounded up)."""
    if not entries or ttl <= 0:
        return
    try:
        backend().set_many(dict(entries), timeout=_timeout(ttl))
    except Exception as exc:
        _failed("be written", exc)


def delete(key: str) -> None:
    """Drop the entry under ``key``."""
    try:
        backend().delete(key)
    except Exception as exc:
        _failed("drop an entry", exc)


def acquire(name: str, seconds: float) -> bool:
    """Take the lease ``name`` for ``seconds``; ``False`` when another holder has it."""
    try:
        return bool(backend().add(name, time.time(), timeout=_timeout(seconds)))
    except Exception as exc:
        _failed("take a lease", exc)
        return True  # no cache to share: ask SQS


def wait_for(keys: list[str], seconds: float, fresh: Any) -> dict[str, Any]:
    """Poll for ``keys`` for up to ``seconds``; returns the entries ``fresh(entry)`` accepts."""
    deadline = time.monotonic() + seconds
    found: dict[str, Any] = {}
    while True:
        hits = get_many(k for k in keys if k not in found)
        found.update({k: v for k, v in hits.items() if fresh(v)})
        if len(found) == len(keys) or time.monotonic() >= deadline:
            return found
        time.sleep(POLL)


def clear() -> None:
    """Stop reading what this process cached before (tests, configuration changes).

    The entries stay on a shared server until they expire; other processes
    keep their own view, as they would after a restart of this one.
    """
    global _generation
    with _generation_lock:
        _generation += 1


# --- this process's own caches -------------------------------------------------------

K = TypeVar("K")
V = TypeVar("V")


class Local(Generic[K, V]):
    """A process-wide dict with its lock, emptied by :func:`reset`.

    ``entries`` may be read and changed under ``lock`` for compound steps (a
    lookup and a fill that must not race); :meth:`get` and :meth:`put` take
    the lock themselves. ``on_reset`` receives what :meth:`clear` dropped (a
    pool to shut down, say), outside the lock.
    """

    def __init__(self, name: str, on_reset: Callable[[dict[K, V]], None] | None = None) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.entries: dict[K, V] = {}
        self._on_reset = on_reset
        _locals.append(self)

    def get(self, key: K) -> V | None:
        """The entry under ``key``, or ``None``."""
        with self.lock:
            return self.entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` under ``key``."""
        with self.lock:
            self.entries[key] = value

    def clear(self) -> None:
        """Drop every entry (then hand them to ``on_reset``)."""
        with self.lock:
            dropped, self.entries = self.entries, {}
        if self._on_reset is not None and dropped:
            self._on_reset(dropped)

    def __repr__(self) -> str:
        return f"<Local {self.name}: {len(self.entries)} entries>"


#: Every :class:`Local` made, in the order the modules were imported.
_locals: list[Local[Any, Any]] = []


def locals_() -> list[Local[Any, Any]]:
    """The registered process caches (for tests and the architecture doc)."""
    return list(_locals)


def reset() -> None:
    """Forget everything sqs_broker cached: every :class:`Local`, and the shared entries.

    Shared entries stay on the cache server until they expire; this process
    stops reading them (:func:`clear`).
    """
    for local in list(_locals):
        local.clear()
    clear()
