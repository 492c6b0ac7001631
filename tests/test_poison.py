"""The task checks of sqs_broker.transport.poison against Celery's own worker code.

Pure: no SQS. Every header of Celery's task protocol 2 is drawn with values of
every JSON type and near-valid values (texts that almost parse as dates,
numbers of either sign, lists of the wrong length), and the checker's verdict
is compared with what the worker itself does with the message: building
Celery's ``Request`` (which parses the ETA and expiry), converting the ETA to
a timestamp as the strategy does, and scheduling the time limits on a kombu
timer as the prefork pool does. Whatever the checker lets through, the worker
can use; whatever Celery never sends (a wrong JSON type) is poison.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import InvalidTaskError
from celery.utils.time import maybe_iso8601, timezone
from celery.worker.request import Request
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu.asynchronous.timer import Timer, to_timestamp
from kombu.transport import SQS

from sqs_broker.transport.poison import (
    _ISOFORMAT,
    EMBED_RULES,
    HEADER_RULES,
    PROPERTY_RULES,
    Poison,
    check_envelope,
    check_task,
)

ORACLE = Celery("oracle", set_as_current=False)


@ORACLE.task(name="oracle.task")
def _task(*args: Any, **kwargs: Any) -> None:
    """The task the drawn messages name."""


def sent(**options: Any) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """Headers, body and properties of a task message as Celery itself builds it."""
    message = ORACLE.amqp.as_task_v2("0b1d", "oracle.task", args=(1,), kwargs={"k": 2}, **options)
    # Through JSON, as the worker receives it: tuples become lists.
    headers, body = json.loads(json.dumps([message.headers, message.body]))
    return headers, body, message.properties


#: The JSON types Celery's as_task_v2 sends in each header (None: null), read from
#: celery/app/amqp.py, plus null where the worker reads the header as optional
#: (a null is then the header's absence); independent of the checker's rules.
SENT_TYPES: dict[str, tuple[type | None, ...]] = {
    "lang": (str, None),
    "task": (str,),
    "id": (str,),
    "shadow": (str, None),
    "eta": (str, None),
    "expires": (str, None),
    "group": (str, None),
    "group_index": (int, None),
    "retries": (int,),
    "timelimit": (list, None),
    "root_id": (str, None),
    "parent_id": (str, None),
    "argsrepr": (str, None),
    "kwargsrepr": (str, None),
    "origin": (str, None),
    "ignore_result": (bool, None),
    "replaced_task_nesting": (int,),
    "stamped_headers": (list, None),
    "stamps": (dict, None),
}


def json_type(value: Any) -> type | None:
    if value is None:
        return None
    for kind in (bool, int, float, str, list, dict):
        if isinstance(value, kind):
            return kind
    raise AssertionError(value)


def test_rules__cover_every_header_celery_sends() -> None:
    """The checker has a rule for each header Celery's protocol 2 sends, and no other."""
    headers, _, _ = sent(eta=datetime(2030, 1, 1), expires=60, time_limit=5, soft_time_limit=3)
    assert set(HEADER_RULES) == set(headers) == set(SENT_TYPES)
    assert set(EMBED_RULES) == {"callbacks", "errbacks", "chain", "chord"}


def test_check_task__messages_celery_sends_pass() -> None:
    """Plain, with ETA and expiry, time limits, a group, stamps: each passes."""
    for options in (
        {},
        {"eta": datetime(2030, 1, 1, 12), "expires": 3600},
        {"time_limit": 10, "soft_time_limit": 5.5},
        {"group_id": "g", "group_index": 3, "retries": 2, "shadow": "other.name"},
        {"stamped_headers": ["k"], "k": "v", "ignore_result": True},
        {"callbacks": [{"task": "x", "args": [], "kwargs": {}}], "chord": {"task": "y"}},
    ):
        check_task(*sent(**options))


# --- the oracle: what the worker does with a message --------------------------


