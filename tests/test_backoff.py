"""Backoff: the schedule kombu applies, moto's visibility handling, and the policy in action."""

from __future__ import annotations

import json
import time
from itertools import pairwise
from pathlib import Path

import pytest

from sqs_broker import backoff, stats
from sqs_broker.models import TaskCounter
from tests.support.env import base_env, make_app

POLICY = {1: 1, 2: 2, 3: 4}
#: Short polling, every 0.1 s. During a long poll moto notices a message whose
#: visibility timeout ended only once a second, and not at the deadline (AWS returns
#: it at once), so with long polling a redelivery on moto is up to 1 s late.
WAIT_TIME_SECONDS = 0
POLLING_INTERVAL = 0.1
#: How late a redelivery may come: one polling interval plus the worker's overhead.
LATE = POLLING_INTERVAL + 0.7
PROBE = "project.demo.tasks.backoff_probe"


# --- schedule ---------------------------------------------------------------------


def test_schedule__wait_before_attempt_n_plus_1_is_policy_n() -> None:
    """{1: 10, 2: 20}: attempt 2 waits 10 s, attempt 3 waits 20 s (30 s after the first)."""
    assert backoff.schedule({1: 10, 2: 20}) == [
        backoff.Step(attempt=2, delay=10, cumulative=10),
        backoff.Step(attempt=3, delay=20, cumulative=30),
    ]


def test_schedule__keys_sorted_numerically() -> None:
    """Keys in any order: 10 sorts after 2, and the cumulative times add up in that order."""
    assert backoff.as_rows({10: 5, 2: 3, 1: 1}) == [
        {"attempt": 2, "delay": 1, "cumulative": 1},
        {"attempt": 3, "delay": 3, "cumulative": 4},
        {"attempt": 11, "delay": 5, "cumulative": 9},
    ]


def test_schedule__string_keys_never_apply() -> None:
    """kombu looks policies up by the integer receive count, so "1" is never found."""
    assert backoff.as_rows({"1": 10, 2: 20}) == [{"attempt": 3, "delay": 20, "cumulative": 20}]


def test_as_rows__no_policy_is_no_rows() -> None:
    """A queue without a policy shows an empty table, not an error."""
    assert backoff.as_rows(None) == []
    assert backoff.as_rows({}) == []


# --- what moto does with visibility ---------------------------------------------------


def _receive(sqs, url: str, wait: int = 0) -> list[dict]:
    return sqs.receive_message(
        QueueUrl=url,
        WaitTimeSeconds=wait,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    ).get("Messages", [])


def test_moto__honours_change_message_visibility_and_counts_receives(sqs, unique) -> None:
    """ChangeMessageVisibility hides a message for that long; each receive adds one."""
    url = sqs.create_queue(QueueName=f"{unique}-vis", Attributes={"VisibilityTimeout": "30"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    (first,) = _receive(sqs, url)
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"

    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=2
    )
    changed = time.monotonic()
    seen: list[dict] = []
    while not seen and time.monotonic() - changed < 5:
        seen = _receive(sqs, url)
        if not seen:
            time.sleep(0.05)
    reappeared = time.monotonic() - changed
    assert 1.9 <= reappeared <= 2.5, reappeared
    assert seen[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    # Not changed: the queue's 30 s applies, so it stays hidden.
    assert _receive(sqs, url) == []


# --- the policy in action ---------------------------------------------------------


def _read(path: Path) -> list[tuple[float, str]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(float(t), count) for t, count in (line.split() for line in lines)]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_backoff__redeliveries_follow_the_policy_as_kombu_applies_it(
    start_worker, sqs, unique, tmp_path
) -> None:
    """A failing backoff task is redelivered 1, 2 and 4 s after each failure, then not soon.

    The same schedule is what the dashboard shows, and telemetry counts the
    three redeliveries.
    """
    name = f"{unique}-backoff"
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "30",
            "ReceiveMessageWaitTimeSeconds": str(WAIT_TIME_SECONDS),
        },
    )["QueueUrl"]
    predefined = {name: {"url": url, "backoff_policy": POLICY, "backoff_tasks": [PROBE]}}
    # No prefix: kombu applies backoff policies to predefined queues only.
    env = base_env(
        SQS_PREDEFINED_QUEUES=json.dumps(predefined),
        SQS_WAIT_TIME_SECONDS=str(WAIT_TIME_SECONDS),
        SQS_POLLING_INTERVAL=str(POLLING_INTERVAL),
        SQS_BROKER_TELEMETRY="true",
        SQS_BROKER_TELEMETRY_INTERVAL="0.5",
    )
    # prefork: the task and its receive count travel to a child; the reject comes back.
    start_worker(env, queues=name, pool="prefork", extra=("--concurrency=1",))
    journal = tmp_path / "deliveries.txt"
    app = make_app(env)
    app.send_task(PROBE, args=(str(journal),), queue=name)

    deadline = time.monotonic() + 45
    while len(_read(journal)) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.5)  # past the last key the queue's 30 s applies: no fifth delivery soon
    deliveries = _read(journal)
    assert [count for _t, count in deliveries] == ["1", "2", "3", "4"], deliveries

    times = [t for t, _count in deliveries]
    print("gaps between deliveries (s):", [round(b - a, 2) for a, b in pairwise(times)])
    rows = backoff.as_rows(POLICY)
    assert [r["attempt"] for r in rows] == [2, 3, 4]
    for row in rows:
        gap = times[row["attempt"] - 1] - times[row["attempt"] - 2]
        since_first = times[row["attempt"] - 1] - times[0]
        # Never early; late by at most LATE per step (see there why).
        assert row["delay"] - 0.2 <= gap <= row["delay"] + LATE, (row, gap)
        latest = row["cumulative"] + LATE * (row["attempt"] - 1)
        assert row["cumulative"] - 0.2 <= since_first <= latest, (row, since_first)

    # The dashboard's backoff table for this queue states the same schedule.
    (queue,) = [q for q in stats.gather(app, online=False)["queues"] if q["name"] == name]
    assert queue["backoff_policy"] == rows
    assert queue["backoff_tasks"] == [PROBE]

    # Telemetry counted four receives of which three were redeliveries, all failed.
    deadline = time.monotonic() + 10
    totals = {}
    while time.monotonic() < deadline:
        counters = TaskCounter.objects.filter(task=PROBE, queue=name)
        totals = {
            key: sum(getattr(c, key) for c in counters)
            for key in ("received", "failed", "redelivered", "succeeded")
        }
        if totals["received"] == 4 and totals["failed"] == 4:
            break
        time.sleep(0.2)
    assert totals == {"received": 4, "failed": 4, "redelivered": 3, "succeeded": 0}
