"""Loaded into a test's worker (``celery worker --include tests.plain_consumer``).

A plain kombu ``Consumer`` (kombu's default ``accept``) beside Celery's task
consumer, on the same transport, as a ``bootsteps.ConsumerStep`` adds one: it
consumes the queue ``SQS_BROKER_TEST_PLAIN_QUEUE`` and appends each message's
content type and body to ``SQS_BROKER_TEST_PLAIN_FILE``, one JSON line each.
"""

from __future__ import annotations

import json
import os
from typing import Any

from celery import bootsteps
from kombu import Consumer, Queue

from project.celery import app


class PlainConsumer(bootsteps.ConsumerStep):
    def get_consumers(self, channel: Any) -> list[Consumer]:
        queue = Queue(os.environ["SQS_BROKER_TEST_PLAIN_QUEUE"])
        return [Consumer(channel, queues=[queue], callbacks=[self.on_message])]

    def on_message(self, body: Any, message: Any) -> None:
        line = {"content_type": message.content_type, "body": body}
        if isinstance(body, bytes):
            line["body"] = body.decode()
        with open(os.environ["SQS_BROKER_TEST_PLAIN_FILE"], "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
        message.ack()


app.steps["consumer"].add(PlainConsumer)
