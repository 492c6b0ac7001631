"""Reading one environment variable: booleans, bounded numbers, ``NAME`` or ``NAME_FILE``,
and error messages that never show a secret (see :func:`shown`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from contextvars import ContextVar

from django.core.exceptions import ImproperlyConfigured

TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
FALSE = frozenset({"0", "false", "no", "off", "n", "f", ""})
#: An endpoint URL: http(s)://host[:port], no path, no credentials.
ENDPOINT_RE = re.compile(r"^https?://[^/\s?#@]+(:\d{1,5})?/?$")


def raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be a boolean (true/false, 1/0, yes/no, on/off); got {shown(value)}."
    )


def integer(env: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    value = raw(env, name)
    if value is None:
        return default
    valid = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {valid}; got {shown(value)}.") from None
    if number < low or (high is not None and number > high):
        raise ImproperlyConfigured(f"{name} must be {valid}; got {number}.")
    return number


def number(env: Mapping[str, str], name: str, default: float, low: float) -> float:
    value = raw(env, name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < low:
        raise ImproperlyConfigured(
            f"{name} must be a finite number >= {low:g} (seconds); got {shown(value)}."
        )
    return number


#: The secrets of the environment being read, so that no message echoes a
#: value holding one (a secret pasted into the wrong variable, a URL password).
SECRETS: ContextVar[frozenset[str]] = ContextVar("sqs_broker_secrets", default=frozenset())
URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]+)@")
#: A URL with user info in any form: ``user:password@``, a lone ``token@``, or a
#: password whose unquoted '/' makes the '@' fall after the host.
URL_USERINFO = re.compile(r"://[^\s]*@")
JSON_SECRET = re.compile(r'"secret_access_key"\s*:\s*"((?:[^"\\]|\\.)*)"')


def secrets_in(env: Mapping[str, str]) -> frozenset[str]:
    found = [env.get(name) or "" for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
    for text in env.values():
        found += URL_PASSWORD.findall(text) + JSON_SECRET.findall(text)
    return frozenset(s.strip() for s in found if len(s.strip()) >= 6)


def holds_secret(value: str) -> bool:
    """Whether ``value`` has a URL's user info or a secret read from the environment in it."""
    return bool(URL_USERINFO.search(value)) or any(s in value for s in SECRETS.get())


def shown(value: str, limit: int = 40) -> str:
    """A non-secret value for an error message: quoted and cut short."""
    if holds_secret(value):
        return "(a value holding a secret, not shown)"
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


def inline_or_file(env: Mapping[str, str], name: str) -> tuple[str | None, str]:
    """``NAME``, or the content of the file ``NAME_FILE`` names; and which one it was."""
    path = raw(env, f"{name}_FILE")
    if path is None:
        return raw(env, name), name
    inline = raw(env, name)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{name}_FILE names a file that cannot be read ({exc.strerror})."
        ) from None
    except UnicodeDecodeError as exc:
        # The position, not the bytes: the file may hold a secret.
        raise ImproperlyConfigured(
            f"{name}_FILE names a file that is not UTF-8 text (byte {exc.start}); save it as UTF-8."
        ) from None
    # The same value in both is what export_file_secrets leaves behind (and
    # what a process started from this one inherits): not a conflict.
    if inline is not None and inline != text.strip():
        raise ImproperlyConfigured(f"Set either {name} or {name}_FILE, not both.")
    return text, f"{name}_FILE"


def read_secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE``."""
    value, source = inline_or_file(env, name)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise ImproperlyConfigured(f"{source} names an empty file.")
    return value
