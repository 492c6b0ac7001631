"""``SQS_PREDEFINED_QUEUES``: kombu's predefined queues, with their keys and backoff policies,
validated one field at a time."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from sqs_broker.limits import MAX_VISIBILITY_TIMEOUT
from sqs_broker.settings.parse import inline_or_file, shown

PREDEFINED_QUEUE_KEYS = frozenset(
    {"url", "access_key_id", "secret_access_key", "backoff_policy", "backoff_tasks", "region"}
)


def backoff_policy(queue: str, value: Any, source: str) -> dict[int, int]:
    where = f"{source}: queue {queue!r} backoff_policy"
    if not isinstance(value, dict) or not value:
        raise ImproperlyConfigured(
            f"{where} must be a non-empty object of attempt number -> seconds, "
            'e.g. {"1": 10, "2": 20}.'
        )
    policy: dict[int, int] = {}
    for key, delay in value.items():
        try:
            attempt = int(key)
        except (TypeError, ValueError):
            attempt = 0
        if attempt < 1 or str(key).strip() != str(attempt):
            raise ImproperlyConfigured(
                f"{where} has key {shown(str(key))}: keys must be positive integers "
                "(the SQS receive count)."
            )
        if isinstance(delay, bool) or not isinstance(delay, int):
            raise ImproperlyConfigured(
                f"{where} attempt {attempt} must be an integer number of seconds "
                f"from 0 to {MAX_VISIBILITY_TIMEOUT}."
            )
        if not 0 <= delay <= MAX_VISIBILITY_TIMEOUT:
            raise ImproperlyConfigured(
                f"{where} attempt {attempt} is {delay} s: SQS visibility timeouts "
                f"range from 0 to {MAX_VISIBILITY_TIMEOUT}."
            )
        policy[attempt] = delay
    return dict(sorted(policy.items()))


def predefined_queue(name: str, spec: Any, source: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ImproperlyConfigured(
            f'{source}: queue {name!r} must be an object such as {{"url": "https://..."}}.'
        )
    unknown = sorted(set(spec) - PREDEFINED_QUEUE_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"{source}: queue {name!r} has unknown keys {unknown}; allowed: "
            f"{sorted(PREDEFINED_QUEUE_KEYS)}."
        )
    url = spec.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+/.+", url):
        raise ImproperlyConfigured(
            f"{source}: queue {name!r} needs a 'url' such as "
            "https://sqs.eu-west-1.amazonaws.com/123456789012/my-queue."
        )
    url_fifo = url.rstrip("/").endswith(".fifo")
    if url_fifo != name.endswith(".fifo"):
        raise ImproperlyConfigured(
            f"{source}: queue {name!r} and its URL disagree on FIFO: a FIFO queue's "
            "name and URL both end with .fifo, a standard queue's neither."
        )
    queue: dict[str, Any] = {"url": url}
    key_id, secret = spec.get("access_key_id"), spec.get("secret_access_key")
    if (key_id is None) != (secret is None):
        raise ImproperlyConfigured(
            f"{source}: queue {name!r} needs both access_key_id and secret_access_key, or neither."
        )
    if key_id is not None:
        if not isinstance(key_id, str) or not isinstance(secret, str) or not key_id or not secret:
            raise ImproperlyConfigured(
                f"{source}: queue {name!r} access_key_id and secret_access_key must be "
                "non-empty strings."
            )
        # Raw on purpose: boto3 signs with these bytes, and a safequoted
        # secret here fails with "signature does not match".
        queue["access_key_id"] = key_id
        queue["secret_access_key"] = secret
    if "region" in spec:
        if not isinstance(spec["region"], str):
            raise ImproperlyConfigured(f"{source}: queue {name!r} region must be a string.")
        queue["region"] = spec["region"]
    if "backoff_policy" in spec:
        queue["backoff_policy"] = backoff_policy(name, spec["backoff_policy"], source)
    if "backoff_tasks" in spec:
        tasks = spec["backoff_tasks"]
        if not isinstance(tasks, list) or not all(isinstance(t, str) and t for t in tasks):
            raise ImproperlyConfigured(
                f"{source}: queue {name!r} backoff_tasks must be a list of task names."
            )
        queue["backoff_tasks"] = list(tasks)
    return queue


def predefined_queues(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``SQS_PREDEFINED_QUEUES`` (or ``_FILE``) parsed and validated."""
    text, source = inline_or_file(env, "SQS_PREDEFINED_QUEUES")
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position, not the text: the JSON may hold secrets.
        raise ImproperlyConfigured(
            f"{source} is not valid JSON at line {exc.lineno} column {exc.colno}."
        ) from None
    except (ValueError, RecursionError):  # nested too deep, say: no position to give
        raise ImproperlyConfigured(f"{source} is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ImproperlyConfigured(
            f'{source} must be a JSON object of queue name -> {{"url": ...}}.'
        )
    queues = {}
    for name, spec in data.items():
        if not name or len(name) > 80:
            raise ImproperlyConfigured(f"{source}: queue names must have 1 to 80 characters.")
        queues[name] = predefined_queue(name, spec, source)
    return queues
