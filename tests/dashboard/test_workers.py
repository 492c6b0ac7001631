"""Tests of sqs_broker.dashboard.workers: the workers' tasks and the worker actions' pages.

X
the real-worker tests at the end run a worker with remote control over moto's
SNS and SQS.
"""

from __future__ import annotations

import logging
import os
import time

import pytest
from django.contrib.admin.models import LogEntry
from django.test import override_settings

from sqs_broker import remote
from sqs_broker.models import Revocation
from tests.support.env import base_env, make_app
from tests.support.remote import ACTIVE, SCHEDULED, Control, beat, remote_app
from tests.support.users import user_with

DASHBOARD = "/admin/sqs_broker/dashboard/"
WORKERS = DASHBOARD + "workers/"
REVOKE = DASHBOARD + "revoke/"
RATE = DASHBOARD + "rate-limit/"


def pool_url(host: str) -> str:
    return f"{DASHBOARD}worker/{host}/pool/"


def shutdown_url(host: str) -> str:
    return f"{DASHBOARD}worker/{host}/shutdown/"


ALL = ("view_dashboard", "revoke_task", "rate_limit_task", "resize_pool", "shutdown_worker")


@pytest.fixture
def off():
    """An app with remote control off (include()'s default)."""
    with override_settings(SQS_BROKER_CELERY_APP=make_app(base_env())):
        yield


@pytest.fixture
def control():
    """An app with remote control on whose workers answer as tests.support.remote.Control says."""
    answers = {
        "celery@a": {
            "active": ACTIVE,
            "reserved": [],
            "scheduled": SCHEDULED,
            "pool_grow": {"ok": "pool will grow"},
            "rate_limit": {"ok": "new rate limit set successfully"},
            "revoke": {"ok": "tasks flagged as revoked"},
        }
    }
    fake = Control(answers)
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(fake)):
        yield fake


# --- permissions: 403 without, and no button ---


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "perm"),
    [
        (REVOKE + "?id=x", "revoke_task"),
        (RATE + "?task=t", "rate_limit_task"),
        (pool_url("celery@a"), "resize_pool"),
        (shutdown_url("celery@a"), "shutdown_worker"),
    ],
)
def test_actions__each_needs_its_own_permission(client, control, url, perm):
    """With every permission but the action's own: 403 on GET and POST, nothing sent."""
    client.force_login(user_with(*[p for p in ALL if p != perm]))
    assert client.get(url).status_code == 403
    assert client.post(url, {"confirm": "celery@a"}).status_code == 403
    assert control.calls == []
    client.force_login(user_with("view_dashboard", perm))
    assert client.get(url).status_code == 200


@pytest.mark.django_db
def test_workers_page__buttons_only_with_permissions(client, control):
    """A viewer sees the tasks and no button; each permission brings its own buttons."""
    beat("celery@a")
    client.force_login(user_with("view_dashboard"))
    html = client.get(WORKERS).content.decode()
    assert 'data-task-id="t-1"' in html and 'data-task-id="t-2"' in html
    for button in ("sqs-revoke", "sqs-rate-limit", "sqs-grow", "sqs-shrink", "sqs-shutdown"):
        assert f"button {button}" not in html and f"sqs-destructive {button}" not in html
    client.force_login(user_with(*ALL))
    html = client.get(WORKERS).content.decode()
    assert f'href="{REVOKE}?id=t-1"' in html
    assert f'href="{RATE}?task=project.demo.add"' in html
    assert f'href="{pool_url("celery@a")}?direction=grow"' in html
    assert f'href="{shutdown_url("celery@a")}"' in html


@pytest.mark.django_db
def test_workers_page__silent_worker_named_and_threads_pool_not_resizable(client, control):
    """A worker the heartbeats show alive that does not answer is named; threads: no resize."""
    beat("celery@a")
    beat("celery@quiet", pool="threads")
    client.force_login(user_with(*ALL))
    response = client.get(WORKERS)
    html = response.content.decode()
    assert 'id="sqs-remote-missing"' in html
    assert '<code class="sqs-missing-worker">celery@quiet</code>' in html
    quiet = html[html.index('data-hostname="celery@quiet"') :]
    assert "The threads pool cannot grow or shrink while running." in quiet
    assert "sqs-grow" not in quiet


