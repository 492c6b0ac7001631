"""Tests of manage.py sqs_revoke: revoke, list and withdraw task ids, with exact output."""

from __future__ import annotations

import getpass
import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from sqs_broker.models import Revocation
from tests.support.env import base_env, make_app
from tests.test_faults import JOURNAL, runs, wait_for, with_worker
from tests.test_remote_control import answering, caller, remote_env

WORKERS_LINE = (
    "Workers started from now on refuse these tasks; running workers within 5 s "
    "(SQS_BROKER_REVOCATION_REFRESH). A task already running is not stopped (that needs "
    "remote control and the prefork pool).\n"
)


def _run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sqs_revoke", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _until(task_id: str) -> str:
    return Revocation.objects.get(task_id=task_id).expires_at.isoformat(timespec="seconds")


@pytest.fixture
def app(unique):
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        yield celery


@pytest.mark.django_db
def test_sqs_revoke__revokes_with_expiry_and_audit(caplog, app) -> None:
    """Ids given: stored with the OS user and reason, each said, one audit line."""
    with caplog.at_level(logging.INFO, logger="sqs_broker.audit"):
        out, err = _run("id-1", "id-2", "--expires", "600", "--reason", "bad batch")
    until = _until("id-1")
    assert out == (
        f"Revoked id-1 until {until}.\nRevoked id-2 until {until}.\n"
        f"Expiry: 600 s (--expires).\n{WORKERS_LINE}"
    )
    assert err == ""
    row = Revocation.objects.get(task_id="id-2")
    assert (row.revoked_by, row.reason) == (getpass.getuser(), "bad batch")
    (record,) = [r for r in caplog.records if r.name == "sqs_broker.audit"]
    assert record.getMessage() == (
        f"manage.py sqs_revoke by {getpass.getuser()}: revoked id-1, id-2 until {until} (bad batch)"
    )


@pytest.mark.django_db
def test_sqs_revoke__default_expiry_from_the_queues_retention(sqs, unique, app) -> None:
    """No --expires: the longest retention of the app's queues, said with where it came from."""
    sqs.create_queue(QueueName=f"{unique}-celery", Attributes={"MessageRetentionPeriod": "7200"})
    out, _ = _run("id-1")
    assert out == (
        f"Revoked id-1 until {_until('id-1')}.\n"
        "Expiry: 7200 s (the longest message retention of the app's queues).\n"
        f"{WORKERS_LINE}"
    )


@pytest.mark.django_db
def test_sqs_revoke__again_renews_and_list_shows_them(app) -> None:
    """A second revoke of an id renews it; --list shows every unexpired one, newest first."""
    _run("id-1", "--expires", "60")
    out, _ = _run("id-1", "id-2", "--expires", "120", "--reason", "again")
    until = _until("id-1")
    assert out == (
        f"Revoked id-2 until {until}.\nAlready revoked, renewed until {until}: id-1.\n"
        f"Expiry: 120 s (--expires).\n{WORKERS_LINE}"
    )
    out, _ = _run("--list")
    who = getpass.getuser()
    assert out == (
        f"id-1  until {until}  by {who}  (again)\nid-2  until {until}  by {who}  (again)\n"
    )


@pytest.mark.django_db
def test_sqs_revoke__list_empty_and_forget(app) -> None:
    """--list with nothing revoked says so; --forget withdraws and names unknown ids."""
    assert _run("--list") == ("No task is revoked.\n", "")
    _run("id-1", "--expires", "60")
    out, _ = _run("--forget", "id-1", "--forget", "nope")
    assert out == "Withdrawn: id-1.\nNot revoked (nothing to withdraw): nope.\n"
    assert not Revocation.objects.exists()


