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


def test_relative_time__how_long_ago_with_the_local_time_on_hover():
    """An ISO text, a datetime or epoch seconds: "N ago" in a <time>, local time in its title."""
    from datetime import UTC, datetime, timedelta

    from django.test import override_settings
    from django.utils import timezone

    from sqs_broker.templatetags.sqs_broker_tags import relative_time

    then = (timezone.now() - timedelta(minutes=5, seconds=3)).replace(microsecond=0)
    with (
        override_settings(TIME_ZONE="Europe/Paris"),
        timezone.override("Europe/Paris"),
        translation.override("en"),
    ):
        for value in (then, then.isoformat(), then.timestamp()):
            html = relative_time(value)
            assert html.startswith(f'<time datetime="{then.astimezone(UTC).isoformat()}"')
            local = timezone.localtime(then)
            assert f'title="{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"' in html
            assert html.endswith(">5\xa0minutes ago</time>"), html
        assert ">just now<" in relative_time(timezone.now())
    assert 'id="stamp"' in relative_time(datetime.now(UTC), "stamp")
    assert relative_time(None) == relative_time("not a time") == "—"
