"""Tests of sqs_broker.sqs: inventory and attribute fetch, on moto."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import sqs_broker.cache
from sqs_broker import sqs as sqs_module
from sqs_broker.topology import Topology
from tests.support.env import base_env, make_app, prefixed_app, run_python
from tests.support.proxy import Proxy
from tests.support.queues import queue_state


def test_inventory__prefix_and_declared(sqs, unique):
    """With a prefix, declared queues and queues found under it are both listed."""
    sqs.create_queue(QueueName=f"{unique}-extra")
    names = {
        ref.name: ref.source for ref in sqs_module.inventory(Topology.of(prefixed_app(unique)))
    }
    assert names == {f"{unique}-celery": "declared", f"{unique}-extra": "prefix"}


def test_inventory__prefix_named_as_kombu_names_it(sqs, unique):
    """A prefix with a dot lists queues under the name kombu gives them ("app." -> "app-")."""
    sqs.create_queue(QueueName=f"{unique}-extra")
    app = Topology.of(make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}.")))
    names = {ref.name: ref.source for ref in sqs_module.inventory(app)}
    assert names == {f"{unique}-celery": "declared", f"{unique}-extra": "prefix"}


def test_fetch__one_assume_role_for_every_predefined_queue(sqs, sqs_endpoint, unique):
    """Ten predefined queues behind an STS role, fetched concurrently: AssumeRole once."""
    names = [f"{unique}-{n}" for n in range(10)]
    queues = {name: {"url": sqs.create_queue(QueueName=name)["QueueUrl"]} for name in names}
    with Proxy.to(sqs_endpoint) as proxy:
        app = Topology.of(
            make_app(
                base_env(
                    SQS_ENDPOINT_URL=proxy.endpoint_url,
                    SQS_PREDEFINED_QUEUES=json.dumps(queues),
                    SQS_STS_ROLE_ARN="arn:aws:iam::123456789012:role/celery",
                )
            )
        )
        sqs_broker.cache.reset()
        states = sqs_module.fetch(sqs_module.inventory(app), app)
        calls = proxy.reset_counts()
    assert [s.error for s in states] == [None] * 10
    assert calls["AssumeRole"] == 1, calls
    assert calls["GetQueueAttributes"] == 10, calls


def test_fetch__cached_for_ttl(sqs, unique, settings):
    """A second fetch within the TTL returns the same answer without asking SQS."""
    settings.SQS_BROKER_CACHE_TTL = 60
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    app = Topology.of(prefixed_app(unique))
    refs = sqs_module.inventory(app, discover=False)
    (first,) = sqs_module.fetch(refs, app)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    (second,) = sqs_module.fetch(refs, app)
    assert second == first  # the cached answer (a copy: the cache pickles)
    sqs_module.forget(f"{unique}-celery", app)
    (third,) = sqs_module.fetch(refs, app)
    assert third.int("ApproximateNumberOfMessages") == 1


def test_fetch__redrive_policy_attribute(sqs, unique):
    """The RedrivePolicy is fetched with the other attributes (the dashboard reads its DLQ)."""
    dlq = sqs.create_queue(QueueName=f"{unique}-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sqs.create_queue(
        QueueName=f"{unique}-celery",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
        },
    )
    state = queue_state(f"{unique}-celery", Topology.of(prefixed_app(unique)))
    assert json.loads(state.attributes["RedrivePolicy"])["deadLetterTargetArn"] == arn


def test_fetch__concurrent_misses_share_one_call_per_queue(sqs, sqs_endpoint, unique, settings):
    """Two callers that miss together (as two processes would): one asks, the other waits."""
    settings.SQS_BROKER_CACHE_TTL = 60
    for n in range(3):
        sqs.create_queue(QueueName=f"{unique}-q{n}")
    with Proxy.to(sqs_endpoint, delay=0.3) as proxy:
        app = Topology.of(make_app(base_env(SQS_ENDPOINT_URL=proxy.endpoint_url)))
        refs = [sqs_module.QueueRef(f"{unique}-q{n}", "declared") for n in range(3)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(lambda _: sqs_module.fetch(refs, app), range(2)))
        calls = proxy.reset_counts()
    assert [[s.error for s in states] for states in answers] == [[None] * 3] * 2
    assert calls["GetQueueAttributes"] == 3, calls


def test_fetch__one_pass_answers_expire_together(sqs, sqs_endpoint, unique, settings):
    """Answers of one pass carry the pass's start: none outlives another, none is stamped late."""
    settings.SQS_BROKER_CACHE_TTL = 60
    settings.SQS_BROKER_MAX_WORKERS = 1  # one after another: stamped one by one they would differ
    for n in range(3):
        sqs.create_queue(QueueName=f"{unique}-q{n}")
    with Proxy.to(sqs_endpoint, delay=0.1) as proxy:
        app = Topology.of(make_app(base_env(SQS_ENDPOINT_URL=proxy.endpoint_url)))
        refs = [sqs_module.QueueRef(f"{unique}-q{n}", "declared") for n in range(3)]
        before = time.time()
        states = sqs_module.fetch(refs, app)
    assert [s.error for s in states] == [None] * 3
    assert len({s.fetched_at for s in states}) == 1
    assert before <= states[0].fetched_at < before + 0.1


