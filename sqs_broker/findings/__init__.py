"""Every pitfall of Celery on SQS, found offline or on the live queues.

This package is the one place that knows the pitfalls. System checks
(:mod:`sqs_broker.checks`), ``manage.py sqs_check`` and the dashboard all
ask it and only format what it returns.

- :mod:`~sqs_broker.findings.base`: :class:`Finding`, :func:`make`, levels
  and the registry (:func:`~sqs_broker.findings.base.register`);
- :mod:`~sqs_broker.findings.catalogue`: every id with the caveat it guards;
- one module per topic, each check registered as offline or online:
  :mod:`~sqs_broker.findings.url` (URL and credentials),
  :mod:`~sqs_broker.findings.polling`, :mod:`~sqs_broker.findings.visibility`
  (visibility timeout, results, shutdown), :mod:`~sqs_broker.findings.predefined`
  (predefined queues and backoff), :mod:`~sqs_broker.findings.sts` (STS and
  identity), :mod:`~sqs_broker.findings.names` (names and runtime),
  :mod:`~sqs_broker.findings.live` (live queues), :mod:`~sqs_broker.findings.remote`
  (remote control's SNS topic), :mod:`~sqs_broker.findings.causes`
  (causes named from measured figures),
  :mod:`~sqs_broker.findings.payloads` (message sizes, the large-payload bucket);
- :mod:`~sqs_broker.findings.failures`: what a failed call means;
- :mod:`~sqs_broker.findings.run`: :func:`offline`, :func:`online`,
  :func:`online_within`.

A new pitfall is one catalogue row and one registered function in its topic
module; :mod:`~sqs_broker.findings.docs` writes its row in ``docs/findings.md``.
"""

from __future__ import annotations

# Imported for their registrations, in the order their findings are listed.
# isort: off
from sqs_broker.findings import url  # noqa: F401
from sqs_broker.findings import polling  # noqa: F401
from sqs_broker.findings import visibility  # noqa: F401
from sqs_broker.findings import predefined  # noqa: F401
from sqs_broker.findings import sts  # noqa: F401
from sqs_broker.findings import names  # noqa: F401
from sqs_broker.findings import servers  # noqa: F401
from sqs_broker.findings import live  # noqa: F401
from sqs_broker.findings import remote  # noqa: F401
from sqs_broker.findings import causes  # noqa: F401
from sqs_broker.findings import payloads  # noqa: F401

# isort: on
from sqs_broker.findings.base import (
    LEVELS,
    Finding,
    Level,
    could_not_check,
    make,
    rank,
    unsilenced,
)
from sqs_broker.findings.catalogue import CATALOGUE, UNCHECKABLE
from sqs_broker.findings.causes import Measured
from sqs_broker.findings.names import pycurl_missing
from sqs_broker.findings.run import measured, offline, online, online_within
from sqs_broker.findings.sts import missing_credentials
from sqs_broker.findings.url import debug_with_url_credentials, unsafe_debug
from sqs_broker.findings.visibility import registered_tasks

__all__ = [
    "CATALOGUE",
    "LEVELS",
    "UNCHECKABLE",
    "Finding",
    "Level",
    "Measured",
    "could_not_check",
    "debug_with_url_credentials",
    "make",
    "measured",
    "missing_credentials",
    "offline",
    "online",
    "online_within",
    "pycurl_missing",
    "rank",
    "registered_tasks",
    "unsafe_debug",
    "unsilenced",
]
