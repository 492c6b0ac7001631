"""``manage.py sqs_probe``: exit 0 consuming, 1 stalled, lost, stopped or unknown, 2 no database."""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from sqs_broker.models import WorkerHeartbeat
from tests.support.env import base_env, database_url, run_python
from tests.support.proxy import Proxy
from tests.test_faults import wait_for, with_worker
from tests.test_remote_control import caller, remote_env

HOST = socket.gethostname()


def _row(hostname: str, seen_ago: float = 1.0, **fields) -> WorkerHeartbeat:
    seen = timezone.now() - timedelta(seconds=seen_ago)
    return WorkerHeartbeat.objects.create(
        **{
            "hostname": hostname,
            "pid": 1,
            "pool": "prefork",
            "concurrency": 2,
            "queues": ["app-celery"],
            "started_at": seen - timedelta(minutes=5),
            "last_seen": seen,
            "interval": 10.0,
            **fields,
        }
    )


def _progress(silent: float, stall_after: float = 25.0, seen_ago: float = 1.0) -> dict:
    """Progress of app-celery ``silent`` seconds before a heartbeat written ``seen_ago`` ago."""
    at = time.time() - seen_ago - silent
    return {"queues": {"app-celery": at}, "stall_after": stall_after}


def _probe(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("sqs_probe", *args, stdout=out, stderr=StringIO())
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


@pytest.mark.django_db
def test_sqs_probe__consuming_is_0() -> None:
    """A fresh heartbeat whose consumer progressed within stall_after: exit 0, said so."""
    _row("celery@pod-a", progress=_progress(2.0))
    code, out = _probe("--worker", "celery@pod-a")
    assert code == 0
    assert out.startswith("OK: celery@pod-a is consuming: last progress ")
    assert "(stalls after 25 s)." in out


@pytest.mark.django_db
def test_sqs_probe__stalled_is_1() -> None:
    """Heartbeats arrive but the consumer has been silent past stall_after: exit 1."""
    _row("celery@pod-a", progress=_progress(40.0))
    code, out = _probe("--worker", "celery@pod-a")
    assert code == 1
    assert out.startswith("FAIL: celery@pod-a is stalled: heartbeats arrive but app-celery made")
    assert "more than 25 s" in out


@pytest.mark.django_db
def test_sqs_probe__lost_is_1() -> None:
    """No heartbeat for three intervals: exit 1, even with a consumer that was progressing."""
    _row("celery@pod-a", seen_ago=45.0, progress=_progress(1.0, seen_ago=45.0))
    code, out = _probe("--worker", "celery@pod-a")
    assert code == 1
    assert re.fullmatch(r"FAIL: celery@pod-a is lost: no heartbeat for 45(\.\d)? s\.", out.strip())


@pytest.mark.django_db
def test_sqs_probe__unknown_is_1() -> None:
    """No heartbeat of that name (telemetry off, a typo, not started yet): exit 1."""
    _row("celery@other")
    code, out = _probe("--worker", "celery@pod-a")
    assert (code, out.strip()) == (
        1,
        "UNKNOWN: no heartbeat of celery@pod-a (is SQS_BROKER_TELEMETRY on?).",
    )


@pytest.mark.django_db
def test_sqs_probe__stopped_is_1() -> None:
    """A worker that shut down warmly is not consuming: exit 1."""
    row = _row("celery@pod-a")
    row.stopped_at = row.last_seen
    row.save()
    code, out = _probe("--worker", "celery@pod-a")
    assert code == 1 and out.startswith("FAIL: celery@pod-a stopped (warm shutdown) ")


@pytest.mark.django_db
def test_sqs_probe__progress_not_reported_is_0_and_said() -> None:
    """A transport that reports no progress (kombu's): alive is all that can be said, exit 0."""
    _row("celery@pod-a")
    code, out = _probe("--worker", "celery@pod-a")
    assert code == 0
    assert out.startswith("OK: celery@pod-a is alive (heartbeat ")
    assert "reports no consumer progress" in out


@pytest.mark.django_db
def test_sqs_probe__default_is_this_machines_workers() -> None:
    """Without --worker: the workers named *@<hostname>, a stopped earlier one left out."""
    _row(f"celery@{HOST}", progress=_progress(1.0))
    old = _row(f"old@{HOST}", seen_ago=600)
    old.stopped_at = old.last_seen
    old.save()
    _row("celery@elsewhere", seen_ago=600)  # lost, but not this machine's
    code, out = _probe("--json")
    result = json.loads(out)
    assert (code, result["status"], result["worker"]) == (0, "consuming", f"*@{HOST}")
    assert [w["hostname"] for w in result["workers"]] == [f"celery@{HOST}"]

    _row(f"beat@{HOST}", progress=_progress(400.0, stall_after=300.0))
    code, out = _probe("--json")
    result = json.loads(out)
    assert (code, result["status"]) == (1, "stalled")  # the worst of this machine's
    states = {w["hostname"]: w["state"] for w in result["workers"]}
    assert states == {f"beat@{HOST}": "stalled", f"celery@{HOST}": "consuming"}
    stalled = next(w for w in result["workers"] if w["state"] == "stalled")
    assert stalled["stalled_queues"] == ["app-celery"] and stalled["stall_after"] == 300.0


@pytest.mark.django_db
def test_sqs_probe__worker_name_expands_like_celery() -> None:
    """--worker celery@%h names this machine's worker, as celery -n does."""
    _row(f"celery@{HOST}", progress=_progress(1.0))
    code, out = _probe("--worker", "celery@%h", "--json")
    result = json.loads(out)
    assert (code, result["worker"], result["exit_code"]) == (0, f"celery@{HOST}", 0)


@pytest.mark.django_db(transaction=True)
def test_sqs_probe__database_unreadable_is_2() -> None:
    """The heartbeat table cannot be read (here: not migrated): exit 2, could not check."""
    with connection.schema_editor() as editor:
        editor.delete_model(WorkerHeartbeat)
    try:
        code, out = _probe("--worker", "celery@pod-a")
        assert code == 2
        assert out.startswith(
            (
                "COULD NOT CHECK: OperationalError: no such table",  # SQLite
                "COULD NOT CHECK: ProgrammingError: relation",  # PostgreSQL
            )
        )
        code, out = _probe("--json")
        assert (code, json.loads(out)["status"]) == (2, "error")
    finally:
        with connection.schema_editor() as editor:
            editor.create_model(WorkerHeartbeat)


@pytest.mark.django_db(transaction=True)
def test_sqs_probe__a_process_that_makes_no_sqs_call(sqs_endpoint, tmp_path) -> None:
    """As a probe runs it: its own process, no request to SQS; 2 when the database is gone."""
    _row(f"celery@{HOST}", progress=_progress(1.0))
    with Proxy.to(sqs_endpoint) as proxy:
        env = base_env(SQS_ENDPOINT_URL=proxy.endpoint_url, DATABASE_URL=database_url())
        env.setdefault("DJANGO_SECRET_KEY", "test-secret-key-" + "x" * 40)
        started = time.monotonic()
        done = run_python("manage.py", "sqs_probe", env=env)
        took = time.monotonic() - started
        assert (done.returncode, done.stderr) == (0, ""), done.stdout
        assert done.stdout.startswith(f"OK: celery@{HOST} is consuming")
        gone = {**env, "DATABASE_URL": f"sqlite:///{tmp_path}/missing/db.sqlite3"}
        down = run_python("manage.py", "sqs_probe", env=gone)
        assert down.returncode == 2, down.stdout + down.stderr
        assert down.stdout.startswith("COULD NOT CHECK: OperationalError: unable to open")
        assert proxy.connections == 0 and not proxy.requests
    print(f"sqs_probe took {took:.2f} s as a process")


@pytest.mark.django_db
def test_sqs_probe__ping_needs_remote_control() -> None:
    """--ping without remote control: could not check (2), saying what to turn on."""
    _row("celery@pod-a", progress=_progress(2.0))
    code, out = _probe("--worker", "celery@pod-a", "--ping")
    assert code == 2
    assert "needs remote control" in out and "SQS_BROKER_REMOTE_CONTROL" in out


def _reply_queues(sqs, unique: str) -> set[str]:
    urls = sqs.list_queues(QueueNamePrefix=f"{unique}-").get("QueueUrls", [])
    return {u.rsplit("/", 1)[-1] for u in urls if u.endswith("-reply-celery-pidbox")}


@with_worker
def test_sqs_probe__ping_tells_a_stuck_consumer_loop(start_worker, sqs, unique) -> None:
    """A real worker answers ping (0); while a task blocks its solo pool, its heartbeat still
    arrives but the ping goes unanswered: unresponsive (1); without --ping it passes."""
    env = remote_env(unique, SQS_BROKER_TELEMETRY="true", SQS_BROKER_TELEMETRY_INTERVAL="1")
    worker = start_worker(env)
    app = caller(env)
    assert wait_for(lambda: bool(app.control.ping(timeout=1.0, limit=1)), 30), worker.output()
    (hostname,) = app.control.ping(timeout=2.0, limit=1)[0]
    assert wait_for(lambda: WorkerHeartbeat.objects.filter(hostname=hostname).exists(), 30)
    with override_settings(SQS_BROKER_CELERY_APP=app):
        code, out = _probe("--worker", hostname, "--ping", "--ping-timeout", "3")
        assert code == 0, out
        # As a probe runs: a process of its own, which leaves no reply queue behind.
        before = _reply_queues(sqs, unique)
        run_env = {**env, "DATABASE_URL": database_url()}
        done = run_python("manage.py", "sqs_probe", "--worker", hostname, "--ping", env=run_env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith(f"OK: {hostname}"), done.stdout
        assert _reply_queues(sqs, unique) == before
        app.send_task("project.demo.tasks.slow", kwargs={"seconds": 20})
        assert wait_for(lambda: "project.demo.tasks.slow" in worker.output(), 30)
        time.sleep(2)  # a heartbeat written while the task runs
        code, out = _probe("--worker", hostname, "--ping", "--ping-timeout", "3")
        assert code == 1, out
        assert "unresponsive" in out and "did not answer ping" in out
        code, out = _probe("--worker", hostname)
        assert code == 0, out
