"""Tests of sqs_broker.history: queue samples, their pruning, history reads and age estimates."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from sqs_broker import cache, history, models
from sqs_broker.models import QueueSample


def _sample(queue: str, at: datetime, visible: int, in_flight: int = 0) -> QueueSample:
    return QueueSample(queue=queue, sampled_at=at, visible=visible, in_flight=in_flight, delayed=0)


@pytest.mark.django_db
def test_history__window_and_order(unique):
    """history() returns each queue's points of the last hours, oldest first."""
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    QueueSample.objects.bulk_create(
        _sample(f"{unique}-q", now - timedelta(minutes=m), v)
        for m, v in ((500, 9), (30, 2), (10, 3))
    )
    series = history.history([f"{unique}-q", f"{unique}-none"], hours=1, now=now)
    assert [s["visible"] for s in series[f"{unique}-q"]] == [2, 3]
    assert series[f"{unique}-none"] == []


@pytest.mark.django_db
def test_history__buckets_by_time_in_one_query(unique, django_assert_num_queries):
    """Many queues' samples come back grouped into time buckets by one query: peaks kept."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    names = [f"{unique}-{i}" for i in range(5)]
    QueueSample.objects.bulk_create(
        _sample(name, now - timedelta(seconds=20 * k + 5), visible=k % 7, in_flight=k)
        for name in names
        for k in range(180)  # an hour of samples every 20 s
    )
    with django_assert_num_queries(1):
        series = history.history(names, hours=1, now=now, points=12)
    for name in names:
        points = series[name]
        assert len(points) == 12  # 5-minute buckets
        assert [p["t"] for p in points] == sorted(p["t"] for p in points)
        assert all(p["t"].timestamp() % 300 == 0 for p in points)
        assert sum(p["samples"] for p in points) == 180
        # The newest bucket holds k = 0..14: the highest of each column, not the last value.
        assert (points[-1]["visible"], points[-1]["in_flight"]) == (6, 14)


@pytest.mark.django_db
def test_history__live_reads_shared_for_a_few_seconds(unique, django_assert_num_queries):
    """A reload within seconds reads the cached points: no query (each viewer, each process)."""
    QueueSample.objects.bulk_create([_sample(f"{unique}-q", datetime.now(UTC), 4)])
    with django_assert_num_queries(1):
        first = history.history([f"{unique}-q"])
    with django_assert_num_queries(0):
        assert history.history([f"{unique}-q"]) == first
    assert [p["visible"] for p in first[f"{unique}-q"]] == [4]


@pytest.mark.django_db
def test_prune__bounded_per_run(settings, monkeypatch, django_assert_max_num_queries):
    """prune() deletes at most its limit per run, in chunks; the next run takes the rest."""
    settings.SQS_BROKER_RETENTION_DAYS = 1
    now = datetime.now(UTC)
    QueueSample.objects.bulk_create(
        _sample("old", now - timedelta(days=2, seconds=i), 1) for i in range(25)
    )
    QueueSample.objects.bulk_create([_sample("new", now, 1)])
    monkeypatch.setattr(models, "PRUNE_CHUNK", 4)
    assert history.prune(now, limit=10) == 10
    with django_assert_max_num_queries(8):
        assert history.prune(now, limit=10) == 10
    assert history.prune(now, limit=10) == 5
    assert list(QueueSample.objects.values_list("queue", flat=True)) == ["new"]


@pytest.mark.django_db
def test_history_ages__since_last_empty_sample():
    """The estimate is the time since the last empty sample, else since the first sample."""
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def at(queue, minutes_ago, visible, in_flight=0):
        QueueSample.objects.create(
            queue=queue,
            sampled_at=now - timedelta(minutes=minutes_ago),
            visible=visible,
            in_flight=in_flight,
            delayed=0,
        )

    at("drained", 30, 0)
    at("drained", 20, 5)
    at("drained", 10, 0)
    at("drained", 5, 3)
    at("stuck", 60, 4)
    at("stuck", 1, 0, in_flight=2)  # in flight is not empty
    found = history.history_ages(["drained", "stuck", "unsampled"], now)
    assert found == {"drained": 600.0, "stuck": 3600.0}


@pytest.mark.django_db
def test_history_ages__live_reads_share_one_query_and_still_age(django_assert_num_queries):
    """A live read is cached for every viewer; the cached marks still give the age now."""
    cache.clear()
    start = datetime.now(UTC)
    QueueSample.objects.create(
        queue="busy", sampled_at=start - timedelta(minutes=3), visible=2, in_flight=0, delayed=0
    )
    with django_assert_num_queries(1):
        first = history.history_ages(["busy", "unsampled"])
    time.sleep(1.1)
    with django_assert_num_queries(0):
        second = history.history_ages(["unsampled", "busy"])
    assert list(first) == list(second) == ["busy"]
    assert 180 <= first["busy"] < second["busy"] < 180 + 30
