"""Helpers the tests and the benchmarks share; fixtures stay in ``tests/conftest.py``.

- ``env``: the environment of a test's processes, Celery apps built from it,
  ``python`` subprocesses in the project root, the test database's URL.
- ``workers``: real ``celery -A project worker`` subprocesses (the harness of
  the ``start_worker`` fixture and of the benchmarks).
- ``queues``: SQS set-ups and reads (a queue with its DLQ, drain, a queue's state).
- ``localserver``: this run's moto server (one per pytest process).
- ``proxy``, ``movesqs``: endpoints put between a client and moto.
- ``promtool``, ``users``, ``files``: promtool, users with permissions, a clone's files.
- ``browser``: Debian's chromium for Playwright, the browser tests' marks, the CSP watcher.
- ``remote``: Celery's remote control answered as named workers would, heartbeats.
- ``nodeaws``: a second SQS and S3 (``local-aws-sqs``, ``s3rver`` on Node.js), not moto.

Nothing here starts a server at import: a test that needs SQS asks for the
``sqs_endpoint`` fixture (or one built on it: ``sqs``, ``start_worker``).
"""

from __future__ import annotations

from pathlib import Path

#: The project's root: where ``manage.py`` is.
ROOT = Path(__file__).resolve().parent.parent.parent
