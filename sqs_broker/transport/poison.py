"""Poison messages: what cannot be decoded, or cannot become a task, found level by level.

Each check raises :class:`Poison` naming the level and the field that failed;
the channel then moves the message aside (:mod:`sqs_broker.transport.quarantine`).
The checks are pure: no SQS, no Celery app. The quarantine naming rule lives
with the other naming rules in :mod:`sqs_broker.topology` and is re-exported here.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Container
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.utils.time import maybe_iso8601

from sqs_broker.topology import QUARANTINE_SUFFIX, is_quarantine, quarantine_name
from sqs_broker.transport.kombu_types import bytes_to_str, decompress, loads, str_to_bytes

__all__ = [
    "CELERY_TASK_HANDLER",
    "KOMBU_CONTRACT",
    "QUARANTINE_SUFFIX",
    "Contract",
    "Poison",
    "check_envelope",
    "check_task",
    "contract_of",
    "envelope_of",
    "identify",
    "is_quarantine",
    "quarantine_name",
]

logger = logging.getLogger(__name__)

# --- poison: what the checks raise ---------------------------------------------------


class Poison(Exception):
    """A message that cannot be decoded into a task; the text says at which level."""


def _text(value: Any, limit: int = 40) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "..."


# --- whose message: the consumer's contract ---------------------------------------

#: The module of the function Celery's worker consumes task messages with.
CELERY_TASK_HANDLER = "celery.worker.consumer.consumer"


@dataclass(frozen=True)
class Contract:
    """What a queue's consumer takes: its ``accept`` and whether it is Celery's task consumer."""

    accept: Any = None
    tasks: bool = False


#: A consumer the channel knows nothing of: kombu's behaviour, kombu's default accept.
KOMBU_CONTRACT = Contract()


def contract_of(callback: Any, task_consumers: Container[Any]) -> Contract:
    """The contract of the kombu Consumer whose bound ``callback`` a queue is consumed with.

    Celery's task consumer is one the worker's bootstep named (``task_consumers``),
    or one whose message handler is Celery's (set before it consumes).
    """
    consumer = getattr(callback, "__self__", None)
    if consumer is None:
        return KOMBU_CONTRACT
    handler = getattr(consumer, "on_message", None)
    tasks = consumer in task_consumers or (
        getattr(handler, "__module__", None) == CELERY_TASK_HANDLER
    )
    return Contract(getattr(consumer, "accept", None), tasks)


# --- what is a kombu envelope ------------------------------------------------------


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


#: Characters of a task name or id :func:`identify` gives at most (the telemetry's column).
NAME_CHARS = 255


def identify(body: Any, unwrap: Callable[[Any], bytes]) -> tuple[str | None, str | None]:
    """The task name and id an SQS body's kombu envelope names, each ``None`` where unreadable.

    Read from the envelope's headers (Celery's protocol 2) only: the body,
    which holds the arguments, is never decoded here. What a person may be
    shown of a poison message, and what its poison is counted under.
    """
    try:
        headers = envelope_of(body, unwrap)[0].get("headers")
    except Poison:
        return None, None
    if not isinstance(headers, dict):
        return None, None

    def name(value: Any) -> str | None:
        return value[:NAME_CHARS] if isinstance(value, str) and value else None

    return name(headers.get("task")), name(headers.get("id"))


def check_envelope(
    envelope: dict[str, Any], codecs: dict[str, Any], accept: Any, task: bool = True
) -> None:
    """Raise :class:`Poison` unless ``envelope`` decodes (into a task, when ``task``).

    Each level kombu and Celery decode is tried here first, with the same
    functions: field types, ``body_encoding``, compression, the serializer
    (with the consuming consumer's ``accept``; ``None`` accepts what kombu
    accepts by default) and, for Celery's task consumer, the task itself
    (:func:`check_task`).
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
            raw = decompress(raw, method)
        except Exception as exc:
            raise Poison(
                f"body does not decompress with {_text(method)} ({type(exc).__name__})"
            ) from None
    try:
        decoded = loads(raw, content_type, content_encoding or "utf-8", accept=accept)
    except Exception as exc:
        raise Poison(
            f"body does not deserialize as {_text(content_type)} ({type(exc).__name__}: {exc})"
        ) from None
    if task:
        check_task(headers, decoded, properties)


