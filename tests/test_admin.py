"""Tests of sqs_broker.admin: the dashboard, queue pages and actions, through Django's client."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import override_settings

from tests.conftest import base_env, make_app

DASHBOARD = "/admin/sqs_broker/dashboard/"


def _user(*perms: str, staff: bool = True) -> User:
    user = User.objects.create_user(f"u{User.objects.count()}", password="pw", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@pytest.fixture
def app(unique):
    """A Celery app with this test's own prefix, served by the views."""
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        yield celery


@pytest.mark.django_db
def test_dashboard__shows_depths(client, sqs, unique, app):
    """The dashboard lists the app's queues with the depth SQS reports."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    client.force_login(_user("view_dashboard"))
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-queue="{unique}-celery"' in html
    assert response.context["data"]["queues"][0]["visible"] == 3
