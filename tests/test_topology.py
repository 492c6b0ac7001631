"""sqs_broker.topology: the broker configuration resolved once, and the one app resolver."""

from __future__ import annotations

import pytest
from celery import Celery
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from sqs_broker import topology
from sqs_broker.topology import Topology, celery_app, endpoint_url, entity_name
from tests.support.env import base_env, make_app


def test_of__names_endpoint_and_region_as_kombu_derives_them() -> None:
    """Declared queues map to prefix + sanitised names; endpoint and region follow the URL."""
    app = make_app(
        base_env(SQS_QUEUE_NAME_PREFIX="app.", SQS_REGION="eu-west-1"),
        task_routes={"x.*": {"queue": "jobs.high"}},
    )
    topo = Topology.of(app)
    assert topo.declared == {"celery": "app-celery", "jobs.high": "app-jobs-high"}
    assert topo.is_sqs and topo.prefix == "app."
    assert topo.region == "eu-west-1"
    rule = endpoint_url(app.conf.broker_url, app.conf.broker_transport_options)
    assert topo.endpoint == rule and topo.endpoint.startswith("http://")
    assert topo.canonical_name("other.fifo") == "app-other.fifo"


def test_of__a_topology_is_kept() -> None:
    """Passing a topology where an app is expected reuses it: one resolution per pass."""
    topo = Topology.of(make_app(base_env()))
    assert Topology.of(topo) is topo and celery_app(topo) is topo.app


def test_of__copies_the_configuration() -> None:
    """A change to app.conf after the pass started is not seen half-way through it."""
    app = make_app(base_env())
    topo = Topology.of(app)
    app.conf.broker_transport_options = {"queue_name_prefix": "late-"}
    assert topo.prefix == "" and topo.declared == {"celery": "celery"}


def test_repr__never_shows_the_url_or_options() -> None:
    """The broker URL may carry a secret: the topology's repr leaves it out."""
    app = make_app(base_env(), broker_url="sqs://AKIAX:canary-secret-123@")
    assert "canary-secret-123" not in repr(Topology.of(app))


def test_entity_name__keeps_fifo() -> None:
    """kombu rewrites '.' to '-' except in the .fifo suffix."""
    assert entity_name("a.b.fifo") == "a-b.fifo" and entity_name("a:b") == "a_b"


def test_celery_app__setting_then_current() -> None:
    """An explicit app wins; else SQS_BROKER_CELERY_APP; else Celery's current app."""
    mine = Celery("mine", set_as_current=False)
    other = Celery("other", set_as_current=False)
    assert celery_app(mine) is mine
    with override_settings(SQS_BROKER_CELERY_APP=other):
        assert celery_app() is other and Topology.of().app is other
    with override_settings(SQS_BROKER_CELERY_APP="project.celery.app"):
        from project.celery import app as project_app

        assert celery_app() is project_app
    with (
        override_settings(SQS_BROKER_CELERY_APP="no.such.app"),
        pytest.raises(ImproperlyConfigured, match="SQS_BROKER_CELERY_APP"),
    ):
        celery_app()


def test_remote_control_names__recognised_and_fitted_to_80_characters() -> None:
    """Mailboxes and reply queues are told apart; a long one keeps its ends, stays unique."""
    from sqs_broker import topology

    assert topology.is_remote_control("w1@host.celery.pidbox")
    assert topology.is_remote_control("p-w1_host-celery-pidbox")
    assert not topology.is_remote_control("celery")
    assert topology.is_reply_exchange("reply.celery.pidbox")
    assert not topology.is_reply_exchange("celery.pidbox")
    reply = topology.reply_queue_name("reply.celery.pidbox", "abc")
    assert reply == "abc.reply.celery.pidbox" and topology.is_reply_queue(reply)
    assert not topology.is_reply_queue("w1@host.celery.pidbox")
    short = "p-w1_host-celery-pidbox"
    assert topology.remote_control_sqs_name(short) == short
    long_a = "p-" + "a" * 70 + "_ip-10-0-0-1-eu-west-1-compute-internal-celery-pidbox"
    long_b = long_a.replace("aaaa", "aaab", 1)
    fitted = topology.remote_control_sqs_name(long_a)
    assert len(fitted) == 80 and fitted.startswith("p-aaa") and fitted.endswith("-celery-pidbox")
    assert fitted != topology.remote_control_sqs_name(long_b)
    assert topology.remote_control_sqs_name(long_a) == fitted


def test_held_queues__dead_letter_and_quarantine_queues():
    """Dead-letter queues (by a row's dlq) and quarantine queues hold; work queues do not."""
    rows = [
        {"name": "app-celery", "dlq": {"name": "app-dead"}},
        {"name": "app-dead", "dlq": None},
        {"name": "app-mail", "dlq": None},
        {"name": "app-mail-quarantine", "dlq": None},
        {"name": "app-jobs-quarantine.fifo"},
    ]
    assert topology.held_queues(rows) == {
        "app-dead",
        "app-mail-quarantine",
        "app-jobs-quarantine.fifo",
    }