@pytest.mark.django_db
def test_sqs_revoke__turned_off_said_on_stderr(app) -> None:
    """With SQS_BROKER_REVOCATIONS False the ids are still kept, and stderr says no worker reads
    them."""
    with override_settings(SQS_BROKER_REVOCATIONS=False):
        out, err = _run("id-1", "--expires", "60")
    assert out.endswith("Expiry: 60 s (--expires).\n")
    assert err == (
        "SQS_BROKER_REVOCATIONS is False in these settings: workers started with them do not "
        "read revocations, and run these tasks.\n"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give task ids to revoke, or --list, or --forget TASK_ID"),
        (("id-1", "--list"), "one of the three"),
        (("--list", "--forget", "id-1"), "one of the three"),
        (("--list", "--expires", "60"), "--expires and --reason go with task ids"),
        (("--forget", "id-1", "--reason", "x"), "--expires and --reason go with task ids"),
        (("id-1", "--expires", "0"), "argument --expires: must be a whole number of seconds"),
        (("id-1", "--expires", "1209601"), "from 1 to 1.2096e\\+06"),
        (("id-1", "--reason", "r" * 501), "--reason is at most 500 characters"),
        (("x" * 256, "--expires", "60"), "at most 255 characters"),
    ],
)
def test_sqs_revoke__usage_errors_exit_64(app, args, message) -> None:
    """A wrong command line exits 64 with a line naming what to fix; nothing is stored."""
    with pytest.raises(CommandError, match=message) as refused:
        _run(*args)
    assert refused.value.returncode == 64
    assert not Revocation.objects.exists()


@pytest.mark.django_db
def test_sqs_revoke__database_unusable_exits_2(app, monkeypatch) -> None:
    """A database error (here: the table missing) exits 2, "could not check"."""
    from django.db import DatabaseError

    from sqs_broker import revocations

    def broken(*args, **kwargs):
        raise DatabaseError("no such table: sqs_broker_revocation")

    monkeypatch.setattr(revocations, "active", broken)
    with pytest.raises(CommandError, match="The database could not be used: no such table") as e:
        _run("--list")
    assert e.value.returncode == 2


@with_worker
def test_sqs_revoke__remote_control_tells_running_workers_at_once(
    start_worker, unique, tmp_path
) -> None:
    """With remote control on, a running worker refuses at once (its refresh is 10 minutes
    away), and a worker started afterwards refuses from the database."""
    env = remote_env(unique, SQS_BROKER_REVOCATION_REFRESH="600")
    worker = start_worker(env)
    app = caller(env)
    (hostname,) = answering(app)
    journal = tmp_path / "journal"
    revoked = app.send_task(JOURNAL, args=(str(journal), "revoked"), countdown=6)
    kept = app.send_task(JOURNAL, args=(str(journal), "kept"), countdown=6)
    later = app.send_task(JOURNAL, args=(str(journal), "later"), queue="later")
    with override_settings(
        SQS_BROKER_CELERY_APP=app, SQS_BROKER_REMOTE_CONTROL=True, SQS_BROKER_TELEMETRY=False
    ):
        out, err = _run(revoked.id, later.id, "--expires", "600")
    assert f"Running workers told at once: {hostname}.\n" in out, out + err
    assert err == ""
    assert wait_for(lambda: f"[{kept.id}] succeeded" in worker.output(), 30), worker.output()
    assert f"Discarding revoked task: {JOURNAL}[{revoked.id}]" in worker.output()
    newcomer = start_worker(env, queues="later")
    assert wait_for(
        lambda: f"Discarding revoked task: {JOURNAL}[{later.id}]" in newcomer.output(), 30
    ), newcomer.output()
    assert [tag for tag, _ in runs(journal)] == ["kept"]


@pytest.mark.django_db
def test_sqs_revoke__failed_broadcast_said_without_secrets(app, monkeypatch) -> None:
    """A broadcast that fails is said on stderr, a URL's secret masked; the ids stay revoked."""
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY"

    def refused(*args, **kwargs):
        raise ConnectionError(f"cannot reach sqs://AKIAEXAMPLE:{secret}@sqs.example:443")

    monkeypatch.setattr("sqs_broker.control.revoke", refused)
    with override_settings(SQS_BROKER_REMOTE_CONTROL=True):
        out, err = _run("id-9", "--expires", "60")
    assert "Revoked id-9 until" in out
    assert err.startswith("The broadcast to running workers failed (ConnectionError: ")
    assert "they refuse these tasks from their next refresh." in err
    assert secret not in err and "********@sqs.example" in err
    assert Revocation.objects.filter(task_id="id-9").exists()
