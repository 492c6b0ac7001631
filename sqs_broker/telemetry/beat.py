"""Beat's heartbeat: a row of its own (``beat@<hostname>``), whose progress is beat's ticks.

``celery beat`` runs no worker bootstep, so nothing else would say whether it
still schedules. With telemetry on, ``beat_init`` starts a
:class:`~sqs_broker.telemetry.recorder.Recorder` for beat with a tracker of
its own: each scheduler tick reports progress under :data:`BEAT_QUEUE` and
expects the next within the interval the tick returned plus
:data:`TICK_MARGIN`. The faces then show a beat that stopped ticking (a
publish that never answers, a stuck scheduler) as ``"stalled"``, a killed
one as ``"lost"``, and one shut down warmly as ``"stopped"``.

This module runs in beat only (``celery beat``, or a worker's ``-B``).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from typing import Any

from django.utils import timezone

from sqs_broker.conf import app_settings
from sqs_broker.telemetry.base import WorkerInfo, versions
from sqs_broker.telemetry.recorder import Recorder
from sqs_broker.transport.liveness import Tracker

logger = logging.getLogger(__name__)

#: The name beat's progress is reported under, where a worker's names its queues.
BEAT_QUEUE = "(beat)"
#: Seconds a tick may come later than the interval the previous one returned:
#: a tick publishes the entries that are due, which takes a moment per entry.
TICK_MARGIN = 30.0


def hostname() -> str:
    """Beat's heartbeat row: ``beat@`` this machine's hostname, apart from any worker's."""
    return f"beat@{socket.gethostname()}"


class BeatLiveness:
    """Wraps one scheduler's ``tick`` and ``close``: ticks are progress, a warm close a stop."""

    def __init__(self, scheduler: Any, recorder: Recorder, margin: float = TICK_MARGIN) -> None:
        self.scheduler = scheduler
        self.recorder = recorder
        self.margin = margin
        self.tracker = recorder.liveness or Tracker()
        self._tick = scheduler.tick
        self._close = scheduler.close
        self._closed = threading.Event()
        # Before the first tick, which may come up to max_interval later.
        first = float(getattr(scheduler, "max_interval", 0) or 0)
        self.tracker.expect(BEAT_QUEUE, first + margin)
        # On the instance: this scheduler only, whatever its class (the file one,
        # django-celery-beat's...).
        scheduler.tick = self.tick
        scheduler.close = self.close

    def tick(self, *args: Any, **kwargs: Any) -> Any:
        """The scheduler's tick; then the next one is expected within its answer and the margin."""
        interval = self._tick(*args, **kwargs)
        wait = float(interval) if isinstance(interval, int | float) and interval > 0 else 0.0
        self.tracker.expect(BEAT_QUEUE, wait + self.margin)
        self.tracker.progressed(BEAT_QUEUE)
        return interval

    def close(self, *args: Any, **kwargs: Any) -> Any:
        """The scheduler's close; the heartbeat is marked stopped unless beat is failing."""
        try:
            return self._close(*args, **kwargs)
        finally:
            if not self._closed.is_set():
                self._closed.set()
                # Celery closes the scheduler on SIGTERM/SIGINT (its sync handler) and in
                # a finally: after an error only the latter, with the error being raised.
                failing = sys.exc_info()[1]
                warm = failing is None or isinstance(failing, SystemExit | KeyboardInterrupt)
                self.recorder.stop(stopped=warm)  # its last heartbeat keeps the last tick
                self.tracker.forget(BEAT_QUEUE)


def start(service: Any, margin: float = TICK_MARGIN) -> BeatLiveness:
    """Record ``service``'s (a ``celery.beat.Service``) heartbeat and ticks; returns the wrapper."""
    interval = app_settings.TELEMETRY_INTERVAL
    name = hostname()
    info = WorkerInfo(
        hostname=name,
        pid=os.getpid(),
        pool="beat",
        concurrency=1,
        queues=[],
        started_at=timezone.now(),
        interval=interval,
        versions=versions(),
    )
    recorder = Recorder(name, interval, worker=info, liveness=Tracker())
    wrapper = BeatLiveness(service.scheduler, recorder, margin)
    recorder.start()
    return wrapper


def on_beat_init(sender: Any = None, **kwargs: Any) -> None:
    """``beat_init``: sent by the beat service just before its first tick."""
    if sender is None:
        return
    try:
        start(sender)
    except Exception as exc:  # beat schedules without its heartbeat rather than not at all
        logger.warning("telemetry: beat's heartbeat could not start: %s", exc)
