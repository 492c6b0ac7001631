"""Tests of manage.py sqs_purge: the app's queues only, and only when confirmed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from tests.support import ROOT
from tests.support.env import base_env, make_app


@pytest.fixture
def app(unique):
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        yield celery


def _depth(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_sqs_purge__refuses_without_confirmation_then_purges(sqs, unique, app, caplog):
    """Nothing typed or a wrong name: exit 64, nothing purged, nothing recorded; typed: purged."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    for typed in ("", "celery\n"):
        with pytest.raises(CommandError, match="does not match") as refused:
            call_command("sqs_purge", f"{unique}-celery", stdin=StringIO(typed), stdout=StringIO())
        assert refused.value.returncode == 64
    assert _depth(sqs, url) == 1
    assert not [r for r in caplog.records if r.name == "sqs_broker.audit"]
    out = StringIO()
    with caplog.at_level("INFO", logger="sqs_broker.audit"):
        call_command(
            "sqs_purge", f"{unique}-celery", stdin=StringIO(f"{unique}-celery\n"), stdout=out
        )
    # Piped input is not echoed: the prompt's line ends before the result.
    assert "to confirm: \nPurge of" in out.getvalue()
    assert _depth(sqs, url) == 0
    # No Django user in a shell: the record of what was done goes to the project's logs.
    (record,) = [r for r in caplog.records if r.name == "sqs_broker.audit"]
    assert record.getMessage().startswith("manage.py sqs_purge by ")
    assert f"purged {unique}-celery (about 1 visible messages)" in record.getMessage()


def test_sqs_purge__only_the_apps_queues(sqs, unique, app):
    """A queue under the prefix that the app does not declare is refused, even with --yes."""
    url = sqs.create_queue(QueueName=f"{unique}-payments")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    with pytest.raises(CommandError, match="not a queue of this app") as refused:
        call_command("sqs_purge", f"{unique}-payments", "--yes", stdout=StringIO())
    assert refused.value.returncode == 64
    assert _depth(sqs, url) == 1


def test_audit__kept_by_the_example_whatever_the_log_level():
    """DJANGO_LOG_LEVEL=WARNING quiets the rest, not the record of what a command changed."""
    from tests.support.env import run_python

    code = (
        "import django; django.setup()\n"
        "import logging\n"
        "from sqs_broker.management.commands._confirm import audit\n"
        "logging.getLogger('sqs_broker.sqs').info('routine')\n"
        "audit('manage.py sqs_purge', 'purged q (about 3 visible messages)')\n"
    )
    env = base_env(DJANGO_LOG_LEVEL="WARNING", DJANGO_SECRET_KEY="k" * 50)
    result = run_python("-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert "routine" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "sqs_broker.audit" in line]
    # Stamped: date, time, level, logger.
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO sqs_broker\.audit: ", line), line
    assert "sqs_broker.audit: manage.py sqs_purge by " in line
    assert "purged q (about 3 visible messages)" in line


# --- Ctrl-C at every step ------------------------------------------------------------------

INTERRUPTED_BEFORE = "Interrupted: nothing was purged."


def _audit_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sqs_broker.audit"]


def _ctrl_c(times: int = 1) -> None:
    """Ctrl-C as a terminal sends it: SIGINT to this process, handled before the next line."""
    for _ in range(times):
        os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def full_queue(sqs, unique, app) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    return f"{unique}-celery", url


@pytest.mark.parametrize("step", ["owned", "confirm"])
def test_sqs_purge__interrupted_before_purging(full_queue, sqs, caplog, monkeypatch, step):
    """Ctrl-C while the queue is read or before the prompt: exit 130, nothing purged or logged."""
    from sqs_broker.management.commands import sqs_purge

    name, url = full_queue

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sqs_purge, step, interrupted)
    with caplog.at_level("INFO", logger="sqs_broker.audit"), pytest.raises(CommandError) as stop:
        call_command("sqs_purge", name, "--yes", stdout=StringIO(), stderr=StringIO())
    assert (str(stop.value), stop.value.returncode) == (INTERRUPTED_BEFORE, 130)
    assert _depth(sqs, url) == 1
    assert _audit_lines(caplog) == []


def test_sqs_purge__interrupted_at_the_prompt(full_queue, sqs, caplog):
    """Ctrl-C while the name is typed: the prompt's line ends, exit 130, nothing purged."""
    name, url = full_queue

    class CtrlC(StringIO):
        def readline(self, *args):
            raise KeyboardInterrupt

    out = StringIO()
    with caplog.at_level("INFO", logger="sqs_broker.audit"), pytest.raises(CommandError) as stop:
        call_command("sqs_purge", name, stdin=CtrlC(), stdout=out, stderr=StringIO())
    assert (str(stop.value), stop.value.returncode) == (
        "Interrupted at the prompt: nothing was done.",
        130,
    )
    assert out.getvalue() == (
        f"{name}: about 1 visible messages.\n"
        f"Purge {name}? Type the queue's name ({name}) to confirm: \n"
    )
    assert _depth(sqs, url) == 1
    assert _audit_lines(caplog) == []


