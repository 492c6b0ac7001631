"""sqs_broker.guard: servers and workers refuse to start with DEBUG and keys in the URL."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from sqs_broker import guard
from tests.conftest import ROOT, base_env, make_app, run_python

UNSAFE = {
    "DJANGO_DEBUG": "true",
    "SQS_CREDENTIALS_IN_URL": "true",
    "AWS_ACCESS_KEY_ID": "AKIAGUARDTEST",
    "AWS_SECRET_ACCESS_KEY": "guard/secret+value=",
}


def test_refuse_unsafe_start__raises_only_with_debug_and_url_keys() -> None:
    """The refusal needs both DEBUG and credentials in the URL."""
    unsafe = make_app(UNSAFE)
    with override_settings(DEBUG=True), pytest.raises(ImproperlyConfigured, match="E001"):
        guard.refuse_unsafe_start(unsafe)
    with override_settings(DEBUG=False):
        guard.refuse_unsafe_start(unsafe)
    with override_settings(DEBUG=True):
        guard.refuse_unsafe_start(make_app({k: v for k, v in UNSAFE.items() if "URL" not in k}))


@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "check"],
        ["manage.py", "runserver", "127.0.0.1:0"],
        ["-c", "import project.wsgi"],
        ["-c", "import project.asgi"],
        ["-m", "celery", "-A", "project", "worker", "--pool=solo"],
    ],
    ids=["check", "runserver", "wsgi", "asgi", "worker"],
)
def test_processes__refuse_to_start_when_unsafe(argv: list[str]) -> None:
    """check, runserver, WSGI, ASGI and the worker exit non-zero naming E001."""
    result = run_python(*argv, env=base_env(**UNSAFE))
    assert result.returncode != 0
    assert "sqs_broker.E001" in result.stdout + result.stderr
    assert UNSAFE["AWS_SECRET_ACCESS_KEY"] not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "check"],
        ["-c", "import project.wsgi"],
        ["-c", "import project.asgi"],
    ],
    ids=["check", "wsgi", "asgi"],
)
def test_processes__start_when_debug_is_off(argv: list[str]) -> None:
    """With DEBUG off, the same keys in the URL do not stop anything."""
    result = run_python(*argv, env=base_env(**{**UNSAFE, "DJANGO_DEBUG": "false"}))
    assert result.returncode == 0, result.stderr


def test_runserver__serves_when_keys_come_from_the_environment() -> None:
    """DEBUG on with keys in the environment (not the URL): runserver starts."""
    env = base_env(**{k: v for k, v in UNSAFE.items() if k != "SQS_CREDENTIALS_IN_URL"})
    env = {**env, "DJANGO_SETTINGS_MODULE": "project.settings"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", "127.0.0.1:0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        for line in process.stdout:
            if "Quit the server" in line or "Starting development server" in line:
                break
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.worker
def test_worker__starts_when_debug_is_off(start_worker, unique) -> None:
    """The same keys in the URL with DEBUG off: the worker becomes ready."""
    env = base_env(**{**UNSAFE, "DJANGO_DEBUG": "false", "SQS_QUEUE_NAME_PREFIX": f"{unique}-"})
    # moto accepts any key, so the URL's keys reach the local SQS as they would AWS.
    worker = start_worker(env)
    assert worker.process.poll() is None


#: A settings module that sets the broker URL itself, its secret not quoted.
UNQUOTED_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
UNQUOTED_SETTINGS = f"""
from project.settings import *  # noqa: F403
CELERY_BROKER_URL = "sqs://AKIAEXAMPLE:{UNQUOTED_SECRET}@127.0.0.1:4566"
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["manage.py", "check"],
        ["-c", "import project.wsgi"],
        ["-c", "import project.asgi"],
        ["-m", "celery", "-A", "project", "worker", "--pool=solo"],
        ["-m", "celery", "-A", "project", "beat"],
    ],
    ids=["check", "wsgi", "asgi", "worker", "beat"],
)
def test_processes__refuse_an_unquoted_secret_set_in_settings(argv: list[str], tmp_path) -> None:
    """A settings module's broker URL with an unquoted '/' stops every process, no piece shown."""
    (tmp_path / "unquoted_settings.py").write_text(UNQUOTED_SETTINGS)
    env = base_env(DJANGO_SECRET_KEY="x" * 50, PYTHONPATH=str(tmp_path))
    result = run_python(*argv, env=env, settings="unquoted_settings", timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "CELERY_BROKER_URL cannot be parsed" in output and "safequote" in output
    assert not [p for p in UNQUOTED_SECRET.split("/") if p in output], output[-3000:]


def test_refuse_unsafe_start__unquoted_url_in_settings() -> None:
    """The start-up refusal covers a URL set directly on the app, without showing it."""
    app = make_app({})
    app.conf.broker_url = f"sqs://AKIAEXAMPLE:{UNQUOTED_SECRET}@127.0.0.1:4566"
    with override_settings(DEBUG=False), pytest.raises(ImproperlyConfigured) as caught:
        guard.refuse_unsafe_start(app)
    assert "CELERY_BROKER_URL" in str(caught.value)
    assert not [p for p in UNQUOTED_SECRET.split("/") if p in str(caught.value)]
