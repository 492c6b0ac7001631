"""What a received SQS message is, for people: the queue page's peek.

kombu sends a Celery message as base64 of a JSON envelope whose ``body`` is
itself (base64 of) JSON ``[args, kwargs, embed]``. :func:`message_summary`
unwraps that, never raising on a body that is something else, and every text
it returns is cut and scrubbed.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext as _

from sqs_broker.redact import scrub

#: Characters of a message body or task arguments shown on the queue page.
PREVIEW = 300


def _printable(text: str, limit: int = PREVIEW) -> str:
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return "".join(ch if ch.isprintable() or ch in "\n\t" else "\ufffd" for ch in cut)


def _json_or_base64_json(raw: Any) -> Any:
    """``raw`` parsed as JSON, or as base64 of JSON (kombu's SQS encoding); else ``None``."""
    if not isinstance(raw, str | bytes) or not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        pass
    try:
        return json.loads(base64.b64decode(raw, validate=True))
    except (ValueError, TypeError, RecursionError, binascii.Error):
        return None


def message_summary(message: dict[str, Any]) -> dict[str, Any]:
    """What a received SQS message is, for people: task, id, retries, a short preview.

    Never raises: a body that is not JSON, not base64 or huge is shown as a
    cut, scrubbed preview with a note saying what it is not.
    """
    attributes = message.get("Attributes") or {}
    raw = message.get("Body") or ""
    sent = attributes.get("SentTimestamp")
    summary: dict[str, Any] = {
        "message_id": message.get("MessageId"),
        "receive_count": int(str(attributes.get("ApproximateReceiveCount") or 0)),
        "sent_at": datetime.fromtimestamp(int(str(sent)) / 1000, UTC)
        if str(sent).isdigit()
        else None,
        "group": attributes.get("MessageGroupId"),
        "size": len(raw.encode("utf-8", "replace")),
        "task": None,
        "task_id": None,
        "retries": None,
        "eta": None,
        "preview": None,
        "note": None,
    }
    envelope = _json_or_base64_json(raw)
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    if not isinstance(headers, dict) or "task" not in headers:
        summary["note"] = _("Not a Celery message (its body is not kombu's JSON envelope).")
        summary["preview"] = scrub(_printable(str(raw)))
        return summary
    summary.update(
        task=str(headers.get("task")),
        task_id=str(headers.get("id")),
        retries=headers.get("retries"),
        eta=headers.get("eta"),
    )
    body: Any = envelope.get("body")
    properties = envelope.get("properties") if isinstance(envelope.get("properties"), dict) else {}
    if properties.get("body_encoding") == "base64" and isinstance(body, str):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8", "replace")
        except (ValueError, binascii.Error):
            summary["note"] = _("The task payload is not valid base64.")
    if isinstance(body, str):
        parsed = _json_or_base64_json(body)
        body = parsed if parsed is not None else body
    if isinstance(body, list) and len(body) >= 2:
        body = {"args": body[0], "kwargs": body[1]}
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, default=str)
    summary["preview"] = scrub(_printable(text))
    return summary
