"""The environment of a test's processes, and what is built from it.

``base_env`` copies this run's environment without the ``SQS_*``/``CELERY_*``
variables of the developer's shell, pointed at this run's SQS endpoint;
``make_app`` configures a Celery app from it exactly as ``sqs_broker.settings``
configures Django's; ``run_python`` runs ``python`` in the project root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from celery import Celery

from sqs_broker.settings import celery_conf
from tests.support import ROOT


def base_env(**overrides: str) -> dict[str, str]:
    """The environment of this test run, with SQS variables of the test's own."""
    # DATABASE_URL names the database the tests were started with; workers
    # must use the test database instead (start_worker sets it).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SQS_", "CELERY_")) and k != "DATABASE_URL"
    }
    env["SQS_ENDPOINT_URL"] = os.environ["SQS_ENDPOINT_URL"]
    env.update(overrides)
    return env


def make_app(env: Mapping[str, str], **conf: Any) -> Celery:
    """A Celery app configured exactly as sqs_broker.settings configures Django's."""
    app = Celery("test", set_as_current=False)
    app.config_from_object(celery_conf(env))
    app.conf.update(conf)
    return app


def prefixed_app(unique: str) -> Celery:
    """A Celery app whose queues carry this test's own prefix."""
    return make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))


def run_python(
    *args: str,
    env: Mapping[str, str],
    settings: str = "project.settings",
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``python *args`` in the project root with ``env`` and ``settings``; output as text."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": settings},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def database_url() -> str:
    """A URL for the database the tests use, for worker subprocesses."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    return f"postgres://{user}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"