# --- what is a task: Celery's protocol, field by field ---------------------------
#
# Each rule takes a field's value and raises Poison saying what is wrong with
# it. The types are those Celery's ``as_task_v2`` sends; the values are checked
# as the worker uses them (celery/worker/request.py, strategy.py and the
# prefork pool's time limits), so that what passes here cannot fail there.


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text_or_none(where: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise Poison(f"{where} is {type(value).__name__}, not a string or null")


def _name(where: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise Poison(f"{where} is {_text(value)}, not a non-empty string")


def _count(where: str, value: Any) -> None:
    if not _is_int(value) or value < 0:
        raise Poison(f"{where} is {_text(value)}, not a non-negative integer")


def _count_or_none(where: str, value: Any) -> None:
    if value is not None:
        _count(where, value)


def _flag_or_none(where: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise Poison(f"{where} is {_text(value)}, not true, false or null")


#: The widest offset from UTC of any time zone: an instant must be representable in all.
_WIDEST_OFFSET = timedelta(hours=26)
#: The instants whose UTC time is this far from datetime's ends convert in every zone.
_EARLIEST = datetime.min + _WIDEST_OFFSET
_LATEST = datetime.max - _WIDEST_OFFSET
#: What ``datetime.isoformat()`` writes (as Celery sends ETAs and expiries). Where
#: ``fromisoformat`` reads such a text, dateutil's ``isoparse`` reads the same instant:
#: the common case is parsed in C, anything else by the worker's own parser.
_ISOFORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}:\d{2})?")


def _parse_instant(value: str) -> datetime:
    if _ISOFORMAT.fullmatch(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    parsed: datetime = maybe_iso8601(value)  # the worker's parser (dateutil's isoparse)
    return parsed


def _instant(where: str, value: Any) -> None:
    """An ETA or expiry: null, or an ISO 8601 text the worker can parse and schedule.

    Celery parses it with ``maybe_iso8601`` (a naive time is UTC), makes it aware
    in the app's time zone, converts it to the system's and to a timestamp
    (``OverflowError``/``ValueError`` there rejects the task): checked here
    with room for any time zone. An empty text is not null to Celery: it fails.
    """
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise Poison(f"{where} is {_text(value)}, not an ISO 8601 date and time or null")
    try:
        parsed = _parse_instant(value)
        utc = parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed
        if not _EARLIEST <= utc.replace(tzinfo=None) <= _LATEST:
            raise OverflowError("too close to the ends of the calendar for every time zone")
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        raise Poison(
            f"{where} {_text(value)} is not a date and time Celery can use ({exc})"
        ) from None


def _seconds(where: str, value: Any) -> None:
    if value is not None and not (_is_number(value) and math.isfinite(value) and value >= 0):
        raise Poison(f"{where} is {_text(value)}, not a finite number of seconds >= 0 or null")


def _time_limits(where: str, value: Any) -> None:
    """``[hard, soft]`` seconds, each a number or null; the prefork pool schedules both."""
    if value is None:
        return
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise Poison(f"{where} is {_text(value)}, not [hard, soft]")
    _seconds(f"{where}[0]", value[0])
    _seconds(f"{where}[1]", value[1])


def _texts_or_none(where: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise Poison(f"{where} is {_text(value)}, not a list of strings or null")


def _object_or_none(where: str, value: Any) -> None:
    if value is not None and not isinstance(value, dict):
        raise Poison(f"{where} is {type(value).__name__}, not an object or null")


def _signatures_or_none(where: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list | tuple) or not all(isinstance(v, dict) for v in value):
        raise Poison(f"{where} is {_text(value)}, not a list of task signatures or null")


Rule = Callable[[str, Any], None]

#: Every header of Celery's task protocol 2 and its rule. ``task`` and ``id`` are
#: required; a header not listed here is the sender's own and is not checked.
HEADER_RULES: dict[str, Rule] = {
    "lang": _text_or_none,
    "task": _name,
    "id": _name,
    "shadow": _text_or_none,
    "eta": _instant,
    "expires": _instant,
    "group": _text_or_none,
    "group_index": _count_or_none,
    "retries": _count,
    "timelimit": _time_limits,
    "root_id": _text_or_none,
    "parent_id": _text_or_none,
    "argsrepr": _text_or_none,
    "kwargsrepr": _text_or_none,
    "origin": _text_or_none,
    "ignore_result": _flag_or_none,
    "replaced_task_nesting": _count,
    "stamped_headers": _texts_or_none,
    "stamps": _object_or_none,
}
REQUIRED_HEADERS = ("task", "id")

#: The third item of a protocol 2 body: what runs after the task.
EMBED_RULES: dict[str, Rule] = {
    "callbacks": _signatures_or_none,
    "errbacks": _signatures_or_none,
    "chain": _signatures_or_none,
    "chord": _object_or_none,
}

#: The message properties Celery reads (results go to ``reply_to``).
PROPERTY_RULES: dict[str, Rule] = {
    "correlation_id": _text_or_none,
    "reply_to": _text_or_none,
}

#: A protocol 1 body carries the headers' fields itself, plus these.
BODY_V1_RULES: dict[str, Rule] = {
    **{name: rule for name, rule in HEADER_RULES.items() if name not in ("lang",)},
    **EMBED_RULES,
    "utc": _flag_or_none,
}


#: ``"headers.eta"``... made once: every message passes through here.
_PLACES: dict[tuple[str, str], str] = {}


def _apply(rules: dict[str, Rule], fields: dict[str, Any], where: str) -> None:
    for name, rule in rules.items():
        if name in fields:
            place = _PLACES.get((where, name))
            if place is None:
                place = _PLACES[(where, name)] = f"{where}.{name}"
            rule(place, fields[name])


def check_task(
    headers: dict[str, Any], body: Any, properties: dict[str, Any] | None = None
) -> None:
    """Raise :class:`Poison` unless headers and body are a task the worker can run.

    Protocol 2 (the task's name in the headers): every header of
    :data:`HEADER_RULES`, the body ``[args, kwargs, embed]`` and the embed.
    Protocol 1 (the name in the body): the same fields in the body.
    """
    _apply(PROPERTY_RULES, properties or {}, "properties")
    if "task" in headers:
        for name in REQUIRED_HEADERS:
            if name not in headers:
                raise Poison(f"headers.{name} is missing")
        _apply(HEADER_RULES, headers, "headers")
        if not (isinstance(body, list | tuple) and len(body) == 3):
            raise Poison("body is not [args, kwargs, embed]")
        args, kwargs, embed = body
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise Poison("body's args is not a list or its kwargs not an object")
        if embed is not None and not isinstance(embed, dict):
            raise Poison("body's embed is not an object")
        _apply(EMBED_RULES, embed or {}, "body.embed")
        return
    if not isinstance(body, dict) or not isinstance(body.get("task"), str):
        raise Poison("neither headers.task nor body.task names a task")
    for name in REQUIRED_HEADERS:
        if name not in body:
            raise Poison(f"body.{name} is missing")
    _apply(BODY_V1_RULES, body, "body")
    if not isinstance(body.get("args", []), list | tuple):
        raise Poison("body.args is not a list")
    if not isinstance(body.get("kwargs", {}), dict):
        raise Poison("body.kwargs is not an object")
