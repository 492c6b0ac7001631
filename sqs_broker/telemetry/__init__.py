"""Worker and task telemetry without Celery events, in three parts kept apart.

* :mod:`~sqs_broker.telemetry.recorder`: in the worker only. Signal handlers
  and a bootstep count what each process sees, in memory; a thread flushes.
* :mod:`~sqs_broker.telemetry.store`: the database writes those flushes make,
  the first heartbeat and retention pruning, each with a bounded lock wait.
* :mod:`~sqs_broker.telemetry.read`: snapshots and all-time totals for the
  faces; a worker never imports it.
* :mod:`~sqs_broker.telemetry.beat`: in ``celery beat`` only, beat's own
  heartbeat, whose progress is its ticks.

The heartbeat carries the consumer's progress, which the transport reports to
:mod:`sqs_broker.transport.liveness`; the read side judges ``"stalled"`` from it.

:mod:`~sqs_broker.telemetry.base` holds what both sides share. Import the part
you need: this package's ``__init__`` imports none of them, so a worker loads
no read-side code and a web process no bootstep.
"""