@pytest.mark.django_db
def test_workers_page__off_says_how_to_turn_it_on(client, off):
    """Remote control off: the page says so and how to turn it on; not an error page."""
    client.force_login(user_with(*ALL))
    response = client.get(WORKERS)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="sqs-remote-off"' in html and "SQS_BROKER_REMOTE_CONTROL = True" in html
    assert "SQS_REMOTE_CONTROL=true" in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "target"),
    [
        (RATE + "?task=t", "t"),
        (pool_url("celery@a"), "celery@a"),
        (shutdown_url("celery@a"), "celery@a"),
    ],
)
def test_actions__off_offer_nothing_and_post_sends_nothing(client, off, url, target):
    """Remote control off: each action page says so and has no submit; a POST changes nothing."""
    client.force_login(user_with(*ALL))
    html = client.get(url).content.decode()
    assert 'id="sqs-remote-off"' in html and 'id="sqs-confirm-submit"' not in html
    data = {"confirm": target, "task": "t", "rate": "1/m", "n": "1", "direction": "grow"}
    response = client.post(url, data)
    assert response.status_code == 200 and 'id="sqs-remote-off"' in response.content.decode()
    assert not LogEntry.objects.exists()


# --- confirmation: a POST without it does nothing ---


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "data"),
    [
        (RATE, {"task": "project.demo.add", "rate": "10/m"}),
        (pool_url("celery@a"), {"direction": "grow", "n": "1"}),
        (shutdown_url("celery@a"), {}),
        (shutdown_url("celery@a"), {"confirm": "celery@b"}),
    ],
)
def test_actions__post_without_confirmation_does_nothing(client, control, url, data):
    """No ``confirm`` naming the target: 400, the confirmation again, nothing sent or logged."""
    client.force_login(user_with(*ALL))
    response = client.post(url, data)
    assert response.status_code == 400
    assert 'id="sqs-form-error"' in response.content.decode()
    assert control.calls == []
    assert not LogEntry.objects.exists()


@pytest.mark.django_db
def test_revoke__post_without_confirmation_does_nothing(client, control):
    """A revoke POST without ``confirm`` = the id stores nothing and broadcasts nothing."""
    client.force_login(user_with(*ALL))
    response = client.post(REVOKE, {"id": "t-1"})
    assert response.status_code == 400
    assert not Revocation.objects.exists() and control.calls == []


@pytest.mark.django_db
def test_actions__need_csrf(control):
    """The worker actions are POSTs behind Django's CSRF check."""
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user_with(*ALL))
    response = strict.post(shutdown_url("celery@a"), {"confirm": "celery@a"})
    assert response.status_code == 403 and control.calls == []


@pytest.mark.django_db
def test_rate_limit__bad_rate_is_said(client, control):
    """A rate Celery would not read is refused with the forms it takes; nothing sent."""
    client.force_login(user_with(*ALL))
    data = {"task": "t", "confirm": "t", "rate": "fast"}
    response = client.post(RATE, data)
    assert response.status_code == 400
    assert "10, 10/m, 100/h; 0 removes the limit" in response.content.decode()
    assert control.calls == []


# --- confirmed actions: sent, logged, audited, answers said ---


