"""Tests of sqs_broker.sqs: inventory and attribute fetch, on moto."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from sqs_broker import sqs as sqs_module
from tests.conftest import base_env, make_app, run_python
from tests.proxy import Proxy


def _app(unique: str):
    return make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))


def _state(name: str, app) -> sqs_module.QueueState:
    state = sqs_module.fetch_one(sqs_module.QueueRef(name, "declared"), app)
    assert state.error is None, state.error
    return state


def _drain(sqs, url: str) -> list[dict]:
    found = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return found
        found += got


def test_inventory__prefix_and_declared(sqs, unique):
    """With a prefix, declared queues and queues found under it are both listed."""
    sqs.create_queue(QueueName=f"{unique}-extra")
    names = {ref.name: ref.source for ref in sqs_module.inventory(_app(unique))}
    assert names == {f"{unique}-celery": "declared", f"{unique}-extra": "prefix"}


def test_inventory__prefix_named_as_kombu_names_it(sqs, unique):
    """A prefix with a dot lists queues under the name kombu gives them ("app." -> "app-")."""
    sqs.create_queue(QueueName=f"{unique}-extra")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}."))
    names = {ref.name: ref.source for ref in sqs_module.inventory(app)}
    assert names == {f"{unique}-celery": "declared", f"{unique}-extra": "prefix"}


def test_fetch__one_assume_role_for_every_predefined_queue(sqs, sqs_endpoint, unique):
    """Ten predefined queues behind an STS role, fetched concurrently: AssumeRole once."""
    names = [f"{unique}-{n}" for n in range(10)]
    queues = {name: {"url": sqs.create_queue(QueueName=name)["QueueUrl"]} for name in names}
    with Proxy.to(sqs_endpoint) as proxy:
        app = make_app(
            base_env(
                SQS_ENDPOINT_URL=proxy.endpoint_url,
                SQS_PREDEFINED_QUEUES=json.dumps(queues),
                SQS_STS_ROLE_ARN="arn:aws:iam::123456789012:role/celery",
            )
        )
        sqs_module.clear_caches()
        states = sqs_module.fetch(sqs_module.inventory(app), app)
        calls = proxy.reset_counts()
    assert [s.error for s in states] == [None] * 10
    assert calls["AssumeRole"] == 1, calls
    assert calls["GetQueueAttributes"] == 10, calls


def test_fetch__cached_for_ttl(sqs, unique, settings):
    """A second fetch within the TTL returns the same answer without asking SQS."""
    settings.SQS_BROKER_CACHE_TTL = 60
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    app = _app(unique)
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
    state = _state(f"{unique}-celery", _app(unique))
    assert json.loads(state.attributes["RedrivePolicy"])["deadLetterTargetArn"] == arn


def test_fetch__concurrent_misses_share_one_call_per_queue(sqs, sqs_endpoint, unique, settings):
    """Two callers that miss together (as two processes would): one asks, the other waits."""
    settings.SQS_BROKER_CACHE_TTL = 60
    for n in range(3):
        sqs.create_queue(QueueName=f"{unique}-q{n}")
    with Proxy.to(sqs_endpoint, delay=0.3) as proxy:
        app = make_app(base_env(SQS_ENDPOINT_URL=proxy.endpoint_url))
        refs = [sqs_module.QueueRef(f"{unique}-q{n}", "declared") for n in range(3)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(lambda _: sqs_module.fetch(refs, app), range(2)))
        calls = proxy.reset_counts()
    assert [[s.error for s in states] for states in answers] == [[None] * 3] * 2
    assert calls["GetQueueAttributes"] == 3, calls


def test_fetch__shared_between_processes(sqs, sqs_endpoint, unique, tmp_path):
    """Two processes on one shared cache: the second reads the first's answers; one SQS pass."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    sqs.create_queue(QueueName=f"{unique}-other")
    code = (
        "import os, django; django.setup()\n"
        "from sqs_broker import stats\n"
        "from tests.conftest import make_app\n"
        "data = stats.gather(make_app(dict(os.environ)), online=False)\n"
        "print(sorted(q['name'] for q in data['queues'] if q['error'] is None))\n"
    )
    with Proxy.to(sqs_endpoint) as proxy:
        env = base_env(
            # tests.settings points SQS_ENDPOINT_URL at this address.
            SQS_BROKER_TEST_ENDPOINT=proxy.endpoint_url,
            SQS_QUEUE_NAME_PREFIX=f"{unique}-",
            SQS_BROKER_CACHE_TTL="60",
            CACHE_URL=f"filecache://{tmp_path}",
        )
        outputs = [run_python("-c", code, env=env, settings="tests.settings") for _ in range(2)]
        calls = proxy.reset_counts()
    expected = str([f"{unique}-celery", f"{unique}-other"])
    assert [r.stdout.strip().splitlines()[-1] for r in outputs] == [expected] * 2, outputs[1].stderr
    assert calls["GetQueueAttributes"] == 2, calls
    assert calls["ListQueues"] == 1, calls
