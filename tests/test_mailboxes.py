"""sqs_broker.mailboxes and manage.py sqs_remote sweep: remote control's leftovers, on moto."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import boto3
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from sqs_broker import findings, mailboxes, tasks
from sqs_broker.models import WorkerHeartbeat
from sqs_broker.topology import Topology
from tests.support.env import base_env, make_app
from tests.support.users import user_with


def remote_app(prefix: str) -> Any:
    """An app with remote control on: fanout declared, the worker's mailbox on."""
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=prefix))
    app.conf.worker_enable_remote_control = True
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "supports_fanout": True,
    }
    return app


def beat(hostname: str, seen_ago: float, stopped: bool = False) -> None:
    """A heartbeat of ``hostname`` last written ``seen_ago`` seconds ago (10 s interval)."""
    seen = timezone.now() - timedelta(seconds=seen_ago)
    WorkerHeartbeat.objects.create(
        hostname=hostname,
        pid=1,
        pool="prefork",
        concurrency=1,
        started_at=seen - timedelta(hours=1),
        last_seen=seen,
        stopped_at=seen if stopped else None,
        interval=10.0,
    )


class Account:
    """Mailboxes subscribed to the pidbox topic, as kombu's SNS fanout makes them."""

    def __init__(self, sqs: Any, endpoint: str, topo: Topology) -> None:
        self.sqs = sqs
        self.sns = boto3.client("sns", endpoint_url=endpoint, region_name="us-east-1")
        self.topic = self.sns.create_topic(Name=topo.pidbox_topic)["TopicArn"]
        self.topo = topo

    def mailbox(self, name: str) -> str:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        self.sns.subscribe(
            TopicArn=self.topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"]
        )
        return url

    def subscribed(self) -> set[str]:
        subs = self.sns.list_subscriptions_by_topic(TopicArn=self.topic)["Subscriptions"]
        return {s["Endpoint"].rsplit(":", 1)[-1] for s in subs}

    def queues(self, prefix: str) -> set[str]:
        urls = self.sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
        return {u.rsplit("/", 1)[-1] for u in urls}


@pytest.fixture
def setup(sqs: Any, sqs_endpoint: str, unique: str) -> Any:
    app = remote_app(f"{unique}-")
    topo = Topology.of(app)
    account = Account(sqs, sqs_endpoint, topo)
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_TELEMETRY=True):
        yield topo, account


def test_topology__pidbox_names_follow_kombus_rules() -> None:
    """Mailbox and reply queue names as kombu rewrites them, and the kinds told apart."""
    topo = Topology.of(remote_app("app."))
    assert topo.pidbox_queue("celery@web-1.x") == "app-celery_web-1-x-celery-pidbox"
    assert topo.pidbox_topic == "app-celery-pidbox"
    assert topo.kind("app-celery_web-1-x-celery-pidbox") == "pidbox"
    assert topo.kind("app-0b1c2d3e-aaaa-bbbb-reply-celery-pidbox") == "reply"
    assert topo.kind("app-celery") == "task"
    assert topo.kind("other-celery_w-celery-pidbox") == "task"  # not under the prefix
    assert topo.remote_control
    assert not Topology.of(make_app(base_env())).remote_control


@pytest.mark.django_db
def test_sweep__deletes_lost_workers_mailboxes_only(setup: Any, unique: str, caplog: Any) -> None:
    """A lost worker's mailbox and subscription go; a live one's, a recent loss, another
    app's and a task queue stay; dry run and a refused prompt delete nothing."""
    topo, account = setup
    prefix = f"{unique}-"
    beat("celery@alive", 5)
    beat("celery@lost", 7200)
    beat("celery@gone", 7200, stopped=True)
    beat("celery@recent", 120)
    for host in ("alive", "lost", "gone", "recent"):
        account.mailbox(topo.pidbox_queue(f"celery@{host}"))
    account.sqs.create_queue(QueueName=f"{prefix}celery")
    other = f"x{unique}-celery_lost-celery-pidbox"  # another app's prefix, same worker name
    account.sqs.create_queue(QueueName=other)
    lost, gone = topo.pidbox_queue("celery@lost"), topo.pidbox_queue("celery@gone")
    before = account.queues(prefix)

    out = StringIO()
    call_command("sqs_remote", "sweep", "--dry-run", stdout=out)
    assert f"delete pidbox {lost} (celery@lost): worker lost for 7" in out.getvalue()
    assert f"keep   pidbox {topo.pidbox_queue('celery@alive')}" in out.getvalue()
    assert "(swept after 3600 s)" in out.getvalue()  # the recent loss
    with pytest.raises(CommandError, match="Not confirmed") as refused:
        call_command("sqs_remote", "sweep", stdin=StringIO("yes\n"), stdout=StringIO())
    assert refused.value.returncode == 64
    assert account.queues(prefix) == before

    with caplog.at_level("INFO", logger="sqs_broker.audit"):
        call_command("sqs_remote", "sweep", stdin=StringIO("sweep\n"), stdout=StringIO())
    assert account.queues(prefix) == before - {lost, gone}
    assert lost not in account.subscribed() and gone not in account.subscribed()
    assert topo.pidbox_queue("celery@alive") in account.subscribed()
    assert other in account.queues(f"x{unique}-")
    audit = [r.getMessage() for r in caplog.records if r.name == "sqs_broker.audit"]
    assert any(f"deleted queue {lost}" in line for line in audit)
    assert sum("removed subscription" in line for line in audit) == 2