@pytest.mark.django_db
def test_pool__confirmed_grow_is_sent_logged_and_audited(client, control, caplog):
    """A confirmed grow goes to that worker only; a LogEntry and an audit line record it."""
    beat("celery@a")
    client.force_login(user_with(*ALL, username="ops"))
    with caplog.at_level(logging.INFO, logger="sqs_broker.audit"):
        response = client.post(
            pool_url("celery@a"),
            {"confirm": "celery@a", "direction": "grow", "n": "2"},
            follow=True,
        )
    # Then the workers' page asks what they run.
    assert control.calls[0] == (
        "pool_grow",
        {"n": 2, "destination": ["celery@a"], "reply": True, "timeout": 2, "limit": 1},
    )
    assert [c[0] for c in control.calls[1:]] == ["active", "reserved", "scheduled"]
    assert "Pool of celery@a grown by 2: done by celery@a." in response.content.decode()
    entry = LogEntry.objects.get(object_id="celery@a")
    assert entry.change_message == "Pool of worker celery@a: grow by 2: done by celery@a."
    (line,) = [r.getMessage() for r in caplog.records if r.name == "sqs_broker.audit"]
    assert line == "admin by ops: Pool of worker celery@a: grow by 2: done by celery@a."


@pytest.mark.django_db
def test_rate_limit__a_silent_worker_is_named(client, control):
    """A worker the heartbeats expect that does not answer is named on the next page."""
    beat("celery@a")
    beat("celery@quiet")
    client.force_login(user_with(*ALL))
    data = {"task": "project.demo.add", "confirm": "project.demo.add", "rate": "10/m"}
    html = client.post(RATE, data, follow=True).content.decode()
    assert "No answer within 2 s from: celery@quiet." in html
    assert "done by celery@a" in html
    assert "no answer from celery@quiet" in LogEntry.objects.get().change_message


@pytest.mark.django_db
def test_shutdown__typed_name_sends_it(client, control):
    """The typed hostname sends the shutdown to that worker, and the page says no answer comes."""
    client.force_login(user_with(*ALL))
    html = client.post(
        shutdown_url("celery@a"), {"confirm": "celery@a"}, follow=True
    ).content.decode()
    assert control.calls[0] == ("shutdown", {"destination": ["celery@a"], "reply": False})
    assert "A worker shutting down does not answer" in html
    assert LogEntry.objects.get().object_id == "celery@a"


@pytest.mark.django_db
@pytest.mark.usefixtures("sqs_endpoint")
def test_revoke__off_stores_it_and_the_task_page_shows_it(client, off, caplog):
    """Without remote control the revoke is stored (every worker reads it), logged and shown."""
    client.force_login(user_with(*ALL, username="ops"))
    form = client.get(REVOKE, {"id": "t-9"}).content.decode()
    assert 'id="sqs-remote-off"' in form and 'name="terminate"' not in form
    with caplog.at_level(logging.INFO, logger="sqs_broker.audit"):
        response = client.post(
            REVOKE, {"id": "t-9", "confirm": "t-9", "reason": "bad input"}, follow=True
        )
    row = Revocation.objects.get(task_id="t-9")
    assert (row.revoked_by, row.reason) == ("ops", "bad input")
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == f"{DASHBOARD}task/?id=t-9"
    assert 'id="sqs-task-revoked"' in html and "Revoked by ops" in html
    assert LogEntry.objects.get(object_id="t-9").change_message.startswith("Revoked task t-9 until")
    assert any(r.getMessage().startswith("admin by ops: revoked t-9 until") for r in caplog.records)


@pytest.mark.django_db
@pytest.mark.usefixtures("sqs_endpoint")
def test_revoke__on_broadcasts_and_says_who_answered(client, control):
    """With remote control on the revoke is stored and broadcast; the answers are said."""
    beat("celery@a")
    client.force_login(user_with(*ALL))
    html = client.post(REVOKE, {"id": "t-1", "confirm": "t-1"}, follow=True).content.decode()
    assert Revocation.objects.filter(task_id="t-1").exists()
    assert control.calls[0][0] == "revoke" and control.calls[0][1]["task_id"] == "t-1"
    assert "Revoke broadcast of t-1: done by celery@a." in html
    assert "broadcast: done by celery@a" in LogEntry.objects.get().change_message


@pytest.mark.django_db
def test_task_page__revoke_button_only_with_permission(client, off):
    """The task page offers the revoke to those who hold revoke_task only."""
    client.force_login(user_with("view_dashboard"))
    html = client.get(DASHBOARD + "task/", {"id": "t-5"}).content.decode()
    assert 'id="sqs-task-revoke"' in html and 'id="sqs-task-revoke-button"' not in html
    client.force_login(user_with("view_dashboard", "revoke_task"))
    html = client.get(DASHBOARD + "task/", {"id": "t-5"}).content.decode()
    assert f'href="{REVOKE}?id=t-5"' in html


