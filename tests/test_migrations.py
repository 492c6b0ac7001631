"""Migrations that move data: what a project upgrading from an earlier release keeps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("sqs_broker", "0005_task_histograms")]
AFTER = [("sqs_broker", "0006_hourly_task_counters")]


def _migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_0006__sums_the_minutes_written_before_into_hours() -> None:
    """Existing minute counters get their hour rows; the baseline row of pruned minutes does not."""
    try:
        old = _migrate(BEFORE)
        minutes = old.get_model("sqs_broker", "TaskCounter")
        at = datetime(2026, 11, 30, 9, tzinfo=UTC)
        rows = [
            ("app.a", "q1", at.replace(minute=5), 2, 1.5),
            ("app.a", "q1", at.replace(minute=59), 3, 4.0),
            ("app.a", "q1", at.replace(hour=10, minute=0), 7, 0.2),
            ("app.b", "q1", at.replace(minute=30), 1, 0.1),
            ("app.a", "q1", datetime(1970, 1, 1, tzinfo=UTC), 1000, 9.0),  # the baseline
        ]
        for task, queue, minute, received, runtime_max in rows:
            minutes.objects.create(
                task=task,
                queue=queue,
                minute=minute,
                received=received,
                runtime_max=runtime_max,
                wait_le_5=received,
            )

        new = _migrate(AFTER)
        hours = new.get_model("sqs_broker", "HourlyTaskCounter")
        found = {
            (h.task, h.hour): (h.received, h.runtime_max, h.wait_le_5) for h in hours.objects.all()
        }
        assert found == {
            ("app.a", at): (5, 4.0, 5),
            ("app.a", at.replace(hour=10)): (7, 0.2, 7),
            ("app.b", at): (1, 0.1, 1),
        }
    finally:
        # Back to the newest state for the tests that follow (the flush empties the tables).
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_0008__revocations_table_and_revoked_counters() -> None:
    """0008 over 0007 data: counters get revoked = 0, revocations can be stored; it reverses."""
    before = [("sqs_broker", "0007_heartbeat_progress")]
    try:
        old = _migrate(before)
        at = datetime(2026, 12, 6, 9, tzinfo=UTC)
        old.get_model("sqs_broker", "TaskCounter").objects.create(
            task="app.a", queue="q1", minute=at, received=3
        )
        new = _migrate([("sqs_broker", "0008_revocations")])
        row = new.get_model("sqs_broker", "TaskCounter").objects.get()
        assert (row.received, row.revoked) == (3, 0)
        revocation = new.get_model("sqs_broker", "Revocation").objects.create(
            task_id="t-1", revoked_at=at, expires_at=at, revoked_by="alice"
        )
        assert revocation.reason == ""
        back = _migrate(before)
        assert "revocation" not in {m._meta.model_name for m in back.get_models()}
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
