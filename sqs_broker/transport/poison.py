"""Poison messages: what cannot become a task, found level by level, and where it goes.

Each check raises :class:`Poison` naming the level that failed; the channel then
moves the message to its queue's dead-letter queue or to ``<queue>-quarantine``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from kombu import compression, serialization
from kombu.utils.encoding import bytes_to_str, str_to_bytes

from sqs_broker.limits import MAX_QUEUE_NAME

logger = logging.getLogger(__name__)

#: The quarantine queue of ``q`` is ``q-quarantine`` (``q-quarantine.fifo`` for FIFO).
QUARANTINE_SUFFIX = "-quarantine"


def quarantine_name(queue: str) -> str:
    """The quarantine queue of the SQS queue named ``queue`` (FIFO stays FIFO)."""
    fifo = queue.endswith(".fifo")
    stem = queue.removesuffix(".fifo") if fifo else queue
    tail = QUARANTINE_SUFFIX + (".fifo" if fifo else "")
    return stem[: MAX_QUEUE_NAME - len(tail)] + tail


def is_quarantine(queue: str) -> bool:
    """Whether ``queue`` is named as :func:`quarantine_name` names a quarantine queue."""
    return queue.removesuffix(".fifo").endswith(QUARANTINE_SUFFIX)


# --- what is a task message ------------------------------------------------------


class Poison(Exception):
    """A message that cannot be decoded into a task; the text says at which level."""


def _text(value: Any, limit: int = 40) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def envelope_of(body: Any, unwrap: Callable[[Any], bytes]) -> tuple[dict[str, Any], str]:
    """The kombu envelope an SQS body carries, and its text; :class:`Poison` if none."""
    try:
        text = bytes_to_str(unwrap(body))
        envelope = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise Poison(f"the SQS body is not a JSON kombu envelope ({type(exc).__name__})") from None
    if not isinstance(envelope, dict) or "properties" not in envelope:
        raise Poison("the SQS body is JSON but not a kombu envelope (no properties)")
    return envelope, text


def check_envelope(envelope: dict[str, Any], codecs: dict[str, Any], accept: Any) -> None:
    """Raise :class:`Poison` unless ``envelope`` decodes into a Celery task message.

    Each level kombu and Celery decode is tried here first, with the same
    functions: field types, ``body_encoding``, compression, the serializer
    (with the worker's accepted content types) and the task's shape.
    """
    properties = envelope.get("properties")
    if not isinstance(properties, dict):
        raise Poison(f"properties is {type(properties).__name__}, not an object")
    info = properties.get("delivery_info", {})
    if not isinstance(info, dict):
        raise Poison(f"properties.delivery_info is {type(info).__name__}, not an object")
    encoding = properties.get("body_encoding")
    if encoding is not None and (not isinstance(encoding, str) or encoding not in codecs):
        raise Poison(f"unknown properties.body_encoding {_text(encoding)}")
    headers = envelope.get("headers")
    if headers is not None and not isinstance(headers, dict):
        raise Poison(f"headers is {type(headers).__name__}, not an object")
    headers = headers or {}
    body = envelope.get("body")
    if not isinstance(body, str) or not body:
        raise Poison(f"body is {type(body).__name__}, not a non-empty string")
    content_type = envelope.get("content-type")
    content_encoding = envelope.get("content-encoding")
    for name, value in (("content-type", content_type), ("content-encoding", content_encoding)):
        if value is not None and not isinstance(value, str):
            raise Poison(f"{name} is {type(value).__name__}, not a string")
    try:
        raw: Any = codecs[encoding].decode(body) if encoding else str_to_bytes(body)
    except Exception as exc:
        raise Poison(f"body is not valid {encoding} ({type(exc).__name__}: {exc})") from None
    method = headers.get("compression")
    if method is not None:
        try:
            raw = compression.decompress(raw, method)
        except Exception as exc:
            raise Poison(
                f"body does not decompress with {_text(method)} ({type(exc).__name__})"
            ) from None
    try:
        decoded = serialization.loads(raw, content_type, content_encoding or "utf-8", accept=accept)
    except Exception as exc:
        raise Poison(
            f"body does not deserialize as {_text(content_type)} ({type(exc).__name__}: {exc})"
        ) from None
    check_task(headers, decoded)


_OPTIONAL_TEXT = ("eta", "expires", "root_id", "parent_id", "group", "lang")


def check_task(headers: dict[str, Any], body: Any) -> None:
    """Raise :class:`Poison` unless headers and body have the shape of Celery's protocol 2 or 1."""
    if "task" in headers:  # protocol 2: the task's name and id travel in the headers
        if not isinstance(headers["task"], str) or not headers["task"]:
            raise Poison("headers.task is not a task name")
        if not isinstance(headers.get("id"), str):
            raise Poison("headers.id is not a string")
        for name in _OPTIONAL_TEXT:
            if headers.get(name) is not None and not isinstance(headers[name], str):
                raise Poison(f"headers.{name} is {type(headers[name]).__name__}, not a string")
        retries = headers.get("retries", 0)
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise Poison("headers.retries is not an integer")
        limits = headers.get("timelimit")
        if limits is not None and not (isinstance(limits, list | tuple) and len(limits) == 2):
            raise Poison("headers.timelimit is not [soft, hard]")
        if not (isinstance(body, list | tuple) and len(body) == 3):
            raise Poison("body is not [args, kwargs, embed]")
        args, kwargs, embed = body
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise Poison("body's args is not a list or its kwargs not an object")
        if embed is not None and not isinstance(embed, dict):
            raise Poison("body's embed is not an object")
        return
    if not isinstance(body, dict) or not isinstance(body.get("task"), str):
        raise Poison("neither headers.task nor body.task names a task")
    if not isinstance(body.get("id"), str):
        raise Poison("body.id is not a string")
    if not isinstance(body.get("args", []), list | tuple):
        raise Poison("body.args is not a list")
    if not isinstance(body.get("kwargs", {}), dict):
        raise Poison("body.kwargs is not an object")


# --- faults ----------------------------------------------------------------------
