"""Tests of sqs_broker.rows: the queue table's rows, worked out once per request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import translation

from sqs_broker.dashboard import rows
from sqs_broker.history import history_window

#: The time axis every row's sparkline is drawn on (the last six hours).
WINDOW = history_window(6)


def _queue(name: str, **fields: Any) -> dict[str, Any]:
    row = {
        "name": name,
        "dlq": None,
        "error": None,
        "read_only": False,
        "backoff_policy": [],
        "oldest_age": None,
        "oldest_age_source": None,
    }
    return {**row, **fields}


def _dlq(name: str, visible: int | None, max_receive_count: int = 5) -> dict[str, Any]:
    return {"name": name, "visible": visible, "max_receive_count": max_receive_count, "error": None}


@pytest.mark.parametrize("name", ["celery", "app-q.fifo", "we ird", "a%b", "a&b'c", "名字"])
def test_queue_link__the_url_reverse_gives(name):
    """One reversed pattern per view gives, for any name, the URL {% url %} gave."""
    for view in ("queue", "purge", "redrive"):
        link = rows.QueueLink(f"admin:sqs_broker_dashboard_{view}")
        assert link(name) == reverse(f"admin:sqs_broker_dashboard_{view}", args=[name])


def test_queue_rows__actions_only_where_allowed():
    """Purge needs the permission, an answering queue the app owns; a move also a full DLQ."""
    queues = [
        _queue("ok", dlq=_dlq("ok-dlq", 2)),
        _queue("empty-dlq", dlq=_dlq("e-dlq", 0)),
        _queue("failed", error="QueueDoesNotExist", dlq=_dlq("f-dlq", 1)),
        _queue("theirs", read_only=True, dlq=_dlq("t-dlq", 3)),
    ]
    every = rows.queue_rows(queues, {}, [], window=WINDOW, can_purge=True, can_redrive=True)
    table = {r["q"]["name"]: r for r in every}
    purge = {name for name, r in table.items() if r["purge_url"]}
    redrive = {name for name, r in table.items() if r["redrive_url"]}
    assert purge == {"ok", "empty-dlq"}
    assert redrive == {"ok", "failed"}
    assert table["ok"]["purge_url"] == reverse("admin:sqs_broker_dashboard_purge", args=["ok"])
    assert table["ok"]["dlq_url"] == reverse("admin:sqs_broker_dashboard_queue", args=["ok-dlq"])
    for r in rows.queue_rows(queues, {}, [], window=WINDOW, can_purge=False, can_redrive=False):
        assert r["purge_url"] is None and r["redrive_url"] is None


def test_queue_rows__findings_ages_and_sparklines_per_queue():
    """Each row gets its own findings, its age with its source, and its sparklines."""
    now = datetime.now(UTC)
    samples = [
        {"t": now - timedelta(minutes=m), "visible": m, "in_flight": 0, "delayed": 0}
        for m in (3, 2, 1)
    ]
    queues = [
        _queue("a", oldest_age=7260.0, oldest_age_source="history", dlq=_dlq("a-dlq", 1, 4)),
        _queue("b", oldest_age=0.0, oldest_age_source="attributes"),
    ]
    findings = [{"queue": "a", "id": "x"}, {"queue": None, "id": "y"}, {"queue": "a", "id": "z"}]
    a, b = rows.queue_rows(
        queues, {"a": samples}, findings, window=WINDOW, can_purge=False, can_redrive=False
    )
    assert [f["id"] for f in a["findings"]] == ["x", "z"] and b["findings"] == []
    assert (a["oldest"], a["oldest_title"]) == ("2\xa0hours, 1\xa0minute", "Source: history")
    assert (b["oldest"], b["oldest_title"]) == ("0 s", "Source: attributes")
    assert a["dlq_after"] == "after 4 receives"
    assert 'aria-label="Visible messages, 3 samples, peak 3"' in a["spark_html"]
    assert "no history" in b["spark_html"] and a["dlq_spark_html"] is None


def test_labels_and_sentences__in_the_active_language():
    """The catalogue applies: labels and row sentences come out in Simplified Chinese."""
    queues = [_queue("a", dlq=_dlq("a-dlq", 1, 4), oldest_age=5.0, oldest_age_source="history")]
    with translation.override("zh-hans"):
        labels = rows.labels()
        (row,) = rows.queue_rows(queues, {}, [], window=WINDOW, can_purge=True, can_redrive=True)
    assert (labels["queue"], labels["visible"], labels["dlq"]) == ("队列", "可见", "死信队列")
    assert row["dlq_after"] == "接收 4 次后"
    assert row["oldest_title"] == "来源：history"
    assert "无历史" in row["spark_html"]
    assert rows.labels()["queue"] == "Queue"
