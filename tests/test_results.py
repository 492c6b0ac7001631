"""Tests of sqs_broker.results: a task's stored result, scrubbed, from either backend."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from sqs_broker import results
from sqs_broker.redact import MASK
from tests.support.env import base_env, make_app

CANARY = "canary-secret-in-a-traceback-0001"


@pytest.mark.django_db
def test_lookup__django_celery_results_row_is_scrubbed_and_linked(monkeypatch):
    """A FAILURE row: state, "Type: message", the traceback's end, scrubbed; its admin URL."""
    from django_celery_results.models import TaskResult

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    failure = {"exc_type": "TimeoutError", "exc_message": ["slow", 3], "exc_module": "builtins"}
    traceback = "x" * 10_000 + f'\nFile "t.py"\nTimeoutError: key {CANARY}\n'
    row = TaskResult.objects.create(
        task_id="id-1",
        task_name="t.a",
        status="FAILURE",
        result=json.dumps(failure),
        traceback=traceback,
    )
    found = results.lookup(["id-1", "id-unknown", ""])
    assert list(found) == ["id-1"]
    got = found["id-1"]
    assert (got["state"], got["task_name"], got["exception"]) == (
        "FAILURE",
        "t.a",
        "TimeoutError: slow, 3",
    )
    assert got["admin_url"] == f"/admin/django_celery_results/taskresult/{row.pk}/change/"
    assert len(got["traceback"]) <= results.TRACEBACK_CHARS + 1
    assert got["traceback"].rstrip().endswith(f"TimeoutError: key {MASK}")  # the end is kept
    assert CANARY not in json.dumps(found)


@pytest.mark.django_db
def test_lookup__celery_backend_without_django_celery_results(monkeypatch):
    """Without django_celery_results the app's backend answers; an unknown id is left out."""
    from django.apps import apps

    app = make_app(base_env(), result_backend="cache+memory://")
    app.backend.mark_as_failure("id-2", ValueError("broken"), traceback="Traceback...\nValueError")
    real = apps.is_installed
    monkeypatch.setattr(
        apps, "is_installed", lambda name: False if name == "django_celery_results" else real(name)
    )
    with override_settings(SQS_BROKER_CELERY_APP=app):
        found = results.lookup(["id-2", "id-never"])
    assert list(found) == ["id-2"]
    assert found["id-2"]["state"] == "FAILURE"
    assert found["id-2"]["exception"] == "ValueError: broken"
    assert found["id-2"]["admin_url"] is None
