"""``SQS_REMOTE_CONTROL`` → ``SQS_BROKER_REMOTE_CONTROL``, and what ``include()`` turns on with it.

Celery's remote control (``inspect``, ``control``) needs a fanout exchange; on
SQS, kombu 5.7 carries it through SNS (the ``supports_fanout`` transport option)
and :mod:`sqs_broker.transport.remote` does the rest. Off (the default), Celery's
remote control stays off, as before: without fanout a worker would only create
a mailbox nobody can reach.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from sqs_broker.settings.parse import boolean, raw

#: The Django setting that turns Celery's remote control on (through SNS fanout).
REMOTE_CONTROL = "SQS_BROKER_REMOTE_CONTROL"
#: Celery's own switch, and the transport options' key.
CELERY_SWITCH = "CELERY_WORKER_ENABLE_REMOTE_CONTROL"
OPTIONS = "CELERY_BROKER_TRANSPORT_OPTIONS"


def remote_control(env: Mapping[str, str], settings: dict[str, Any]) -> None:
    """Add ``SQS_BROKER_REMOTE_CONTROL`` from ``SQS_REMOTE_CONTROL`` (when set) to ``settings``,
    with Celery's remote control and SNS fanout when it is true."""
    if raw(env, "SQS_REMOTE_CONTROL") is None:
        return
    on = settings[REMOTE_CONTROL] = boolean(env, "SQS_REMOTE_CONTROL", False)
    if on:
        settings[CELERY_SWITCH] = True
        settings[OPTIONS]["supports_fanout"] = True


def apply_remote_control(namespace: MutableMapping[str, Any], merged: Mapping[str, Any]) -> None:
    """Write ``merged`` (what ``include()`` built) into ``namespace``; then, with
    ``SQS_BROKER_REMOTE_CONTROL`` on, Celery's remote control and SNS fanout on too.

    The module's own ``CELERY_WORKER_ENABLE_REMOTE_CONTROL = False`` beside the
    setting on is a contradiction, refused.
    """
    chosen = namespace.get(CELERY_SWITCH)
    namespace.update(merged)
    remote = namespace.get(REMOTE_CONTROL, False)
    if not isinstance(remote, bool):
        raise ImproperlyConfigured(f"{REMOTE_CONTROL} must be True or False; got {remote!r}.")
    if not remote:
        return
    if chosen is False:
        raise ImproperlyConfigured(
            f"{REMOTE_CONTROL} is True but {CELERY_SWITCH} is False in the settings module: "
            "remove one of them."
        )
    namespace[CELERY_SWITCH] = True
    options = namespace.get(OPTIONS)
    if isinstance(options, MutableMapping):
        options.setdefault("supports_fanout", True)