@pytest.mark.django_db
def test_sweep__orphan_subscription_and_absent_mailbox(setup: Any) -> None:
    """A subscription whose mailbox is gone is removed; a mailbox no heartbeat names is kept
    until it is older than the threshold."""
    topo, account = setup
    orphan = topo.pidbox_queue("celery@killed")
    url = account.mailbox(orphan)
    account.sqs.delete_queue(QueueUrl=url)
    absent = topo.pidbox_queue("celery@nobody")
    account.mailbox(absent)
    found = mailboxes.survey(topo)
    assert [s.queue for s in found.orphans] == [orphan]
    (box,) = found.mailboxes
    assert (box.name, box.owner, box.leftover) == (absent, "absent", False)
    later = mailboxes.survey(topo, now=time.time() + 7200)
    assert [m.name for m in later.leftovers] == [absent]
    result = mailboxes.sweep(topo, found=later)
    assert result.errors == []
    assert result.deleted == [absent]
    assert orphan not in account.subscribed() and absent not in account.subscribed()


@pytest.mark.django_db
def test_sweep__idle_reply_queues_only(setup: Any, unique: str) -> None:
    """Asked to, the sweep deletes an empty reply queue older than the threshold; one holding
    a reply stays; not asked, none goes."""
    topo, account = setup
    idle = f"{unique}-0b1c2d3e-1111-reply-celery-pidbox"
    busy = f"{unique}-0b1c2d3e-2222-reply-celery-pidbox"
    account.sqs.create_queue(QueueName=idle)
    busy_url = account.sqs.create_queue(QueueName=busy)["QueueUrl"]
    account.sqs.send_message(QueueUrl=busy_url, MessageBody="{}")
    assert mailboxes.survey(topo, reply_after=86400).leftovers == []
    # Not asked: reply queues are never swept, however old.
    assert mailboxes.survey(topo, now=time.time() + 30 * 86400).leftovers == []
    later = mailboxes.survey(topo, reply_after=86400, now=time.time() + 2 * 86400)
    assert [(m.name, m.kind) for m in later.leftovers] == [(idle, "reply")]
    mailboxes.sweep(topo, found=later)
    assert account.queues(f"{unique}-") == {busy}


@pytest.mark.django_db
def test_sweep__beat_task_logs_what_it_deleted(setup: Any, caplog: Any) -> None:
    """The beat task sweeps like the command, without asking, on the audit logger."""
    topo, account = setup
    beat("celery@lost", 7200)
    lost = topo.pidbox_queue("celery@lost")
    account.mailbox(lost)
    with caplog.at_level("INFO", logger="sqs_broker.audit"):
        result = tasks.sweep_mailboxes()
    assert result["deleted"] == [lost] and result["errors"] == []
    assert any(lost in r.getMessage() for r in caplog.records if r.name == "sqs_broker.audit")


@pytest.mark.django_db
def test_w017__live_mailbox_expected_with_remote_control(setup: Any) -> None:
    """With remote control on, a live worker's mailbox is no leftover; a lost one's is."""
    topo, account = setup
    beat("celery@alive", 5)
    account.mailbox(topo.pidbox_queue("celery@alive"))
    assert "sqs_broker.W017" not in {f.id for f in findings.online(topo.app)}
    beat("celery@lost", 7200)
    account.mailbox(topo.pidbox_queue("celery@lost"))
    (w017,) = [f for f in findings.online(topo.app) if f.id == "sqs_broker.W017"]
    assert w017.message.startswith("1 ") and "celery_lost" in w017.message
    assert "sqs_remote sweep" in w017.hint


