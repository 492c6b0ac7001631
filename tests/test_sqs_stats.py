"""Tests of ``manage.py sqs_stats``: gather() as JSON, once or every N seconds."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.support import ROOT
from tests.support.env import base_env, make_app


@pytest.mark.django_db
def test_sqs_stats__json_of_gather(sqs, unique):
    """One shot prints gather()'s result: the queue with its depth, age and backlog."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    out = io.StringIO()
    with override_settings(SQS_BROKER_CELERY_APP=app):
        call_command("sqs_stats", "--offline", stdout=out)
        with pytest.raises(CommandError, match="window must be one of"):
            call_command("sqs_stats", "--window", "7", stdout=io.StringIO())
    data = json.loads(out.getvalue())
    (row,) = data["queues"]
    assert (row["name"], row["visible"], row["backlog_per_worker"]) == (f"{unique}-celery", 1, 1.0)
    assert {"findings", "workers", "tasks", "generated_at"} <= set(data)


def _every(seconds: float, unique: str, tmp_path) -> subprocess.Popen[str]:
    """``sqs_stats --offline --interval seconds`` writing into a pipe, as a user's shell runs it."""
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", DJANGO_SETTINGS_MODULE="project.settings")
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/db.sqlite3"
    env.pop("PYTHONUNBUFFERED", None)  # a pipe is block-buffered: the command flushes each line
    return subprocess.Popen(
        [sys.executable, "manage.py", "sqs_stats", "--offline", "--interval", str(seconds)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.usefixtures("sqs_endpoint")
def test_sqs_stats__interval_until_interrupted(unique, tmp_path):
    """--interval prints one JSON line per pass and stops cleanly on Ctrl-C (SIGINT)."""
    proc = _every(0.5, unique, tmp_path)
    lines = []
    deadline = time.monotonic() + 60
    while len(lines) < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert len(lines) == 2, err
    assert all("queues" in line for line in lines)
    assert proc.returncode == 0, err


@pytest.mark.usefixtures("sqs_endpoint")
def test_sqs_stats__interval_ends_quietly_when_the_reader_is_gone(unique, tmp_path):
    """``| head -1``: the pipe closes, the command ends with status 0 and no traceback."""
    proc = _every(0.2, unique, tmp_path)
    assert json.loads(proc.stdout.readline())["queues"] is not None
    proc.stdout.close()  # what head does after its line
    assert proc.wait(timeout=30) == 0
    err = proc.stderr.read()
    assert "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize("interval", ["0", "-1", "inf", "nan", "1e-300", "0.09", "86401", "x"])
def test_sqs_stats__interval_from_a_tenth_of_a_second_to_a_day(interval):
    """An interval out of 0.1 to 86400 s (1e-300 is a busy loop): a usage error, exit 64."""
    with pytest.raises(CommandError) as refused:
        call_command("sqs_stats", "--offline", "--interval", interval, stdout=io.StringIO())
    assert str(refused.value) == (
        "Error: argument --interval: must be a number of seconds from 0.1 to 86400; got "
        + (repr(interval) if interval == "x" else interval)
    )
    assert refused.value.returncode == 64


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"interval": 1e-300}, "argument --interval: must be a number of seconds from 0.1"),
        ({"indent": 99999999}, "argument --indent: must be a whole number from 0 to 8"),
        ({"indent": -1}, "argument --indent: must be a whole number from 0 to 8"),
    ],
)
def test_sqs_stats__keyword_options_range_checked_too(options, message):
    """call_command(interval=1e-300) skips argparse's type=: the range is checked all the same."""
    with pytest.raises(CommandError, match=message) as refused:
        call_command("sqs_stats", offline=True, stdout=io.StringIO(), **options)
    assert refused.value.returncode == 64


@pytest.mark.parametrize("indent", ["99999999", "9", "-1"])
def test_sqs_stats__indent_at_most_8(indent):
    """--indent 99999999 would write gigabytes of spaces: a usage error naming --indent."""
    with pytest.raises(CommandError) as refused:
        call_command("sqs_stats", "--offline", "--indent", indent, stdout=io.StringIO())
    assert str(refused.value) == (
        f"Error: argument --indent: must be a whole number from 0 to 8; got {indent}"
    )
    assert refused.value.returncode == 64


def test_sqs_stats__indent_with_interval_refused():
    """--interval prints one document per line: an --indent with it is a usage error."""
    with pytest.raises(CommandError) as refused:
        call_command(
            "sqs_stats", "--offline", "--interval", "1", "--indent", "2", stdout=io.StringIO()
        )
    assert str(refused.value) == (
        "--indent is for one shot: --interval prints one JSON document per line."
    )
    assert refused.value.returncode == 64


def test_sqs_stats__usage_error_from_the_shell_exits_64():
    """From a shell, a bad value prints the usage and the error on stderr, exit 64 (not 2)."""
    env = base_env(DJANGO_SETTINGS_MODULE="project.settings", DJANGO_SECRET_KEY="k" * 50)
    result = subprocess.run(
        [sys.executable, "manage.py", "sqs_stats", "--interval", "1e-300"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 64
    assert result.stdout == ""
    assert result.stderr.startswith("usage: manage.py sqs_stats ")
    assert result.stderr.endswith(
        "manage.py sqs_stats: error: argument --interval: must be a number of seconds from "
        "0.1 to 86400; got 1e-300\n"
    )


def test_sqs_stats__ctrl_c_in_one_shot_is_one_line(monkeypatch):
    """Ctrl-C while the one-shot gathers: "Interrupted.", exit 130, no traceback."""
    from sqs_broker import stats

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stats, "gather", interrupted)
    with pytest.raises(CommandError) as stopped:
        call_command("sqs_stats", "--offline", stdout=io.StringIO())
    assert (str(stopped.value), stopped.value.returncode) == ("Interrupted.", 130)