def test_fetch__shared_between_processes(sqs, sqs_endpoint, unique, tmp_path):
    """Two processes on one shared cache: the second reads the first's answers; one SQS pass."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    sqs.create_queue(QueueName=f"{unique}-other")
    code = (
        "import os, django; django.setup()\n"
        # No settings module reads SQS_BROKER_CACHE_TTL from the environment; at its 5 s
        # default the second process misses the first's answers whenever starting it takes
        # longer than that (a loaded machine).
        "from django.conf import settings; settings.SQS_BROKER_CACHE_TTL = 60\n"
        "from sqs_broker import stats\n"
        "from tests.support.env import make_app\n"
        "data = stats.gather(make_app(dict(os.environ)), online=False)\n"
        "print(sorted(q['name'] for q in data['queues'] if q['error'] is None))\n"
    )
    with Proxy.to(sqs_endpoint) as proxy:
        env = base_env(
            # tests.settings points SQS_ENDPOINT_URL at this address.
            SQS_BROKER_TEST_ENDPOINT=proxy.endpoint_url,
            SQS_QUEUE_NAME_PREFIX=f"{unique}-",
            CACHE_URL=f"filecache://{tmp_path}",
        )
        outputs = [run_python("-c", code, env=env, settings="tests.settings") for _ in range(2)]
        calls = proxy.reset_counts()
    expected = str([f"{unique}-celery", f"{unique}-other"])
    assert [r.stdout.strip().splitlines()[-1] for r in outputs] == [expected] * 2, outputs[1].stderr
    assert calls["GetQueueAttributes"] == 2, calls
    assert calls["ListQueues"] == 1, calls


# --- oldest-message age from CloudWatch ---------------------------------------------


def _put_age(endpoint: str, queue: str, seconds: float, minutes_ago: float = 2) -> None:
    """Store an ApproximateAgeOfOldestMessage datapoint in the local CloudWatch (moto)."""
    from datetime import UTC, datetime, timedelta

    import boto3

    watch = boto3.client("cloudwatch", endpoint_url=endpoint, region_name="us-east-1")
    watch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": queue}],
                "Value": seconds,
                "Timestamp": datetime.now(UTC) - timedelta(minutes=minutes_ago),
            }
        ],
    )


def test_age_queries__one_per_queue():
    """Each queue gets a Maximum of ApproximateAgeOfOldestMessage by QueueName, ids q0, q1..."""
    found = sqs_module.age_queries(["a", "b.fifo"])
    assert [q["Id"] for q in found] == ["q0", "q1"]
    metric = found[1]["MetricStat"]["Metric"]
    assert metric["Namespace"] == "AWS/SQS"
    assert metric["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert metric["Dimensions"] == [{"Name": "QueueName", "Value": "b.fifo"}]
    assert found[1]["MetricStat"]["Stat"] == "Maximum"


def test_read_ages__latest_point_and_missing_data():
    """The latest datapoint wins; a queue without datapoints and unknown ids are left out."""
    results = [
        {"Id": "q0", "Timestamps": [2, 3, 1], "Values": [20.0, 30.0, 10.0]},
        {"Id": "q1", "Timestamps": [], "Values": []},
        {"Id": "q7", "Timestamps": [1], "Values": [1.0]},
    ]
    assert sqs_module.read_ages(["a", "b"], results) == {"a": 30.0}


def test_on_aws__endpoints():
    """No endpoint or an amazonaws.com host is AWS; a local endpoint is not."""
    aws = Topology.of(make_app(base_env(SQS_ENDPOINT_URL="https://sqs.eu-west-1.amazonaws.com")))
    assert sqs_module.on_aws(aws)
    assert not sqs_module.on_aws(Topology.of(make_app(base_env())))


def test_oldest_ages__one_batched_call_cached(sqs_endpoint, unique, settings):
    """One GetMetricData call reads every queue; the answer is reused within the TTL."""
    _put_age(sqs_endpoint, f"{unique}-a", 321.0)
    settings.SQS_BROKER_CLOUDWATCH = True
    with Proxy.to(sqs_endpoint) as proxy:
        app = Topology.of(make_app(base_env(SQS_ENDPOINT_URL=proxy.endpoint_url)))
        names = [f"{unique}-a", f"{unique}-b", f"{unique}-c"]
        found = sqs_module.oldest_ages(names, app)
        again = sqs_module.oldest_ages(names, app)
        counts = proxy.reset_counts()
    assert found.error is None
    assert found.seconds == {f"{unique}-a": 321.0}
    assert again is found
    assert counts["GetMetricData"] == 1, counts


def test_oldest_ages__denied_reported(sqs_endpoint, unique, settings):
    """CloudWatch refusing GetMetricData comes back as an error to show, not an exception."""
    settings.SQS_BROKER_CLOUDWATCH = True
    with Proxy.to(sqs_endpoint) as proxy:
        proxy.deny_matching = b"GetMetricData"
        app = Topology.of(make_app(base_env(SQS_ENDPOINT_URL=proxy.endpoint_url)))
        found = sqs_module.oldest_ages([f"{unique}-a"], app)
    assert found.seconds == {}
    assert found.error is not None
    assert "AccessDenied" in found.error or "403" in found.error


def test_error_text__a_web_page_is_named_not_shown():
    """An HTML error page (moto's 500 for a call it lacks) becomes one line with the status."""
    from botocore.exceptions import ClientError

    page = "<!DOCTYPE HTML PUBLIC><html><title>500 Internal Server Error</title>" + "x" * 3000
    exc = ClientError(
        {"Error": {"Code": "500", "Message": page}, "ResponseMetadata": {"HTTPStatusCode": 500}},
        "ListMessageMoveTasks",
    )
    text, code = sqs_module.error_text(exc)
    assert text == (
        "500 on ListMessageMoveTasks: the endpoint answered HTTP 500 with a web page, not an "
        "SQS error (it may not support ListMessageMoveTasks)"
    )
    long = ClientError({"Error": {"Code": "Throttling", "Message": "y" * 2000}}, "SendMessage")
    assert len(sqs_module.error_text(long)[0]) < 600
