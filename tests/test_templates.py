"""The example project's templates/: the admin's environment banner and the dashboard override."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.support.env import base_env, make_app
from tests.support.users import user_with

DASHBOARD = "/admin/sqs_broker/dashboard/"


@pytest.fixture
def staff(client, unique):
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        client.force_login(user_with("view_dashboard"))
        yield client


@pytest.mark.django_db
def test_base_site__banner_names_the_local_sqs_and_debug(staff):
    """Every admin page says which SQS the site talks to and whether DEBUG is on."""
    page = staff.get("/admin/").content.decode()
    assert 'id="environment-banner"' in page
    assert "local SQS at 127.0.0.1:" in page and "DEBUG off" in page
    assert "demo/banner.css" in page


@pytest.mark.django_db
def test_base_site__banner_names_the_aws_region(staff):
    """Against AWS the banner gives the region, never a key."""
    url = "sqs://AKIAEXAMPLEKEY:secret%2Fcanary@"
    options = {"region": "eu-west-1"}
    with override_settings(CELERY_BROKER_URL=url, CELERY_BROKER_TRANSPORT_OPTIONS=options):
        page = staff.get("/admin/").content.decode()
    assert "AWS eu-west-1" in page
    assert "AKIAEXAMPLEKEY" not in page and "canary" not in page


@pytest.mark.django_db
@pytest.mark.usefixtures("sqs_endpoint")
def test_dashboard__project_template_fills_a_block(staff):
    """templates/sqs_broker/dashboard.html extends the app's page and fills dashboard_top."""
    page = staff.get(DASHBOARD).content.decode()
    assert page.index('id="project-runbook"') < page.index('id="sqs-queues"')
    assert 'id="sqs-urls-missing"' not in page


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.urls_without_api")
@pytest.mark.usefixtures("sqs_endpoint")
def test_dashboard__says_when_the_json_and_metrics_urls_are_not_mounted(staff):
    """A project that did not include sqs_broker.urls is told so, not left wondering."""
    page = staff.get(DASHBOARD).content.decode()
    assert 'id="sqs-urls-missing"' in page
    assert "include sqs_broker.urls" in page
