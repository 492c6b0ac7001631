"""Tests of sqs_broker.celery_types: at run time, Celery's own objects.

channel_client runs in every publish_many test (tests/test_publishing.py).
"""

from __future__ import annotations

from celery import bootsteps
from celery import shared_task as celery_shared_task
from celery.app.amqp import AMQP

from sqs_broker import celery_types


def test_names__are_celerys_own() -> None:
    """The typed names are the very classes and decorator Celery defines."""
    assert celery_types.Step is bootsteps.Step
    assert celery_types.StartStopStep is bootsteps.StartStopStep
    assert celery_types.AMQP is AMQP
    assert celery_types.shared_task is celery_shared_task
