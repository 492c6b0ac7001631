"""Tests of ``manage.py sqs_alerts``'s command line: ranges, usage errors, Django's options.

The rules, the live check and the recipes themselves are tested in tests/test_alerts.py.
"""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from sqs_broker.localsqs import free_port
from sqs_broker.management.commands.sqs_alerts import Command
from tests.support import ROOT
from tests.support.env import base_env, make_app


def _refused(*args: str) -> CommandError:
    with pytest.raises(CommandError) as refused:
        call_command("sqs_alerts", *args, stdout=io.StringIO(), stderr=io.StringIO())
    return refused.value


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--min-replicas", "5", "--max-replicas", "1"],
            "--min-replicas (5) must not be above --max-replicas (1).",
        ),
        (["--min-replicas", "-1"], "--min-replicas must be from 0 to 2147483647; got -1."),
        (["--max-replicas", "0"], "--max-replicas must be from 1 to 2147483647; got 0."),
        (
            ["--min-replicas", "-2", "--max-replicas", "-1"],
            "--min-replicas must be from 0 to 2147483647; got -2; "
            "--max-replicas must be from 1 to 2147483647; got -1.",
        ),
        (["--target", "0"], "--target must be a number above 0 and at most 1000000; got 0.0."),
        (["--target", "inf"], "--target must be a number above 0 and at most 1000000; got inf."),
        (["--target", "nan"], "--target must be a number above 0 and at most 1000000; got nan."),
    ],
)
def test_sqs_alerts_keda__bounds_checked_before_anything_is_read(args, message):
    """Replica bounds out of order or negative, or a target out of range: exit 64, no YAML."""
    refused = _refused("keda", *args)
    assert (str(refused), refused.returncode) == (message, 64)


def test_sqs_alerts_ecs__target_checked():
    """ecs takes the same --target range."""
    refused = _refused("ecs", "--cluster", "c", "--service", "s", "--target", "-3")
    assert (str(refused), refused.returncode) == (
        "--target must be a number above 0 and at most 1000000; got -3.0.",
        64,
    )


@pytest.mark.parametrize("action", ["rules", "check"])
def test_sqs_alerts__threshold_out_of_range_is_a_usage_error(action):
    """A threshold out of range is a usage error (64), not "could not check" (2)."""
    refused = _refused(action, "--window", "5")
    assert (str(refused), refused.returncode) == (
        "--window must be from 60 to 2592000 seconds (30 days).",
        64,
    )


@pytest.mark.parametrize(
    ("argv", "verbosity"),
    [
        (["check"], 1),
        (["check", "-v", "2"], 2),
        (["-v", "3", "check"], 3),
        (["check", "--verbosity", "0", "--json"], 0),
        (["rules", "-v", "2", "--no-color", "--traceback"], 2),
        (["keda", "--max-replicas", "3", "-v", "2"], 2),
        (["check", "--skip-checks", "--settings", "project.settings", "-v", "3"], 3),
    ],
)
def test_sqs_alerts__djangos_options_after_the_action(argv, verbosity):
    """-v, --no-color, --traceback, --skip-checks... work after the action as before it."""
    options = Command().create_parser("manage.py", "sqs_alerts").parse_args(argv)
    assert options.verbosity == verbosity
    assert options.skip_checks is ("--skip-checks" in argv)


def test_sqs_alerts__unknown_option_is_a_usage_error():
    """An option no action knows: exit 64 through call_command too."""
    refused = _refused("check", "--bogus")
    assert (str(refused), refused.returncode) == ("Error: unrecognized arguments: --bogus", 64)


@pytest.mark.django_db
def test_sqs_alerts_keda__replica_bounds_in_the_scaled_object(sqs, unique):
    """Bounds in order (0 allowed for scale to zero) reach the ScaledObject as given."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    out = io.StringIO()
    with override_settings(SQS_BROKER_CELERY_APP=app):
        call_command("sqs_alerts", "keda", "--min-replicas", "0", "--max-replicas", "4", stdout=out)
    spec = yaml.safe_load(out.getvalue())["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 4)


def _shell(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = base_env(DJANGO_SETTINGS_MODULE="project.settings", DJANGO_SECRET_KEY="k" * 50, **env)
    return subprocess.run(
        [sys.executable, "manage.py", "sqs_alerts", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sqs_alerts_check__verbosity_after_the_action_from_a_shell(tmp_path):
    """``sqs_alerts check -v 2`` with SQS down: it checks, and exits 2 for "could not check"."""
    result = _shell(
        "check",
        "-v",
        "2",
        SQS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        SQS_BROKER_CONNECT_TIMEOUT="1",
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
    )
    assert result.returncode == 2, result.stderr
    assert "COULD NOT CHECK" in result.stdout
    assert "usage:" not in result.stderr


def test_sqs_alerts_keda__usage_error_from_a_shell_exits_64():
    """``keda --min-replicas 5 --max-replicas 1`` printed an invalid ScaledObject with exit 0."""
    result = _shell("keda", "--min-replicas", "5", "--max-replicas", "1")
    assert result.returncode == 64
    assert result.stdout == ""
    assert result.stderr == (
        "CommandError: --min-replicas (5) must not be above --max-replicas (1).\n"
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("sqs_endpoint")
def test_sqs_alerts_rules__output_that_cannot_be_written(tmp_path):
    """--output in a folder that does not exist: one line naming --output, exit 64."""
    target = tmp_path / "missing" / "rules.yml"
    refused = _refused("rules", "--output", str(target))
    assert (str(refused), refused.returncode) == (
        f"--output {target}: No such file or directory; nothing was written.",
        64,
    )
