"""Tests of sqs_broker.alerts and ``manage.py sqs_alerts``: rules, the live check, recipes."""

from __future__ import annotations

import io
import json

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

import sqs_broker.cache
from sqs_broker import alerts
from sqs_broker.localsqs import free_port
from tests.support import promtool
from tests.support.env import base_env, make_app
from tests.support.queues import queue_with_dlq


def _queue(name, visible=0, dlq=None, age=None, error=None, url=None):
    return {
        "name": name,
        "url": url or f"https://sqs.eu-west-1.amazonaws.com/123456789012/{name}",
        "visible": visible,
        "in_flight": 0,
        "delayed": 0,
        "dlq": dlq,
        "error": error,
        "oldest_age": age,
        "oldest_age_source": "history" if age is not None else None,
    }


def _data(**extra):
    dlq = {"name": "app-dead", "visible": 0, "max_receive_count": 5, "error": None}
    data = {
        "queues": [
            _queue("app-celery", visible=3, dlq=dlq, age=30.0),
            _queue("app-reports.fifo", visible=0, age=0.0),
            _queue("app-dead", visible=0),
        ],
        "errors": [],
        "workers": [],
        "tasks": [],
        "unconsumed_queues": [],
    }
    data.update(extra)
    return data


def test_rules__promtool_accepts(tmp_path):
    """promtool check rules passes on the written rules, .fifo names and all."""
    path = tmp_path / "sqs_broker.rules.yml"
    path.write_text(alerts.to_yaml(alerts.rules(_data())))
    result = promtool.run("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_rules__worker_stalled_fires_in_promtool(tmp_path):
    """promtool test rules: a stalled worker fires SqsBrokerWorkerStalled at once; others not."""
    found = alerts.rules(_data())
    (rule,) = [r for r in found["groups"][0]["rules"] if r["alert"] == "SqsBrokerWorkerStalled"]
    (tmp_path / "sqs_broker.rules.yml").write_text(alerts.to_yaml(found))
    series = 'sqs_broker_worker_stalled{hostname="%s"}'
    expected = {
        "exp_labels": {"severity": "warning", "hostname": "w1@h"},
        "exp_annotations": {
            "summary": "Worker w1@h is not consuming",
            "description": rule["annotations"]["description"],
        },
    }
    case = {
        "interval": "1m",
        "input_series": [
            {"series": series % "w1@h", "values": "0 1 1"},
            {"series": series % "w2@h", "values": "0 0 0"},
        ],
        "alert_rule_test": [
            {"eval_time": "0m", "alertname": "SqsBrokerWorkerStalled", "exp_alerts": []},
            {"eval_time": "1m", "alertname": "SqsBrokerWorkerStalled", "exp_alerts": [expected]},
        ],
    }
    tests = {"rule_files": ["sqs_broker.rules.yml"], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "test.yml").write_text(alerts.to_yaml(tests))
    result = promtool.run("test", "rules", str(tmp_path / "test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules__yaml_round_trip_and_queues():
    """The YAML reads back as the rules; each alert names this deployment's queues."""
    found = alerts.rules(_data(), alerts.Thresholds(oldest_age=120, hold=60))
    assert yaml.safe_load(alerts.to_yaml(found)) == found
    by_name = {r["alert"]: r for r in found["groups"][0]["rules"]}
    assert 'queue=~"app-dead"' in by_name["SqsBrokerDeadLetterMessages"]["expr"]
    age = by_name["SqsBrokerOldestMessageAge"]
    assert 'queue=~"app-celery|app-reports\\\\.fifo"' in age["expr"]
    assert age["expr"].endswith("> 120") and age["for"] == "60s"
    for rule in by_name.values():
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule)


def test_thresholds__bad_values_named():
    """Out-of-range thresholds are refused with the option to fix."""
    with pytest.raises(ValueError, match="--failure-rate"):
        alerts.Thresholds(failure_rate=1.5)
    with pytest.raises(ValueError, match="--oldest-age"):
        alerts.Thresholds(oldest_age=0)
    # A rule that can never fire, or one Prometheus refuses, is not written.
    with pytest.raises(ValueError, match="--oldest-age"):
        alerts.Thresholds(oldest_age=float("inf"))
    with pytest.raises(ValueError, match="--window must") as too_long:
        alerts.Thresholds(window=999_999_999_999)
    assert "--for" not in str(too_long.value)  # only the option that is wrong is named
    with pytest.raises(ValueError, match="^--window must be from 60"):
        alerts.Thresholds(window=7)
    with pytest.raises(ValueError, match="^--for must"):
        alerts.Thresholds(hold=-1)


def test_evaluate__clear():
    """Nothing over a threshold and every queue answered: exit 0."""
    verdict = alerts.evaluate(_data())
    assert verdict.firing == [] and verdict.exit_code == 0 and verdict.status == "ok"


def test_evaluate__dead_letter_and_age_fire():
    """A message in the dead-letter queue and an old message fire; the DLQ's own age does not."""
    data = _data()
    data["queues"][0]["oldest_age"] = 900.0
    data["queues"][2]["visible"] = 2
    data["queues"][2]["oldest_age"] = 99999.0
    verdict = alerts.evaluate(data, alerts.Thresholds(oldest_age=600))
    fired = {(a.alert, a.subject) for a in verdict.firing}
    assert fired == {
        ("SqsBrokerDeadLetterMessages", "app-dead"),
        ("SqsBrokerOldestMessageAge", "app-celery"),
    }
    assert verdict.exit_code == 1


def test_evaluate__unknown_is_2_and_firing_wins():
    """A queue SQS did not answer makes exit 2, unless something fires (exit 1)."""
    data = _data()
    data["queues"][1]["error"] = "Timeout"
    assert alerts.evaluate(data).exit_code == 2
    data["queues"][0]["oldest_age"] = 10_000.0
    assert alerts.evaluate(data).exit_code == 1


def test_evaluate__telemetry_checks():
    """Lost workers, unconsumed queues and failure rates fire with telemetry; skipped without."""
    data = _data(
        workers=[
            {"hostname": "w1@h", "state": "lost", "seconds_since_seen": 95.0},
            {"hostname": "w2@h", "state": "alive", "seconds_since_seen": 1.0},
            {
                "hostname": "w3@h",
                "state": "stalled",
                "seconds_since_seen": 2.0,
                "seconds_since_progress": 41.5,
                "stall_after": 25.0,
                "stalled_queues": ["app-celery"],
            },
        ],
        unconsumed_queues=["app-celery"],
        tasks=[
            {"name": "t.flaky", "queue": "app-celery", "succeeded": 15, "failed": 5, "retried": 0},
            {"name": "t.rare", "queue": "app-celery", "succeeded": 1, "failed": 3, "retried": 0},
        ],
    )
    verdict = alerts.evaluate(data, alerts.Thresholds(failure_rate=0.2, min_finished=10))
    fired = {(a.alert, a.subject) for a in verdict.firing}
    assert fired == {
        ("SqsBrokerWorkerLost", "w1@h"),
        ("SqsBrokerWorkerStalled", "w3@h"),
        ("SqsBrokerQueueUnconsumed", "app-celery"),
        ("SqsBrokerTaskFailureRate", "t.flaky [app-celery]"),
    }
    stalled = next(a for a in verdict.firing if a.alert == "SqsBrokerWorkerStalled")
    assert (stalled.value, stalled.threshold) == (41.5, 25.0)
    assert stalled.message == (
        "Worker w3@h sends heartbeats but made no progress on app-celery for 41.5 s."
    )
    off = alerts.evaluate(data, telemetry=False)
    assert off.firing == [] and off.skipped and off.exit_code == 0


def test_keda__scaled_object():
    """The ScaledObject parses as YAML with one aws-sqs-queue trigger per work queue."""
    found = yaml.safe_load(alerts.to_yaml(alerts.keda(_data(), "workers", "eu-west-1", target=7.5)))
    assert found["apiVersion"] == "keda.sh/v1alpha1" and found["kind"] == "ScaledObject"
    assert found["spec"]["scaleTargetRef"]["name"] == "workers"
    triggers = found["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["aws-sqs-queue", "aws-sqs-queue"]
    meta = triggers[0]["metadata"]
    assert meta["queueURL"].endswith("/app-celery")
    assert meta["queueLength"] == "8" and meta["awsRegion"] == "eu-west-1"
    with pytest.raises(ValueError, match="app-nope"):
        alerts.keda(_data(), "workers", "eu-west-1", 5, only=["app-nope"])


def test_ecs__metric_math():
    """The target-tracking spec divides the queues' visible messages by running tasks."""
    found = alerts.ecs(_data(), "prod", "workers", target=20, only=["app-celery"])
    assert found["TargetValue"] == 20.0
    metrics = found["CustomizedMetricSpecification"]["Metrics"]
    returned = [m for m in metrics if m["ReturnData"]]
    assert len(returned) == 1 and returned[0]["Expression"] == "(m0) / tasks"
    ids = {m["Id"] for m in metrics}
    assert {"m0", "tasks"} <= ids
    queue = metrics[0]["MetricStat"]["Metric"]
    assert queue["Dimensions"] == [{"Name": "QueueName", "Value": "app-celery"}]


def _run(*args):
    out = io.StringIO()
    try:
        call_command("sqs_alerts", *args, stdout=out, stderr=io.StringIO())
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


@pytest.mark.django_db
def test_sqs_alerts_check__exit_codes(sqs, unique):
    """check exits 0 on a clean deployment, 1 with a dead letter, 2 when SQS is down."""
    url, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-dead")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_TELEMETRY=False):
        code, out = _run("check", "--json")
        assert code == 0, out
        assert json.loads(out)["status"] == "ok"
        sqs.send_message(QueueUrl=dlq, MessageBody="dead")

        sqs_broker.cache.reset()
        code, out = _run("check", "--json", "--dead-letter-messages", "0")
        verdict = json.loads(out)
        assert code == 1 and verdict["status"] == "firing"
        assert verdict["firing"][0]["subject"] == f"{unique}-dead"
    down = make_app(
        base_env(
            SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}"
        )
    )
    with override_settings(SQS_BROKER_CELERY_APP=down, SQS_BROKER_CONNECT_TIMEOUT=1):
        code, out = _run("check")
    assert code == 2 and "COULD NOT CHECK" in out


@pytest.mark.django_db
def test_sqs_alerts_rules__live_queues(sqs, unique, tmp_path):
    """rules names the live deployment's queues and writes --output."""
    queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-dead")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    target = tmp_path / "rules.yml"
    with override_settings(SQS_BROKER_CELERY_APP=app):
        code, _ = _run("rules", "--oldest-age", "90", "-o", str(target))
        assert code == 0
        with pytest.raises(CommandError, match="--failure-rate"):
            call_command("sqs_alerts", "rules", "--failure-rate", "2", stdout=io.StringIO())
    found = yaml.safe_load(target.read_text())
    exprs = " ".join(r["expr"] for r in found["groups"][0]["rules"])
    assert f"{unique}-celery" in exprs and f"{unique}-dead" in exprs
    stalled = next(r for r in found["groups"][0]["rules"] if r["alert"] == "SqsBrokerWorkerStalled")
    assert (stalled["expr"], stalled["for"]) == ("sqs_broker_worker_stalled == 1", "0s")


@pytest.mark.django_db
def test_sqs_alerts_keda__live_queue_url(sqs, unique):
    """keda fills in the queue's URL as SQS gives it; an unknown --queue is refused."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=app):
        code, out = _run("keda", "--target", "4", "--deployment", "w")
        with pytest.raises(CommandError, match="Not a queue"):
            call_command("sqs_alerts", "ecs", "--cluster", "c", "--service", "s", "--queue", "x")
    found = yaml.safe_load(out)
    assert found["spec"]["triggers"][0]["metadata"]["queueURL"] == url