def worker_uses(headers: dict[str, Any], body: Any, properties: dict[str, Any]) -> str | None:
    """What goes wrong when Celery's worker takes this message; ``None`` if nothing.

    The steps of celery/worker/strategy.py and request.py up to the pool, and
    the prefork pool's scheduling of the time limits (asynpool.py).
    """
    message = SimpleNamespace(
        headers=headers,
        body=body,
        payload=body,
        content_type="application/json",
        content_encoding="utf-8",
        delivery_info={"routing_key": "celery"},
        properties=properties,
    )
    try:
        request = Request(message, app=ORACLE, task=_task, body=body, headers=headers, decoded=True)
        if request.eta:
            to_timestamp(timezone.to_system(request.eta))
        if request.expires:
            _ = datetime.now(request.expires.tzinfo) > request.expires
        hard, soft = request.time_limits
        timer = Timer()
        for seconds in (soft, hard):
            if seconds:
                entry = timer.call_after(seconds, lambda: None)
                if seconds < 0:  # the pool's timer fires at once: killed before it runs
                    return "time limit already passed"
                # An unordered deadline (NaN) breaks the timer's heap.
                if math.isnan(timer.queue[0].eta):
                    return "time limit not a number"
                entry.cancel()
        (_args, _kwargs, embed) = body
        for name in ("callbacks", "errbacks", "chain"):
            for signature in (embed or {}).get(name) or ():
                ORACLE.signature(signature)
        chord = (embed or {}).get("chord")
        if chord:
            ORACLE.signature(chord)
        if int(request.request_dict.get("retries", 0)) < 0:
            return "negative retries"
    except (InvalidTaskError, Exception) as exc:  # any failure is one the worker meets
        return f"{type(exc).__name__}: {exc}"
    return None


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
ISO_TEXT = st.one_of(
    st.datetimes().map(datetime.isoformat),
    st.datetimes().map(lambda d: d.isoformat() + st_offset(d)),
    st.text(alphabet="0123456789-:T.+Z ", max_size=30),
    st.sampled_from(["", "not-a-date", "garbage", "9999-12-31T23:59:59", "0001-01-01T00:00:00"]),
)


def st_offset(moment: datetime) -> str:
    """A UTC offset drawn from the moment itself (deterministic for a drawn datetime)."""
    hours = moment.microsecond % 27 - 13
    return f"{'+' if hours >= 0 else '-'}{abs(hours):02d}:00"


#: Near-valid values per header, beside any JSON value.
NEAR: dict[str, st.SearchStrategy[Any]] = {
    "eta": ISO_TEXT,
    "expires": ISO_TEXT,
    "timelimit": st.lists(JSON_SCALARS, min_size=0, max_size=3),
    "retries": st.integers(min_value=-5, max_value=5),
    "group_index": st.integers(min_value=-5, max_value=5),
    "replaced_task_nesting": st.integers(min_value=-5, max_value=5),
    "stamped_headers": st.lists(JSON_SCALARS, max_size=3),
}


def drawn_header() -> st.SearchStrategy[tuple[str, Any]]:
    """``(header, value)`` for every header of protocol 2: any JSON value or a near-valid one."""
    return st.one_of(
        *[
            st.tuples(st.just(name), st.one_of(ANY_JSON, NEAR.get(name, ANY_JSON)))
            for name in HEADER_RULES
        ]
    )


def verdict(headers: dict[str, Any], body: Any, properties: dict[str, Any]) -> str | None:
    try:
        check_task(headers, body, properties)
    except Poison as poison:
        assert str(poison)
        return str(poison)
    return None


@settings(max_examples=2000, deadline=None)
@given(change=drawn_header())
def test_check_task__every_header_drawn_against_the_worker(change: tuple[str, Any]) -> None:
    """Every header drawn: what passes, the worker can use; a type Celery never sends fails."""
    name, value = change
    headers, body, properties = sent(time_limit=10, soft_time_limit=5)
    headers[name] = value
    found = verdict(headers, body, properties)
    if found is None:
        assert worker_uses(headers, body, properties) is None, (name, value)
    if json_type(value) not in SENT_TYPES[name]:
        assert found is not None, (name, value)
        assert f"headers.{name}" in found


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(HEADER_RULES)), several=st.data())
def test_check_task__several_headers_drawn_at_once(name: str, several: Any) -> None:
    """Several headers wrong at once: still poison when one is of a type Celery never sends."""
    headers, body, properties = sent()
    changes = several.draw(st.lists(drawn_header(), min_size=1, max_size=4))
    for header, value in changes:
        headers[header] = value
    found = verdict(headers, body, properties)
    if found is None:
        assert worker_uses(headers, body, properties) is None, changes
    if any(json_type(headers[h]) not in SENT_TYPES[h] for h, _ in changes):
        assert found is not None, changes


@settings(max_examples=300, deadline=None)
@given(
    part=st.sampled_from(
        [*[("embed", n) for n in EMBED_RULES], *[("prop", n) for n in PROPERTY_RULES]]
    ),
    value=ANY_JSON,
)
def test_check_task__embed_and_properties_drawn_against_the_worker(
    part: tuple[str, str], value: Any
) -> None:
    """The body's embed (callbacks, errbacks, chain, chord) and the properties Celery reads."""
    headers, body, properties = sent()
    where, name = part
    if where == "embed":
        body[2][name] = value
    else:
        properties[name] = value
    found = verdict(headers, body, properties)
    if found is None:
        assert worker_uses(headers, body, properties) is None, (part, value)