# --- real workers: remote control over moto's SNS and SQS ---


def _remote_env(unique: str) -> dict[str, str]:
    """A worker's environment: remote control on, heartbeats every second, and the database's
    revocations read at start only (so only the broadcast can reach a running worker)."""
    return base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_WAIT_TIME_SECONDS="1",
        SQS_REMOTE_CONTROL="true",
        SQS_BROKER_TELEMETRY_INTERVAL="1",
        SQS_BROKER_REVOCATION_REFRESH="3600",
    )


def _caller(env: dict[str, str]):
    """The web process's app, as include() would configure it from ``env``."""
    from sqs_broker import control

    app = make_app(env)
    control.install(app)
    return app


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def _answering(app, worker) -> str:
    """The worker's hostname, once its heartbeat is written and it answers a ping."""
    assert _wait(lambda: bool(remote.live_workers()), 60), worker.output()[-3000:]
    (live,) = remote.live_workers()
    assert _wait(lambda: bool(app.control.ping(timeout=1.0, limit=1)), 60), worker.output()
    return live.hostname


@pytest.mark.django_db(transaction=True)
def test_real_worker__revoke_from_the_page_keeps_a_queued_task_from_running(
    client, start_worker, unique, tmp_path
):
    """A task held for its ETA shows as scheduled; revoked from the page, it never runs."""
    env = _remote_env(unique)
    app = _caller(env)
    worker = start_worker(env, pool="prefork", extra=("--concurrency=1",))
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_REMOTE_TIMEOUT=5):
        hostname = _answering(app, worker)
        journal = tmp_path / "journal"
        kept = app.send_task("project.demo.tasks.journal", args=[str(journal), "kept"], countdown=6)
        # Room for the page's calls before its ETA, even on a loaded machine.
        doomed_eta = time.monotonic() + 25
        doomed = app.send_task(
            "project.demo.tasks.journal", args=[str(journal), "doomed"], countdown=25
        )
        client.force_login(user_with(*ALL))

        def scheduled() -> bool:
            html = client.get(WORKERS).content.decode()
            return f'data-task-id="{doomed.id}" data-kind="scheduled"' in html

        assert _wait(scheduled, 20), worker.output()[-3000:]
        html = client.get(WORKERS).content.decode()
        assert f'data-hostname="{hostname}" data-answered="yes"' in html
        assert 'id="sqs-remote-missing"' not in html
        found = remote.tasks()
        print(f"active, reserved and scheduled of 1 worker: {found.seconds:.3f} s")
        assert found.seconds < 5  # limit=1 from the heartbeat: no timeout waited out

        response = client.post(REVOKE, {"id": doomed.id, "confirm": doomed.id}, follow=True)
        page = response.content.decode()
        assert f"Revoke broadcast of {doomed.id}: done by {hostname}." in page, page
        assert _wait(lambda: "kept" in (journal.read_text() if journal.exists() else ""), 30)
        # Both ETAs passed: the revoked one would have run by now.
        time.sleep(max(0.0, doomed_eta - time.monotonic()) + 3)
    assert [line.split()[0] for line in journal.read_text().splitlines()] == ["kept"]
    assert kept.id not in {r.task_id for r in Revocation.objects.all()}


