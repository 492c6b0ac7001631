"""What the poison checks cost per message: CPU time of the channel's checks on a real task.

A Celery task message is built as Celery's ``as_task_v2`` and kombu's SQS
channel build it (JSON, base64 body, the envelope base64 again as kombu sends
it), then the transport's checks run on it many times: the SQS body and the
envelope (``envelope_of``), every decoding level without the task
(``check_envelope(task=False)``, what a plain kombu consumer gets), and every
level with the task protocol's headers, body and embed (``task=True``, what
Celery's task consumer gets). kombu's own decoding of the body (base64, UTF-8,
JSON) is timed beside them. Prints microseconds per message (median of the
repeats), then one JSON line. Pure CPU, no SQS. A script, not a test::

    .venv/bin/python benchmarks/poison_checks.py                 # 20,000 messages x 7
    .venv/bin/python benchmarks/poison_checks.py --messages 2000 --repeats 3
    .venv/bin/python benchmarks/poison_checks.py --plain         # a task with none of them
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages", type=int, default=20000, help="messages per repeat (default 20000)"
    )
    parser.add_argument("--repeats", type=int, default=7, help="repeats (default 7)")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="a task without ETA, expiry or time limits (default: with all three)",
    )
    return parser.parse_args()


def sqs_body(plain: bool = False) -> str:
    """The SQS body of a task as kombu's SQS channel sends it (ETA, expiry, time limits set)."""
    from celery import Celery
    from kombu import serialization

    app = Celery("bench", set_as_current=False)
    options: dict[str, Any] = {}
    if not plain:
        options = {
            "eta": datetime(2030, 1, 1, 12),
            "expires": 3600,
            "time_limit": 60,
            "soft_time_limit": 50,
        }
    message = app.amqp.as_task_v2(
        "9f0c2b8e-1d5e-4d7a-9a57-0b9b7d0a1f55",
        "project.demo.tasks.journal",
        args=("journal.txt", "tag"),
        kwargs={"seconds": 0.0},
        **options,
    )
    content_type, content_encoding, body = serialization.dumps(message.body, "json")
    envelope = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": message.headers,
        "properties": {
            **message.properties,
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": "celery"},
            "delivery_mode": 2,
            "delivery_tag": "0e3b",
            "priority": 0,
        },
    }
    return base64.b64encode(json.dumps(envelope).encode()).decode()


def per_message(step: Callable[[], Any], messages: int, repeats: int) -> float:
    """Median microseconds per call of ``step`` over ``repeats`` runs of ``messages`` calls."""
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(messages):
            step()
        runs.append((time.perf_counter() - started) / messages * 1e6)
    return statistics.median(runs)


def main() -> None:
    args = parse()
    from kombu.transport import SQS
    from kombu.utils.encoding import bytes_to_str

    from sqs_broker.transport.poison import check_envelope, envelope_of

    raw = sqs_body(args.plain)
    channel = SQS.Channel.__new__(SQS.Channel)
    unwrap = channel._decode_python_message_body
    codecs = SQS.Channel.codecs
    accept = {"application/json"}
    envelope, _ = envelope_of(raw, unwrap)
    check_envelope(envelope, codecs, accept, task=True)  # it passes, or nothing is measured

    steps: dict[str, Callable[[], Any]] = {
        "kombu's decode (base64, UTF-8, JSON)": lambda: json.loads(bytes_to_str(unwrap(raw))),
        "envelope_of (the same, plus its shape)": lambda: envelope_of(raw, unwrap),
        "check_envelope, no task (plain consumer)": lambda: check_envelope(
            envelope, codecs, accept, task=False
        ),
        "check_envelope with the task (Celery's)": lambda: check_envelope(
            envelope, codecs, accept, task=True
        ),
    }
    figures = {name: per_message(step, args.messages, args.repeats) for name, step in steps.items()}
    width = max(len(name) for name in figures)
    shape = "no ETA, expiry or time limits" if args.plain else "ETA, expiry and time limits"
    print(
        f"{len(raw)}-byte SQS body ({shape}); {args.messages} messages x {args.repeats} "
        "repeats, median"
    )
    for name, micros in figures.items():
        print(f"  {name:<{width}}  {micros:8.1f} us/message")
    names = list(figures)
    added = figures[names[1]] + figures[names[3]] - figures[names[0]]
    print(f"  {'added per task message over kombu':<{width}}  {added:8.1f} us/message")
    print(json.dumps({"bytes": len(raw), "us_per_message": figures, "added_us": added}))


if __name__ == "__main__":
    main()
