"""sqs_broker/templatetags: ages as people read them, in the dashboard's language."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.utils import translation

from sqs_broker.templatetags.sqs_broker_tags import age
from tests.support.env import base_env, make_app
from tests.support.users import user_with


def test_age__seconds_minutes_hours() -> None:
    """Under a minute in seconds; then Django's timesince, not '10800.0 s'."""
    assert age(None) == "—"
    assert age(42.7) == "42 s"
    assert age(10800).replace("\xa0", " ") == "3 hours"
    assert age(3 * 86400 + 7200).replace("\xa0", " ") == "3 days, 2 hours"


def test_age__in_the_page_language() -> None:
    """Django's own catalogues translate the units."""
    with translation.override("zh-hans"):
        assert "小时" in age(7200)


@pytest.mark.django_db
def test_dashboard__oldest_message_column(client, sqs, unique) -> None:
    """The queue table shows each queue's oldest-message age and where it came from."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        client.force_login(user_with("view_dashboard"))
        page = client.get("/admin/sqs_broker/dashboard/").content.decode()
    assert "Oldest message" in page
    assert 'class="num oldest" data-label="Oldest message" title="Source: attributes">0 s' in page