@pytest.mark.django_db(transaction=True)
def test_real_worker__pool_grow_from_the_page_changes_the_pool(client, start_worker, unique):
    """Grow by 2, then shrink by 1, from the page: the worker's stats count 3, then 2 processes;
    a rate limit is set, an unknown task's refused; a silent worker is named.

    (Prefork's ``max-concurrency`` stays the --concurrency it started with; its
    ``processes`` are the pool as it is.)
    """
    env = _remote_env(unique)
    app = _caller(env)
    worker = start_worker(env, pool="prefork", extra=("--concurrency=1",))
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_REMOTE_TIMEOUT=5):
        hostname = _answering(app, worker)

        def processes() -> int:
            stats = app.control.inspect(destination=[hostname], timeout=5, limit=1).stats()
            return len(stats[hostname]["pool"]["processes"])

        assert processes() == 1
        client.force_login(user_with(*ALL))
        data = {"confirm": hostname, "direction": "grow", "n": "2"}
        page = client.post(pool_url(hostname), data, follow=True).content.decode()
        assert f"Pool of {hostname} grown by 2: done by {hostname}." in page
        assert _wait(lambda: processes() == 3, 20), processes()
        data = {"confirm": hostname, "direction": "shrink", "n": "1"}
        page = client.post(pool_url(hostname), data, follow=True).content.decode()
        assert f"Pool of {hostname} shrunk by 1: done by {hostname}." in page
        assert _wait(lambda: processes() == 2, 20), processes()

        task = "project.demo.tasks.add"
        data = {"task": task, "confirm": task, "rate": "10/m", "worker": hostname}
        page = client.post(RATE, data, follow=True).content.decode()
        assert f"Rate limit of {task} set to 10/m on {hostname}: done by {hostname}." in page
        data = {"task": "no.such.task", "confirm": "no.such.task", "rate": "10/m"}
        page = client.post(RATE, data, follow=True).content.decode()
        assert f"Worker {hostname} answered: unknown task" in page

        # A heartbeat whose worker never answers: named, and waited for once only.
        beat("w-silent@nowhere")
        with override_settings(SQS_BROKER_REMOTE_TIMEOUT=2):
            found = remote.tasks()
        print(f"active, reserved and scheduled, 1 of 2 workers silent: {found.seconds:.3f} s")
        assert found.missing == ["w-silent@nowhere"]
        assert 2 <= found.seconds < 4, found.seconds
        html = client.get(WORKERS).content.decode()
        assert '<code class="sqs-missing-worker">w-silent@nowhere</code>' in html


@pytest.mark.django_db(transaction=True)
def test_real_worker__shutdown_from_the_page_stops_it_warmly(client, start_worker, unique):
    """The typed shutdown reaches the worker: it exits, and its heartbeat says stopped."""
    env = _remote_env(unique)
    app = _caller(env)
    worker = start_worker(env, pool="prefork", extra=("--concurrency=1",))
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_REMOTE_TIMEOUT=5):
        hostname = _answering(app, worker)
        client.force_login(user_with(*ALL))
        page = client.post(shutdown_url(hostname), {"confirm": hostname}, follow=True)
        assert f"Shutdown of {hostname}: sent." in page.content.decode()
        assert _wait(lambda: worker.process.poll() is not None, 30), worker.output()[-3000:]
        assert "Got shutdown from remote" in worker.output()
        assert _wait(lambda: not remote.live_workers(), 10)


@pytest.mark.django_db(transaction=True)
def test_real_worker__revoke_with_terminate_stops_a_running_task(
    client, start_worker, unique, tmp_path
):
    """A running task shows as active; revoked with terminate from the page, its process is
    killed (prefork) long before the task would have finished."""
    env = _remote_env(unique)
    app = _caller(env)
    worker = start_worker(env, pool="prefork", extra=("--concurrency=1",))
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_REMOTE_TIMEOUT=5):
        _answering(app, worker)
        journal = tmp_path / "journal"
        running = app.send_task("project.demo.tasks.journal", args=[str(journal), "long", 60])
        assert _wait(journal.exists, 30), worker.output()[-3000:]
        pid = int(journal.read_text().split()[1])
        client.force_login(user_with(*ALL))
        html = client.get(WORKERS).content.decode()
        assert f'data-task-id="{running.id}" data-kind="active"' in html
        data = {"id": running.id, "confirm": running.id, "terminate": "on"}
        client.post(REVOKE, data, follow=True)

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        assert _wait(gone, 20), worker.output()[-3000:]
        assert f"Terminating {running.id}" in worker.output()
        assert "succeeded" not in worker.output()
