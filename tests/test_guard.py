"""sqs_broker.guard: servers and workers refuse to start with DEBUG and keys in the URL."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from sqs_broker import guard
from tests.support import ROOT
from tests.support.env import base_env, make_app, run_python

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
        ["-m", "celery", "-A", "project", "beat"],
        ["-m", "celery", "-A", "project", "events", "--dump"],
        ["-m", "celery", "-A", "project", "events"],
    ],
    ids=["check", "runserver", "wsgi", "asgi", "worker", "beat", "events-dump", "events-top"],
)
def test_processes__refuse_to_start_when_unsafe(argv: list[str]) -> None:
    """check, runserver, WSGI, ASGI, the worker, beat and events exit non-zero naming E001."""
    result = run_python(*argv, env=base_env(**UNSAFE), timeout=30)
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
    # Unbuffered: runserver's banner is read through a pipe while it keeps serving.
    env = {**env, "DJANGO_SETTINGS_MODULE": "project.settings", "PYTHONUNBUFFERED": "1"}
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


CONFIG_CANARY = "CanaryConfig/Secret+Zz9"

#: Python entry points of the example project: Django's, Celery's and the servers'.
ENTRY_POINTS = {
    "manage-check": ["manage.py", "check"],
    "manage-sqs_check": ["manage.py", "sqs_check"],
    "manage-runserver": ["manage.py", "runserver", "--noreload", "127.0.0.1:0"],
    "wsgi": ["-c", "import project.wsgi"],
    "asgi": ["-c", "import project.asgi"],
    "worker": ["-m", "celery", "-A", "project", "worker", "--pool=solo"],
    "beat": ["-m", "celery", "-A", "project", "beat"],
    "events": ["-m", "celery", "-A", "project", "events", "--dump"],
    "report": ["-m", "celery", "-A", "project", "report"],
}


def meaningful_lines(text: str) -> list[str]:
    """Lines of ``text`` other than warnings Celery prints itself (root user, click)."""
    noise = ("Warning", "warn", "superuser", "--uid", "User information", "recommended")
    noise += ("parse_args", "make_parser")
    lines = [line for line in text.splitlines() if line.strip()]
    return [line for line in lines if not any(n in line for n in noise)]


def exit_status(name: str) -> int:
    """One status for one configuration error: 2 for every command (manage.py, runserver, the
    worker, beat, events, report), whether a bad variable or the E001 refusal;
    gunicorn's "App failed to load" (4) for the WSGI/ASGI application."""
    if name in ("wsgi", "asgi"):
        return guard.SERVER_EXIT_STATUS
    return guard.EXIT_STATUS


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_entry_points__configuration_error_is_one_line(name: str) -> None:
    """A bad variable stops each entry point with one ImproperlyConfigured line and its status."""
    env = base_env(
        SQS_WAIT_TIME_SECONDS="99", AWS_SECRET_ACCESS_KEY=CONFIG_CANARY, DJANGO_SECRET_KEY="x" * 50
    )
    result = run_python(*ENTRY_POINTS[name], env=env, timeout=30)
    expected = "ImproperlyConfigured: SQS_WAIT_TIME_SECONDS must be an integer from 0 to 20"
    assert result.returncode == exit_status(name)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    assert meaningful_lines(result.stderr) == [
        "ImproperlyConfigured: SQS_WAIT_TIME_SECONDS must be an integer from 0 to 20; got 99."
    ], result.stderr[-3000:]
    assert expected in result.stderr
    assert CONFIG_CANARY not in result.stdout + result.stderr


def test_entry_points__secret_in_a_bad_value_not_shown() -> None:
    """A secret pasted into the wrong variable stays out of the one line."""
    env = base_env(
        SQS_REGION=CONFIG_CANARY, AWS_SECRET_ACCESS_KEY=CONFIG_CANARY, DJANGO_SECRET_KEY="x" * 50
    )
    result = run_python("manage.py", "check", env=env)
    assert result.returncode == 2
    assert meaningful_lines(result.stderr) == [
        "ImproperlyConfigured: SQS_REGION must be an AWS region name such as eu-west-1; "
        "got (a value holding a secret, not shown)."
    ]


SERVING = ("wsgi", "asgi", "worker", "beat", "events", "manage-runserver")


@pytest.mark.parametrize("name", SERVING)
def test_entry_points__unsafe_start_is_one_line(name: str) -> None:
    """The E001 refusal of each serving entry point is one line too, without a traceback."""
    result = run_python(*ENTRY_POINTS[name], env=base_env(**UNSAFE), timeout=30)
    assert result.returncode == exit_status(name)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    lines = meaningful_lines(result.stderr)
    # runserver reports it as the command's error, as Django reports a failed system check.
    kind = "CommandError" if name == "manage-runserver" else "ImproperlyConfigured"
    assert len(lines) == 1 and lines[0].startswith(f"{kind}: sqs_broker.E001: "), lines