@settings(max_examples=2000, deadline=None)
@given(
    text=st.one_of(
        st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
        st.datetimes().map(datetime.isoformat),
        st.from_regex(_ISOFORMAT, fullmatch=True),
    )
)
def test_instant__fast_parse_agrees_with_celerys_parser(text: str) -> None:
    """Where the checker reads an ETA with ``fromisoformat``, Celery's parser reads the same."""
    if not _ISOFORMAT.fullmatch(text):
        return
    try:
        fast = datetime.fromisoformat(text)
    except ValueError:
        return  # the checker then asks Celery's parser itself
    slow = maybe_iso8601(text)
    assert (fast, fast.utcoffset()) == (slow, slow.utcoffset())


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("timelimit", ["a", "b"], "headers.timelimit[0] is 'a'"),
        ("timelimit", [1, 2, 3], "not [hard, soft]"),
        ("timelimit", [float("nan"), None], "finite number"),
        ("timelimit", [-1, None], "finite number"),
        ("eta", "not-a-date", "headers.eta 'not-a-date' is not a date and time"),
        ("expires", "garbage", "headers.expires 'garbage'"),
        ("eta", "", "not an ISO 8601"),
        ("eta", 0, "not an ISO 8601"),
        ("retries", -1, "non-negative integer"),
        ("retries", True, "non-negative integer"),
        ("ignore_result", "false", "not true, false or null"),
        ("stamped_headers", "k", "not a list of strings"),
    ],
)
def test_check_task__the_issues_shapes(header: str, value: Any, expected: str) -> None:
    """The shapes the issue names, and their neighbours, each with a reason naming the header."""
    headers, body, properties = sent()
    headers[header] = value
    with pytest.raises(Poison, match=expected.replace("[", r"\[").replace("(", r"\(")):
        check_task(headers, body, properties)
    if header in ("timelimit", "eta", "expires"):  # each fails in the worker itself
        assert worker_uses(headers, body, properties) is not None


def test_check_task__protocol_1_fields_checked_too() -> None:
    """A protocol 1 body carries the fields itself: the same rules apply to them."""
    body = {"task": "oracle.task", "id": "1", "args": [], "kwargs": {}, "eta": "garbage"}
    with pytest.raises(Poison, match="body.eta"):
        check_task({}, body)
    check_task({}, {**body, "eta": "2030-01-01T00:00:00"})


def test_check_envelope__task_shape_only_for_the_task_consumer() -> None:
    """text/plain: poison to a consumer accepting JSON tasks, fine to a plain kombu consumer."""
    envelope = {
        "body": "aGVsbG8=",  # "hello"
        "content-type": "text/plain",
        "content-encoding": "utf-8",
        "headers": {},
        "properties": {"body_encoding": "base64", "delivery_info": {}},
    }
    codecs = SQS.Channel.codecs
    check_envelope(envelope, codecs, None, task=False)
    with pytest.raises(Poison, match="neither headers.task nor body.task"):
        check_envelope(envelope, codecs, None, task=True)
    with pytest.raises(Poison, match="does not deserialize"):
        check_envelope(envelope, codecs, {"application/json"}, task=False)


def test_identify__task_and_id_from_the_headers_only() -> None:
    """The envelope's headers name the task and id (raw or base64-wrapped); nothing else is read."""
    import base64

    from kombu.transport import SQS as kombu_sqs

    from sqs_broker.transport.poison import NAME_CHARS, identify

    def unwrap(raw: Any) -> bytes:
        channel = kombu_sqs.Channel.__new__(kombu_sqs.Channel)
        return kombu_sqs.Channel._decode_python_message_body(channel, raw)

    envelope = {"properties": {}, "headers": {"task": "app.t", "id": "i-1"}, "body": "e30="}
    text = json.dumps(envelope)
    assert identify(text, unwrap) == ("app.t", "i-1")
    assert identify(base64.b64encode(text.encode()).decode(), unwrap) == ("app.t", "i-1")
    assert identify("not json", unwrap) == (None, None)
    assert identify(json.dumps({"properties": {}, "headers": None}), unwrap) == (None, None)
    odd = {**envelope, "headers": {"task": 5, "id": "x" * 300}}
    assert identify(json.dumps(odd), unwrap) == (None, "x" * NAME_CHARS)
    # Protocol 1 names the task in the body, with the arguments: not read.
    v1 = {"properties": {}, "body": "eyJ0YXNrIjogImFwcC50In0="}
    assert identify(json.dumps(v1), unwrap) == (None, None)
