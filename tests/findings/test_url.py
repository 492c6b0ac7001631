"""sqs_broker.findings.url: the broker URL and its credentials (E001, W001, E002, E003)."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from kombu.utils.url import safequote

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
from sqs_broker import findings
from tests.findings.common import (
    SECRET,
    OfflineCases,
    app_for,
    ids,
    offline_case_tests,
    predefined,
    url,
)

OFFLINE: OfflineCases = {
    "sqs_broker.E001": (
        {
            "env": {
                "SQS_CREDENTIALS_IN_URL": "true",
                "AWS_ACCESS_KEY_ID": "AKIAFINDINGS",
                "AWS_SECRET_ACCESS_KEY": SECRET,
            },
            "settings": {"DEBUG": True},
        },
        {
            "env": {"AWS_ACCESS_KEY_ID": "AKIAFINDINGS", "AWS_SECRET_ACCESS_KEY": SECRET},
            "settings": {"DEBUG": True},
        },
    ),
    "sqs_broker.E002": (
        {"conf": {"broker_url": f"sqs://AKIAFINDINGS:{SECRET}@"}},
        {"conf": {"broker_url": f"sqs://AKIAFINDINGS:{safequote(SECRET)}@"}},
    ),
    "sqs_broker.E002.twice": (
        {"conf": {"broker_url": f"sqs://AKIAFINDINGS:{safequote(safequote(SECRET))}@"}},
        {"conf": {"broker_url": f"sqs://AKIAFINDINGS:{safequote(SECRET)}@"}},
    ),
    "sqs_broker.E002.nosecret": (
        {"conf": {"broker_url": "sqs://AKIAFINDINGS@"}},
        {"conf": {"broker_url": "sqs://"}},
    ),
    "sqs_broker.W001": ({"conf": {"broker_url": "redis://127.0.0.1:6379/0"}}, {}),
    "sqs_broker.E003": (
        {
            "env": predefined(
                celery={
                    "url": url("celery"),
                    "access_key_id": "AKIAQ",
                    "secret_access_key": safequote(SECRET),
                }
            )
        },
        {
            "env": predefined(
                celery={"url": url("celery"), "access_key_id": "AKIAQ", "secret_access_key": SECRET}
            )
        },
    ),
}


test_offline__raises_each_id, test_offline__clean_configuration_does_not = offline_case_tests(
    OFFLINE
)


def test_offline__messages_never_carry_the_secret() -> None:
    """Findings about URL and predefined credentials describe them without their value."""
    cases = [OFFLINE["sqs_broker.E002"][0], OFFLINE["sqs_broker.E003"][0]]
    for case in cases:
        app = app_for(case.get("env"), case.get("options"), **case.get("conf", {}))
        text = json.dumps([f.as_dict() for f in findings.offline(app)])
        assert SECRET not in text and safequote(SECRET) not in text


@pytest.mark.parametrize("setting", ["broker_read_url", "broker_write_url"])
def test_e001__keys_in_the_read_or_write_url(setting: str) -> None:
    """E001 looks at the read and write URLs too: Celery uses them instead of broker_url."""
    keyed = f"sqs://AKIAFINDINGS:{safequote(SECRET)}@"
    app = app_for(**{setting: keyed})
    assert "@" not in app.conf.broker_url  # the main URL carries no keys
    with override_settings(DEBUG=True):
        assert "sqs_broker.E001" in ids(findings.offline(app))
        assert findings.unsafe_debug(app) is not None
    with override_settings(DEBUG=False):
        assert "sqs_broker.E001" not in ids(findings.offline(app))


@pytest.mark.parametrize("secret", ["abc%def/ghi+jk=", "100%2Fpure", "%%%%x"])
def test_e002__a_secret_with_a_percent_sign_round_trips(
    secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A legal secret containing '%', put in the URL by the settings, is no E002."""
    env = {
        "SQS_CREDENTIALS_IN_URL": "true",
        "AWS_ACCESS_KEY_ID": "AKIAPERCENT",
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = app_for(env)
    assert "sqs_broker.E002" not in ids(findings.offline(app))
    # The same secret quoted twice is still found.
    twice = app_for(env, broker_url=f"sqs://AKIAPERCENT:{safequote(safequote(secret))}@")
    assert "sqs_broker.E002" in ids(findings.offline(twice))
