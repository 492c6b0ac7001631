"""manage.py sqs_check: output, --json shape, exit codes, colour, secrets and time bound."""

from __future__ import annotations

import json
import subprocess
import time
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

import sqs_broker.cache
from sqs_broker.localsqs import free_port
from sqs_broker.management.commands.sqs_check import Command
from tests.support.env import base_env, make_app, run_python
from tests.support.proxy import Proxy

SECRET = "sqscheck/secret+value="
UNSAFE = {
    "DJANGO_DEBUG": "true",
    "SQS_CREDENTIALS_IN_URL": "true",
    "AWS_ACCESS_KEY_ID": "AKIASQSCHECK",
    "AWS_SECRET_ACCESS_KEY": SECRET,
}
#: No error, no warning (W005 and I001 silenced): only information remains.
QUIET = {"CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT": "30", "SQS_POLLING_INTERVAL": "0"}


@pytest.fixture(autouse=True)
def _fresh_clients() -> Any:
    sqs_broker.cache.reset()
    yield
    sqs_broker.cache.reset()


def run(*args: str, app: Any) -> tuple[str, int]:
    """``sqs_check`` in process: its stdout and exit status."""
    out = StringIO()
    try:
        call_command("sqs_check", *args, app=app, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return out.getvalue(), exc.returncode
    return out.getvalue(), 0


def test_json__shape_and_ok(unique: str) -> None:
    """--json prints one object: ok and results with exactly the five keys."""
    app = make_app(base_env(**QUIET), task_default_queue=f"{unique}.fifo")
    out, status = run("--json", "--offline", app=app)
    data = json.loads(out)
    assert status == 0 and data["ok"] is True and set(data) == {"ok", "results"}
    assert data["results"], "the information findings are listed too"
    for result in data["results"]:
        assert set(result) == {"id", "level", "message", "hint", "queue"}
        assert result["level"] == "info"


def test_exit__1_on_an_error_and_ok_false() -> None:
    """An error finding: exit 1, and ok false in the JSON."""
    app = make_app(base_env(**QUIET))
    app.conf.result_backend = "rpc://"
    out, status = run("--json", "--offline", app=app)
    assert status == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert [r["id"] for r in data["results"] if r["level"] == "error"] == ["sqs_broker.E007"]


def test_fail_level__warning_fails_only_when_asked() -> None:
    """A warning exits 0 by default and 1 with --fail-level warning."""
    app = make_app(base_env(SQS_POLLING_INTERVAL="0", SQS_VISIBILITY_LEASE="0"))  # W005 remains
    assert run("--offline", app=app)[1] == 0
    out, status = run("--offline", "--fail-level", "warning", app=app)
    assert status == 1 and "sqs_broker.W005" in out


def test_exit__0_online_against_a_clean_queue(sqs: Any, unique: str) -> None:
    """Online on moto, the queue as kombu would create it: exit 0, identity reported."""
    sqs.create_queue(
        QueueName=f"{unique}-celery",
        Attributes={"VisibilityTimeout": "1800", "ReceiveMessageWaitTimeSeconds": "10"},
    )
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", **QUIET))
    out, status = run("--json", app=app)
    assert status == 0
    assert "sqs_broker.I005" in {r["id"] for r in json.loads(out)["results"]}


def test_exit__2_when_unreachable_within_30_seconds() -> None:
    """A closed port: exit 2 (could not check), E017 in the output, in well under 30 s."""
    app = make_app(base_env(SQS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", **QUIET))
    started = time.monotonic()
    out, status = run("--json", app=app)
    assert time.monotonic() - started < 30
    assert status == 2
    data = json.loads(out)
    assert data["ok"] is False and "sqs_broker.E017" in {r["id"] for r in data["results"]}


def test_timeout__a_slow_endpoint_gives_up_with_exit_2(sqs_endpoint: str) -> None:
    """Every call answered just in time still ends at --timeout: exit 2 with E017."""
    with Proxy.to(sqs_endpoint, delay=1.0) as slow:
        app = make_app(base_env(SQS_ENDPOINT_URL=slow.endpoint_url, **QUIET))
        started = time.monotonic()
        out, status = run("--json", "--timeout", "1.5", app=app)
        elapsed = time.monotonic() - started
    # --timeout 1.5 plus start-up, with room for a loaded machine; every call takes 1 s.
    assert status == 2 and elapsed < 7
    results = json.loads(out)["results"]
    assert any(r["id"] == "sqs_broker.E017" and "1.5 s" in r["message"] for r in results)


@pytest.mark.parametrize("timeout", ["0", "1e-300", "inf", "3601"])
def test_timeout__from_a_tenth_of_a_second_to_an_hour(timeout: str) -> None:
    """--timeout out of 0.1 to 3600 s: a usage error (64) naming the option, not exit 2."""
    with pytest.raises(CommandError) as refused:
        call_command("sqs_check", "--timeout", timeout, stdout=StringIO())
    assert str(refused.value) == (
        f"Error: argument --timeout: must be a number of seconds from 0.1 to 3600; got {timeout}"
    )
    assert refused.value.returncode == 64


def test_fail_level__unknown_is_a_usage_error() -> None:
    """A --fail-level argparse does not know: 64, which a cron job cannot read as exit 2."""
    with pytest.raises(CommandError, match="--fail-level: invalid choice") as refused:
        call_command("sqs_check", "--fail-level", "info", stdout=StringIO())
    assert refused.value.returncode == 64


def test_text__levels_hints_and_summary() -> None:
    """Text output: one line per finding with its id and queue, its hint, then counts."""
    app = make_app(base_env(**QUIET))
    app.conf.task_default_queue = "jobs.fifo"
    out, status = run("--offline", app=app)
    assert status == 0
    assert "INFO    sqs_broker.I004 [jobs.fifo]: FIFO queue:" in out
    assert "        Hint: Pass MessageGroupId" in out
    assert out.rstrip().endswith("Errors: 0, warnings: 0, information: 1.")


def test_colour__only_when_forced_or_on_a_terminal() -> None:
    """No escape codes when not on a terminal; --force-color adds them, --no-color never."""
    app = make_app(base_env(SQS_POLLING_INTERVAL="0"))
    plain = StringIO()
    call_command("sqs_check", "--offline", app=app, stdout=plain)
    assert "\x1b[" not in plain.getvalue()
    forced = StringIO()
    call_command("sqs_check", "--offline", "--force-color", app=app, stdout=forced)
    assert "\x1b[" in forced.getvalue()


@pytest.mark.parametrize(
    ("spelling", "error"), [("WARNING", "ERROR"), ("Warning", "Error"), ("warning", "error")]
)
def test_fail_level__django_spellings(spelling: str, error: str) -> None:
    """--fail-level takes Django check's upper-case spellings too, in any case."""
    app = make_app(base_env(SQS_POLLING_INTERVAL="0", SQS_VISIBILITY_LEASE="0"))  # W005 remains
    out, status = run("--offline", "--fail-level", spelling, app=app)
    assert status == 1 and "sqs_broker.W005" in out
    assert run("--offline", "--fail-level", error, app=app)[1] == 0


def test_silenced__left_out_as_django_check_does() -> None:
    """An id in SILENCED_SYSTEM_CHECKS neither prints nor fails, unless --include-silenced."""
    app = make_app(base_env(**QUIET))
    app.conf.result_backend = "rpc://"
    with override_settings(SILENCED_SYSTEM_CHECKS=["sqs_broker.E007"]):
        out, status = run("--json", "--offline", app=app)
        assert status == 0 and "sqs_broker.E007" not in out
        out, status = run("--json", "--offline", "--include-silenced", app=app)
        assert status == 1 and "sqs_broker.E007" in out


def test_help__every_option_states_its_default() -> None:
    """--json, --offline and --fail-level each say their default."""
    parser = Command().create_parser("manage.py", "sqs_check")
    options = ("json", "offline", "fail_level", "include_silenced", "window")
    ours = [a for a in parser._actions if a.dest in options]
    assert len(ours) == 5
    assert all("Default" in action.help for action in ours)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_python("manage.py", "sqs_check", *args, env=base_env(**env))


def test_command_line__runs_and_reports_e001_without_the_secret() -> None:
    """With DEBUG and keys in the URL it still runs, exits 1 with E001, never shows the secret."""
    result = manage("--offline", **UNSAFE)
    assert result.returncode == 1, result.stderr
    assert "sqs_broker.E001" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert "\x1b[" not in result.stdout


def test_command_line__json_on_stdout_and_exit_2_when_unreachable() -> None:
    """The real command line: stdout is pure JSON, and an unreachable endpoint exits 2."""
    result = manage("--json", SQS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", **UNSAFE)
    assert result.returncode == 2, result.stderr
    data = json.loads(result.stdout)
    assert {"sqs_broker.E001", "sqs_broker.E017"} <= {r["id"] for r in data["results"]}
    assert SECRET not in result.stdout + result.stderr


@override_settings(DEBUG=True)
def test_secret__never_printed_when_online_fails() -> None:
    """Keys in the URL of an unreachable endpoint: neither text nor JSON shows the secret."""
    env = base_env(SQS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", **UNSAFE)
    app = make_app(env)
    for args in (("--json",), ()):
        out, status = run(*args, app=app)
        assert status == 2 and SECRET not in out and "sqs_broker.E001" in out


# --- measured causes: W030-W032 from the workers' telemetry ----------------------------

NOT_JUDGED = "Measured causes (W030-W032) not judged"


def _slow_task_measured(queue: str, **figures: Any) -> None:
    """Telemetry of the staged incident: 6.03 s runs, 9 of 20 receives redelivered, no failure."""
    from datetime import UTC, datetime

    from sqs_broker.models import TaskCounter
    from sqs_broker.telemetry.base import minute_of

    counts = {"received": 20, "redelivered": 9, "succeeded": 11, "runtime_max": 6.03}
    counts.update(figures)
    TaskCounter.objects.create(
        task="project.demo.tasks.slow",
        queue=queue,
        minute=minute_of(datetime.now(UTC)),
        runtime_sum=11 * 5.5,
        runtime_count=11,
        **counts,
    )


@pytest.mark.django_db
def test_measured__causes_from_telemetry_are_reported(sqs: Any, unique: str) -> None:
    """A 6.03 s task on a 5 s queue, redelivered 45 %: W030 and W031 with their fixes."""
    url = sqs.create_queue(QueueName=f"{unique}-celery", Attributes={"VisibilityTimeout": "5"})[
        "QueueUrl"
    ]
    _slow_task_measured(f"{unique}-celery")
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_LEASE="0", **QUIET)
    out, status = run(app=make_app(env))
    assert status == 0, out  # warnings: below the default --fail-level
    assert f"sqs_broker.W030 [{unique}-celery]: Task project.demo.tasks.slow ran up to 6.03 s" in (
        out
    ), out
    assert f"--queue-url {url} --attributes VisibilityTimeout=13" in out
    assert f"sqs_broker.W031 [{unique}-celery]" in out and "(9 of 20)" in out
    assert NOT_JUDGED not in out
    out, status = run("--json", "--fail-level", "warning", app=make_app(env))
    ids = {r["id"] for r in json.loads(out)["results"]}
    assert status == 1 and {"sqs_broker.W030", "sqs_broker.W031"} <= ids


@pytest.mark.django_db
def test_measured__outside_the_window_or_under_a_lease_nothing(sqs: Any, unique: str) -> None:
    """Telemetry older than --window says nothing; a visibility lease keeps W030 quiet."""
    from datetime import UTC, datetime, timedelta

    from sqs_broker.models import TaskCounter

    sqs.create_queue(QueueName=f"{unique}-celery", Attributes={"VisibilityTimeout": "5"})
    _slow_task_measured(f"{unique}-celery")
    leased = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_LEASE="20", **QUIET)
    out, _status = run(app=make_app(leased))
    assert "sqs_broker.W030" not in out and "sqs_broker.W031" in out, out
    TaskCounter.objects.update(minute=datetime.now(UTC) - timedelta(minutes=30))
    env = base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_VISIBILITY_LEASE="0", **QUIET)
    out, _status = run(app=make_app(env))
    assert (
        "sqs_broker.W03" not in out and f"{NOT_JUDGED}: no task telemetry in the last 300 s" in out
    )
    out, _status = run("--window", "3600", app=make_app(env))
    assert "sqs_broker.W030" in out and NOT_JUDGED not in out, out


@pytest.mark.django_db
def test_measured__no_telemetry_is_one_line_in_text_none_in_json(sqs: Any, unique: str) -> None:
    """Without telemetry the text says once that nothing measured was judged; JSON keeps its
    shape and the exit status is unchanged."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", **QUIET))
    out, status = run(app=app)
    assert status == 0
    assert out.count(NOT_JUDGED) == 1
    assert "SQS_BROKER_TELEMETRY = True" in out
    out, status = run("--json", app=app)
    assert status == 0 and set(json.loads(out)) == {"ok", "results"} and NOT_JUDGED not in out
    out, status = run("--offline", app=app)
    assert status == 0 and NOT_JUDGED not in out


@pytest.mark.usefixtures("sqs_endpoint")
def test_measured__unreadable_telemetry_says_why(unique: str) -> None:
    """Telemetry that cannot be read (no database here) is named in the one line, not a crash."""
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", **QUIET))
    out, status = run(app=app)
    assert status == 0
    assert f"{NOT_JUDGED}: Telemetry could not be read:" in out, out


@pytest.mark.parametrize(
    ("window", "says"),
    [("60", "invalid choice: 60 (choose from 300, 3600, 86400)"), ("day", "invalid int value")],
)
def test_window__one_of_the_dashboards_windows(window: str, says: str) -> None:
    """--window other than 300, 3600 or 86400: a usage error (64) naming the option."""
    with pytest.raises(CommandError) as refused:
        call_command("sqs_check", "--offline", "--window", window, stdout=StringIO())
    assert f"argument --window: {says}" in str(refused.value)
    assert refused.value.returncode == 64