def test_sqs_purge__ctrl_c_while_sqs_purges_is_held(full_queue, sqs, caplog, monkeypatch):
    """One Ctrl-C while PurgeQueue is in flight: the purge and its audit line go through, exit 0."""
    from sqs_broker import actions

    name, url = full_queue
    real = actions.purge

    def purge_then_ctrl_c(state, app=None):
        real(state, app)
        _ctrl_c()

    monkeypatch.setattr(actions, "purge", purge_then_ctrl_c)
    out, err = StringIO(), StringIO()
    with caplog.at_level("INFO", logger="sqs_broker.audit"):
        call_command("sqs_purge", name, "--yes", stdout=out, stderr=err)
    assert _depth(sqs, url) == 0
    (line,) = _audit_lines(caplog)
    assert line.endswith(f": purged {name} (about 1 visible messages)")
    assert out.getvalue().endswith(
        f"Purge of {name} started: SQS deletes its messages within about 60 seconds.\n"
    )
    assert err.getvalue() == (
        "Ctrl-C: finishing the change SQS was asked for and recording it, then stopping "
        "(Ctrl-C again to stop waiting for SQS's answer).\n"
        "Ctrl-C came after PurgeQueue was sent: the purge went ahead.\n"
    )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("where", ["second Ctrl-C before the request", "raised in the request"])
def test_sqs_purge__stopped_while_sqs_answers_says_unknown(
    full_queue, sqs, caplog, monkeypatch, where
):
    """Stopped during PurgeQueue: the audit line and the error say the outcome is unknown."""
    from sqs_broker import actions

    name, url = full_queue
    real = actions.purge

    def stopped(state, app=None):
        if where.startswith("second"):
            _ctrl_c(2)  # the second one raises here: PurgeQueue is never sent
        real(state, app)
        raise KeyboardInterrupt  # sent, its answer never read

    monkeypatch.setattr(actions, "purge", stopped)
    with caplog.at_level("INFO", logger="sqs_broker.audit"), pytest.raises(CommandError) as stop:
        call_command("sqs_purge", name, "--yes", stdout=StringIO(), stderr=StringIO())
    assert stop.value.returncode == 130
    assert str(stop.value) == (
        f"Interrupted while asking SQS to purge {name}: whether it purged is unknown; "
        "look at its depth (manage.py sqs_stats)."
    )
    (line,) = _audit_lines(caplog)
    assert line.endswith(
        f": interrupted while asking SQS to purge {name} (about 1 visible messages): "
        "whether it purged is unknown"
    )
    assert _depth(sqs, url) == (1 if where.startswith("second") else 0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("step", ["before the audit line", "after the audit line"])
def test_sqs_purge__ctrl_c_after_the_purge_cannot_lose_the_audit_line(
    full_queue, sqs, caplog, monkeypatch, step
):
    """Two Ctrl-C once SQS answered: both held, the audit line and the result written, exit 0."""
    from sqs_broker.management.commands import _confirm, sqs_purge

    name, url = full_queue

    def audit(command, text):
        if step.startswith("before"):
            _ctrl_c(2)
        _confirm.audit(command, text)
        if step.startswith("after"):
            _ctrl_c(2)

    monkeypatch.setattr(sqs_purge, "audit", audit)
    out = StringIO()
    with caplog.at_level("INFO", logger="sqs_broker.audit"):
        call_command("sqs_purge", name, "--yes", stdout=out, stderr=StringIO())
    (line,) = _audit_lines(caplog)
    assert line.endswith(f": purged {name} (about 1 visible messages)")
    assert out.getvalue().endswith("within about 60 seconds.\n")
    assert _depth(sqs, url) == 0


def test_sqs_purge__sigint_at_the_prompt_of_a_real_process(sqs, unique, tmp_path):
    """A real Ctrl-C (SIGINT) at the prompt: one line on stderr, no traceback, exit 130."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    env = base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        DJANGO_SETTINGS_MODULE="project.settings",
        DJANGO_SECRET_KEY="k" * 50,
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
    )
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sqs_purge", f"{unique}-celery"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    prompt = "to confirm: "
    seen = ""
    deadline = time.monotonic() + 60
    while not seen.endswith(prompt) and time.monotonic() < deadline:
        char = process.stdout.read(1)
        if not char:
            break
        seen += char
    assert seen.endswith(prompt), seen
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err == "CommandError: Interrupted at the prompt: nothing was done.\n"
    assert _depth(sqs, url) == 1
