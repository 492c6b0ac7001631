"""Fixtures and collection hooks: the moto server, SQS clients and real worker subprocesses.

Only fixtures start servers and workers, and a test gets them by asking:
``sqs_endpoint`` (directly or through ``sqs``, ``start_worker``, ...) starts
this process's moto server; ``start_worker`` starts ``celery worker``
subprocesses. The marks ``sqs`` and ``worker`` follow from what a test asks
for, so ``-m "not sqs and not worker and not browser"`` (``make check``)
selects by declaration. A test that talks to SQS without declaring it fails:
its endpoint is a tripwire while it runs. Helpers live in ``tests/support/``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3.util.connection

from tests.support import localserver
from tests.support.env import database_url
from tests.support.workers import Worker, spawn

#: Fixtures that mark the tests using them (directly or through other fixtures).
DECLARED_MARKS = {"sqs_endpoint": "sqs", "start_worker": "worker"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by the servers its fixtures start, so ``-m`` selects by declaration."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, mark in DECLARED_MARKS.items():
            if fixture in names:
                item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(scope="session")
def sqs_endpoint() -> str:
    """This process's moto server, started the first time a test needs it."""
    return localserver.ensure()


@pytest.fixture(scope="session")
def _tripwire() -> localserver.Tripwire:
    return localserver.Tripwire()


@pytest.fixture(autouse=True)
def _sqs_only_when_declared(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    _tripwire: localserver.Tripwire,
) -> Iterator[None]:
    """A test that declares no SQS gets a tripwire for an endpoint, and fails if it calls it.

    Its subprocesses (through ``base_env``) see the tripwire's address; in this
    process, Django's settings hold the moto address from import time, so a
    connection there is refused and counted. Either way the test fails, with
    or without a server that an earlier test started.
    """
    if "sqs_endpoint" in request.fixturenames:
        yield
        return
    moto = localserver.host_port(localserver.address())
    refused: list[tuple[str, int]] = []
    create_connection = urllib3.util.connection.create_connection

    def guarded(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        if (address[0], int(address[1])) == moto:
            refused.append(moto)
            raise ConnectionRefusedError(f"undeclared SQS call to {moto} (tests/conftest.py)")
        return create_connection(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", guarded)
    monkeypatch.setenv("SQS_ENDPOINT_URL", _tripwire.endpoint_url)
    _tripwire.reset()
    yield
    calls = len(refused) + _tripwire.contacts
    if calls:
        pytest.fail(
            f"{request.node.nodeid} called SQS {calls} time(s) without declaring it: ask for "
            "the sqs_endpoint fixture (or sqs, start_worker), or add "
            '@pytest.mark.usefixtures("sqs_endpoint")',
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _fresh_module_state() -> Iterator[None]:
    """Pools and caches kept at module level start empty in every test and end so."""
    from sqs_broker import cache

    cache.reset()
    yield
    cache.reset()


@pytest.fixture
def sqs(sqs_endpoint: str) -> Any:
    """A boto3 SQS client on the moto server."""
    return boto3.client("sqs", endpoint_url=sqs_endpoint, region_name="us-east-1")


@pytest.fixture
def unique() -> str:
    """A short name no other test uses, for queues and prefixes."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def s3(sqs_endpoint: str) -> Any:
    """A boto3 S3 client on the moto server (it serves S3 beside SQS)."""
    return boto3.client("s3", endpoint_url=sqs_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(unique: str, s3: Any, sqs_endpoint: str) -> Iterator[str]:
    """A bucket on moto, and settings in this process that offload large messages to it."""
    from django.test import override_settings

    from sqs_broker import payloads

    s3.create_bucket(Bucket=unique)
    payloads.forget_clients()
    with override_settings(
        SQS_BROKER_LARGE_PAYLOAD_BUCKET=unique,
        SQS_BROKER_LARGE_PAYLOAD_ENDPOINT_URL=sqs_endpoint,
    ):
        yield unique
    payloads.forget_clients()


@pytest.fixture
def plain_factory() -> Iterator[None]:
    """The stock log-record factory for the test, the process's own afterwards."""
    before = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    yield
    logging.setLogRecordFactory(before)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright, one per module of browser tests."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch

    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


@pytest.fixture
def start_worker(sqs_endpoint: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start ``celery -A project worker`` subprocesses; all are stopped after the test."""
    started: list[Worker] = []

    def start(
        env: Mapping[str, str],
        queues: str = "celery",
        pool: str = "solo",
        wait: bool = True,
        extra: tuple[str, ...] = (),
    ) -> Worker:
        worker = spawn(
            env,
            tmp_path / f"worker-{len(started)}.log",
            database_url=database_url(),
            queues=queues,
            pool=pool,
            name=f"w{len(started)}-{uuid.uuid4().hex[:6]}",
            extra=extra,
        )
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for index, worker in enumerate(started):
        worker.stop()
        # Captured by pytest and shown only when the test fails.
        print(f"--- worker {index} log ---\n{worker.output()[-6000:]}")