def test_missing_queue_line__beat_error_for_a_missing_queue_is_one_line(
    sqs_endpoint, unique, caplog
) -> None:
    """A scheduled task sent to a predefined queue SQS does not have: one line, no traceback."""
    import json

    from celery.beat import ScheduleEntry, Scheduler

    gone = f"{sqs_endpoint}/123456789012/{unique}-gone"
    app = make_app(base_env(SQS_PREDEFINED_QUEUES=json.dumps({"celery": {"url": gone}})))
    guard.install(app)
    guard.install(app)  # twice, as ready() and the project's Celery module both do
    assert (
        sum(isinstance(f, guard.MissingQueueLine) for f in logging.getLogger("celery.beat").filters)
        == 1
    )
    scheduler = Scheduler(app=app, schedule={}, lazy=True)
    entry = ScheduleEntry(name="tick", task="t.a", schedule=60.0, app=app)
    with caplog.at_level("INFO", logger="celery.beat"), app.producer_or_acquire() as producer:
        scheduler.apply_entry(entry, producer=producer)
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert error.exc_info is None and error.stack_info is None
    text = error.getMessage()
    assert "\n" not in text
    assert text.startswith("Couldn't apply scheduled task tick: An error occurred ")
    assert "NonExistentQueue" in text
    assert text.endswith(
        "(the queue does not exist on SQS: a predefined queue is never created; create it or "
        "correct SQS_PREDEFINED_QUEUES)"
    )


def test_missing_queue_line__other_errors_keep_their_traceback() -> None:
    """Only a missing queue is shortened: any other error of beat is left as Celery logs it."""
    filter_ = guard.MissingQueueLine()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord(
            "celery.beat",
            logging.ERROR,
            __file__,
            1,
            "Message Error: %s",
            ("boom",),
            sys.exc_info(),
        )
    assert filter_.filter(record) is True
    assert record.exc_info is not None and record.getMessage() == "Message Error: boom"


def test_example_project__missing_secret_key_names_a_command_a_clean_shell_has() -> None:
    """Without DJANGO_SECRET_KEY the example project says how to make one with python3, and that
    command, as printed, prints a key (a clean Debian shell has no ``python``)."""
    import re
    import shutil

    env = {
        k: v
        for k, v in base_env().items()
        if not k.startswith(("DJANGO_SECRET_KEY", "DJANGO_DEBUG"))
    }
    result = run_python("manage.py", "check", env=env, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "DJANGO_SECRET_KEY is not set" in output, output[-2000:]
    found = re.search(r"python3 -c '([^']+)'", output)
    assert found is not None, output[-2000:]
    python3 = shutil.which("python3")
    assert python3 is not None
    made = subprocess.run([python3, "-c", found[1]], capture_output=True, text=True, check=True)
    assert len(made.stdout.strip()) >= 50


def _without_credentials(home: Path) -> dict[str, str]:
    """This run's environment with no AWS credentials anywhere botocore looks, no endpoint."""
    env = {k: v for k, v in base_env().items() if not k.startswith("AWS_")}
    env.pop("SQS_ENDPOINT_URL", None)
    return {
        **env,
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
        # No instance role to ask on this machine; without this botocore waits on it ~1 s.
        "AWS_EC2_METADATA_DISABLED": "true",
        "SQS_REGION": "eu-west-1",
        "DJANGO_SECRET_KEY": "x" * 50,
    }


def test_worker__no_credentials_at_all_stops_at_once_with_e018(tmp_path: Path) -> None:
    """A real worker with no credentials and AWS's endpoint stops with E018, not 100 retries."""
    began = time.monotonic()
    result = run_python(
        "-m", "celery", "-A", "project", "worker", "--pool=solo",
        env=_without_credentials(tmp_path), timeout=60,
    )  # fmt: skip
    took = time.monotonic() - began
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "sqs_broker.E018" in output and "Unable to locate credentials" in output, output
    assert "Trying again" not in output and "localhost" not in output, output[-3000:]
    assert took < 30, took


@pytest.mark.parametrize(
    "extra",
    [
        {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s" * 40},
        {"SQS_ENDPOINT_URL": "http://127.0.0.1:9"},
    ],
    ids=["keys-in-environment", "endpoint-url"],
)
def test_missing_credentials__none_when_found_or_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, str]
) -> None:
    """No E018 when botocore finds keys or an endpoint URL names a local SQS; E018 otherwise."""
    from sqs_broker import findings
    from sqs_broker.topology import Topology

    env = _without_credentials(tmp_path)
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name in ("HOME", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bare = {k: v for k, v in env.items() if k.startswith("SQS_")}
    found = findings.missing_credentials(Topology.of(make_app(bare)))
    assert found is not None and found.id == "sqs_broker.E018"
    for name, value in extra.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    app = make_app({**bare, **{k: v for k, v in extra.items() if k.startswith("SQS_")}})
    assert findings.missing_credentials(Topology.of(app)) is None