@pytest.mark.django_db
def test_sweep__without_prefix_leaves_unknown_queues(sqs: Any, unique: str) -> None:
    """Without a prefix, a mailbox no heartbeat names and reply queues are never judged."""
    topo = Topology.of(remote_app(""))
    name = f"{unique}-celery_w-celery-pidbox"
    sqs.create_queue(QueueName=name)
    sqs.create_queue(QueueName=f"{unique}-aa-reply-celery-pidbox")
    with override_settings(SQS_BROKER_TELEMETRY=True):
        found = mailboxes.survey(topo, subscriptions=False, now=time.time() + 10 * 86400)
    assert found.leftovers == []


@pytest.mark.django_db
def test_dashboard__mailboxes_listed_apart(client: Any, setup: Any, unique: str) -> None:
    """Mailboxes and reply queues are in their own table, with their kind; not among tasks,
    nor in the health summary."""
    topo, account = setup
    account.sqs.create_queue(QueueName=f"{unique}-celery")
    mailbox = topo.pidbox_queue("celery@alive")
    account.mailbox(mailbox)
    reply = f"{unique}-0b1c2d3e-1111-reply-celery-pidbox"
    reply_url = account.sqs.create_queue(QueueName=reply)["QueueUrl"]
    account.sqs.send_message(QueueUrl=reply_url, MessageBody="{}")  # a reply nobody collected
    client.force_login(user_with("view_dashboard"))
    response = client.get("/admin/sqs_broker/dashboard/")
    assert response.status_code == 200
    assert [r["q"]["name"] for r in response.context["rows"]] == [f"{unique}-celery"]
    kinds = {q["name"]: q["kind"] for q in response.context["mailbox_rows"]}
    assert kinds == {mailbox: "pidbox", reply: "reply"}
    html = response.content.decode()
    assert f'id="mailbox-{mailbox}" data-queue="{mailbox}" data-kind="pidbox"' in html
    assert "worker mailbox" in html and "reply queue" in html
    data = client.get("/sqs/stats.json").json()
    assert {q["name"]: q["kind"] for q in data["queues"]}[mailbox] == "pidbox"
    # A reply queue holding a reply is no queue "nobody consumes".
    assert reply not in data["unconsumed_queues"]
    assert reply not in data["health"]["unconsumed_queues"]


@pytest.mark.django_db
def test_sweep__predefined_queues_by_heartbeat_names(
    sqs: Any, sqs_endpoint: str, unique: str
) -> None:
    """With predefined queues (no listing), a lost worker's mailbox is found by its name."""
    prefix = f"{unique}-"
    url = sqs.create_queue(QueueName=f"{prefix}celery")["QueueUrl"]
    predefined = json.dumps({f"{prefix}celery": {"url": url}})
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=prefix, SQS_PREDEFINED_QUEUES=predefined))
    app.conf.worker_enable_remote_control = True
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "supports_fanout": True,
    }
    topo = Topology.of(app)
    account = Account(sqs, sqs_endpoint, topo)
    beat("celery@lost", 7200)
    beat("celery@alive", 5)
    lost, alive = topo.pidbox_queue("celery@lost"), topo.pidbox_queue("celery@alive")
    account.mailbox(lost)
    account.mailbox(alive)
    found = mailboxes.survey(topo)
    assert [m.name for m in found.leftovers] == [lost]
    assert {m.name for m in found.mailboxes} == {lost, alive}
    mailboxes.sweep(topo, found=found)
    assert account.queues(prefix) == {f"{prefix}celery", alive}
    assert account.subscribed() == {alive}


@pytest.mark.django_db
def test_sweep__endpoint_down_could_not_check(unique: str) -> None:
    """SQS unreachable: exit 2, saying the queues could not be listed; nothing else tried."""
    from sqs_broker.localsqs import free_port

    app = remote_app(f"{unique}-")
    app.conf.broker_url = f"sqs://127.0.0.1:{free_port()}"
    with (
        override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_CONNECT_TIMEOUT=1),
        pytest.raises(CommandError, match="Could not list the queues") as failed,
    ):
        call_command("sqs_remote", "sweep", "--yes", stdout=StringIO())
    assert failed.value.returncode == 2
