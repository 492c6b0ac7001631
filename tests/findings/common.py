"""What the findings tests share: Celery apps built as sqs_broker.settings builds them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from sqs_broker import findings
from tests.support.env import base_env, make_app

ACCOUNT = "123456789012"
SECRET = "wJalr/XUtnFEMI+K7MDENG=bPx"
AWS = "https://sqs.eu-west-1.amazonaws.com"


def app_for(
    env: dict[str, str] | None = None, options: dict[str, Any] | None = None, **conf: Any
) -> Any:
    """A Celery app as sqs_broker.settings builds it, then ``options`` merged in."""
    app = make_app(base_env(**(env or {})), **conf)
    if options is not None:
        merged = dict(app.conf.broker_transport_options)
        merged.update(options)
        app.conf.broker_transport_options = merged
    return app


def ids(found: list[findings.Finding]) -> set[str]:
    return {f.id for f in found}


def url(name: str) -> str:
    return f"{base_env()['SQS_ENDPOINT_URL']}/{ACCOUNT}/{name}"


def predefined(**queues: dict[str, Any]) -> dict[str, str]:
    return {"SQS_PREDEFINED_QUEUES": json.dumps(queues)}


def base_id(case: str) -> str:
    """``sqs_broker.E002.twice`` -> ``sqs_broker.E002``: several cases may share an id."""
    return ".".join(case.split(".")[:2])


def offline_ids(case: dict[str, Any]) -> set[str]:
    from django.test import override_settings

    app = app_for(case.get("env"), case.get("options"), **case.get("conf", {}))
    with override_settings(**case.get("settings", {})):
        return ids(findings.offline(app))


def online_ids(app: Any, **kwargs: Any) -> set[str]:
    return ids(findings.online(app, **kwargs))


#: id (and a case name) -> (configuration that raises it, configuration that does not).
OfflineCases = dict[str, tuple[dict[str, Any], dict[str, Any]]]


def offline_case_tests(
    cases: OfflineCases,
) -> tuple[Callable[[str], None], Callable[[str], None]]:
    """The two tests of a topic module's offline cases, parametrized by its ids.

    A topic module binds them to its own names (``test_offline__raises_each_id,
    test_offline__clean_configuration_does_not = offline_case_tests(OFFLINE)``),
    so each case reports under the module that checks that topic.
    """

    @pytest.mark.parametrize("finding_id", sorted(cases))
    def raises_each_id(finding_id: str) -> None:
        """The first configuration of each offline case raises its id."""
        assert base_id(finding_id) in offline_ids(cases[finding_id][0])

    @pytest.mark.parametrize("finding_id", sorted(cases))
    def clean_configuration_does_not(finding_id: str) -> None:
        """The second configuration of each offline case does not."""
        assert base_id(finding_id) not in offline_ids(cases[finding_id][1])

    return raises_each_id, clean_configuration_does_not
