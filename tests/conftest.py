"""Shared fixtures: the moto server, SQS clients, Celery apps and real worker subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from celery import Celery

from sqs_broker.localsqs import stop_process
from sqs_broker.settings import celery_conf
from tests import localserver

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pure: needs no SQS server (moto is not started for it); run with -m pure"
    )


@pytest.fixture(scope="session")
def sqs_endpoint() -> str:
    """This run's moto server, started the first time a test needs it."""
    return localserver.ensure()


@pytest.fixture(autouse=True)
def _local_sqs(request: pytest.FixtureRequest) -> None:
    """Every test but those marked ``pure`` may talk to SQS: start the server for it."""
    if request.node.get_closest_marker("pure") is None:
        request.getfixturevalue("sqs_endpoint")


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


def base_env(**overrides: str) -> dict[str, str]:
    """The environment of this test run, with SQS variables of the test's own."""
    # DATABASE_URL names the database the tests were started with; workers
    # must use the test database instead (start_worker sets it).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SQS_", "CELERY_")) and k != "DATABASE_URL"
    }
    env["SQS_ENDPOINT_URL"] = os.environ["SQS_ENDPOINT_URL"]
    env.update(overrides)
    return env


def make_app(env: Mapping[str, str], **conf: Any) -> Celery:
    """A Celery app configured exactly as sqs_broker.settings configures Django's."""
    app = Celery("test", set_as_current=False)
    app.config_from_object(celery_conf(env))
    app.conf.update(conf)
    return app


def run_python(
    *args: str,
    env: Mapping[str, str],
    settings: str = "project.settings",
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``python *args`` in the project root with ``env`` and ``settings``; output as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": settings},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def queue_with_dlq(
    sqs: Any, name: str, dlq_name: str, max_receive_count: int = 5, **attributes: str
) -> tuple[str, str]:
    """Create ``dlq_name``, then ``name`` redriving to it (plus ``attributes``); both URLs."""
    import json

    dlq = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    policy = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": str(max_receive_count)}
    attributes["RedrivePolicy"] = json.dumps(policy)
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, dlq


def user_with(*perms: str, staff: bool = True, username: str | None = None) -> Any:
    """A new user holding the given ``sqs_broker`` permission codenames."""
    from django.contrib.auth.models import Permission, User

    name = username or f"u{uuid.uuid4().hex[:8]}"
    user = User.objects.create_user(name, password="pw", is_staff=staff)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="sqs_broker", codename__in=perms)
    )
    if len(perms) != user.user_permissions.count():
        raise AssertionError(f"unknown permission among {perms}")
    return user


def database_url() -> str:
    """A URL for the database the tests use, for worker subprocesses."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    return f"postgres://{user}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(repr=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.output():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"worker not ready in {timeout} s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        return stop_process(self.process, timeout, sig)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start ``celery -A project worker`` subprocesses; all are stopped after the test."""
    started: list[Worker] = []

    def start(
        env: Mapping[str, str],
        queues: str = "celery",
        pool: str = "solo",
        wait: bool = True,
        extra: tuple[str, ...] = (),
    ) -> Worker:
        log = tmp_path / f"worker-{len(started)}.log"
        full_env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_SECRET_KEY": env.get("DJANGO_SECRET_KEY", "test-secret-key-" + "x" * 40),
            "DATABASE_URL": env.get("DATABASE_URL", database_url()),
            "PYTHONUNBUFFERED": "1",
        }
        argv = [
            sys.executable, "-m", "celery", "-A", "project", "worker",
            f"--pool={pool}", "-Q", queues, "--loglevel=INFO",
            "-n", f"w{len(started)}-{uuid.uuid4().hex[:6]}@%h",
            "--without-heartbeat", "--without-mingle", "--without-gossip", *extra,
        ]  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
            )
        worker = Worker(process, log, full_env)
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for index, worker in enumerate(started):
        worker.stop()
        # Captured by pytest and shown only when the test fails.
        print(f"--- worker {index} log ---\n{worker.output()[-6000:]}")


def fresh_copy(target: Path) -> Path:
    """The files a clone would have (tracked, plus new ones git does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def prefixed_app(unique: str) -> Celery:
    """A Celery app whose queues carry this test's own prefix."""
    return make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))


def queue_state(name: str, app: Any) -> Any:
    """The attributes of the declared queue ``name``, asserting SQS answered."""
    from sqs_broker import sqs as sqs_module
    from sqs_broker.topology import Topology

    state = sqs_module.fetch_one(sqs_module.QueueRef(name, "declared"), Topology.of(app))
    assert state.error is None, state.error
    return state


def drain(sqs: Any, url: str, visibility_timeout: int | None = None) -> list[dict[str, Any]]:
    """Receive every message of ``url`` (all attributes), leaving them in flight; each once."""
    found: dict[str, dict[str, Any]] = {}
    extra = {} if visibility_timeout is None else {"VisibilityTimeout": visibility_timeout}
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
            **extra,
        ).get("Messages", [])
        if not got:
            return list(found.values())
        for message in got:
            found.setdefault(message["MessageId"], message)
