"""What is safe to show: masked URLs, scrubbed text and Django's error reports.

This module alone decides what may leave the process. Pages, JSON, metrics,
command output, logs and error reports pass their text through it:

* :func:`mask_url` hides the password (and most of the user) of a URL;
* :func:`known_secrets` collects every secret the configuration holds, and
  :func:`scrub` replaces each of them, in any spelling kombu or boto3 may
  print (raw, ``safequote``-d, percent-encoded), with a fixed mask;
* :class:`SafeExceptionReporterFilter` and :class:`SafeExceptionReporter`
  keep them out of Django's technical 500 page and error e-mails;
* :class:`SecretLogFilter` keeps them out of log records;
* :func:`celery_bugreport` keeps them out of ``celery report``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.safestring import SafeString, mark_safe
from django.views.debug import ExceptionReporter
from django.views.debug import SafeExceptionReporterFilter as DjangoFilter
from kombu.utils.url import safequote, url_to_parts

from sqs_broker.settings import check_broker_url

MASK = "********"

#: scheme://user:password@ — the password ends at the last '@' before the host.
#: It may hold '/', '?', '#' and '@' when the URL was written without quoting
#: (an AWS secret often holds '/'): all of it is the password, never the host.
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):"
    r"(?P<password>[^\s'\"<>]*)@"
)
#: scheme://token@ — user info without a password, often a token on its own.
_URL_USER_ONLY = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s'\"<>]+)@")

#: Secrets shorter than this are not scrubbed from free text: replacing "a"
#: everywhere would mangle output without protecting anything.
MIN_SECRET_LENGTH = 6

#: Environment variables whose values are secrets wherever they appear.
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def mask_url(url: str) -> str:
    """``url`` with its password masked and its user cut to four characters."""
    if not isinstance(url, str) or "://" not in url:  # the common case, a third of the cost
        return url

    def hide(match: re.Match[str]) -> str:
        user = unquote(match["user"])
        shown = f"{user[:4]}{MASK}" if len(user) > 4 else user
        return f"{match['scheme']}{quote(shown, safe='*')}:{MASK}@"

    return _URL_USER_ONLY.sub(rf"\g<scheme>{MASK}@", _URL_CREDENTIALS.sub(hide, url))


def url_has_credentials(url: str) -> bool:
    """Whether ``url`` carries a user or password before its host."""
    match = _URL_CREDENTIALS.search(url or "")
    return bool(match and (match["user"] or match["password"]))


def _spellings(secret: str) -> set[str]:
    return {secret, safequote(secret), quote(secret, safe=""), quote(secret)}


def _secrets_of_options(options: Mapping[str, Any] | None) -> Iterable[str]:
    for queue in ((options or {}).get("predefined_queues") or {}).values():
        if isinstance(queue, Mapping):
            secret = queue.get("secret_access_key")
            if isinstance(secret, str):
                yield secret


def known_secrets(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Every secret value the configuration holds, in each spelling it may take."""
    env = os.environ if env is None else env
    found = tuple(env.get(name) or "" for name in SECRET_VARIABLES) + _settings_secrets()
    return _every_spelling(found)


_settings_cache: dict[str, tuple[str, ...]] = {}


def _settings_secrets() -> tuple[str, ...]:
    """The secrets in Django's settings, read once until a setting changes.

    Every log record asks for them; reading four settings and parsing two
    URLs each time would cost more than the rest of the scrubbing.
    """
    if not settings.configured:
        return ()
    cached = _settings_cache.get("secrets")
    if cached is not None:
        return cached
    found: list[str] = []
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        value = getattr(settings, name, None)
        if isinstance(value, str):
            found.extend(unquote(m["password"]) for m in _URL_CREDENTIALS.finditer(value))
    found.extend(_secrets_of_options(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None)))
    token = getattr(settings, "SQS_BROKER_API_TOKEN", None)
    if isinstance(token, str):
        found.append(token)
    _settings_cache["secrets"] = result = tuple(found)
    return result


@receiver(setting_changed)
def _forget_settings_secrets(**kwargs: Any) -> None:
    # override_settings (and pytest-django's settings fixture) send this;
    # Django's settings are otherwise fixed once the process has started.
    _settings_cache.clear()


# Keyed on the secrets themselves, so a changed setting or variable is never
# served stale; the cache only spares every log record the quoting work.
@functools.lru_cache(maxsize=16)
def _every_spelling(found: tuple[str, ...]) -> frozenset[str]:
    spellings: set[str] = set()
    for secret in found:
        if len(secret) >= MIN_SECRET_LENGTH:
            spellings |= _spellings(secret)
    return frozenset(spellings)


@functools.lru_cache(maxsize=16)
def _longest_first(pool: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(pool, key=len, reverse=True))


#: Secrets the configuration does not know in advance (temporary STS keys,
#: signed request headers) but that botocore prints at DEBUG level: the
#: X-Amz-Security-Token header (request repr and canonical request), and
#: SecretAccessKey / SessionToken in AssumeRole responses, XML or JSON.
_SECRET_FIELDS = (
    re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s,}&]+"),
    re.compile(r"(<(?:SecretAccessKey|SessionToken)>)[^<]*(?=</)"),
    re.compile(
        r"(?i)(['\"]?(?:aws_)?(?:secret_?access_?key|session_?token)['\"]?\s*[:=]\s*b?['\"])[^'\"]*"
    ),
)


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with URL passwords and every known secret replaced by the mask."""
    if not isinstance(text, str) or not text:
        return text
    text = mask_url(text)
    # Each field's name holds "secret" or "token": most text has neither, and
    # the patterns cost more than the rest of the scrubbing together.
    lowered = text.lower()
    if "secret" in lowered or "token" in lowered:
        for pattern in _SECRET_FIELDS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
    pool = known_secrets() if secrets is None else frozenset(secrets)
    # Longest first, so a secret is never half-replaced by one of its parts.
    for secret in _longest_first(pool):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub_data(value: Any, secrets: Iterable[str] | None = None) -> Any:
    """``value`` (nested dicts, lists, strings) with every string scrubbed."""
    pool = known_secrets() if secrets is None else frozenset(secrets)
    if isinstance(value, str):
        return scrub(value, pool)
    if isinstance(value, Mapping):
        return {key: scrub_data(item, pool) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_data(item, pool) for item in value)
    return value


def _url_secrets(conf: Any) -> tuple[str, ...]:
    found: list[str] = []
    for name in ("broker_url", "broker_read_url", "broker_write_url", "result_backend"):
        value = conf.get(name)
        if isinstance(value, str):
            found.extend(unquote(m["password"]) for m in _URL_CREDENTIALS.finditer(value))
    return tuple(found)


def celery_bugreport(app: Any) -> str:
    """Celery's bug report (``celery report``) with every secret of the app masked.

    Celery masks a URL only under the key ``broker_url``; read through
    Django's settings the key is ``CELERY_BROKER_URL``, and the report (which
    Celery's issue template asks users to paste) printed the secret.
    """
    from celery.app.utils import bugreport

    pool = known_secrets() | _every_spelling(_url_secrets(app.conf))
    return scrub(bugreport(app), pool)


def install_report_masking(app: Any) -> None:
    """Make ``app.bugreport()`` (``celery report``) mask secrets; safe to call twice."""
    if not getattr(app.bugreport, "masks_secrets", False):
        report = functools.partial(celery_bugreport, app)
        report.masks_secrets = True  # type: ignore[attr-defined]
        app.bugreport = report


class _Shown:
    """A value rendered in advance, so the report shows its scrubbed repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class SafeExceptionReporterFilter(DjangoFilter):
    """Django's filter, plus broker URLs, known secrets and frame variables.

    Django hides settings whose *name* looks secret, but ``CELERY_BROKER_URL``
    does not, and local variables in kombu's or boto3's frames are shown as is.
    """

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CREDENTIAL", flags=re.I
    )

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return scrub(cleansed)
        return cleansed

    def get_traceback_frame_variables(  # type: ignore[override]  # Django iterates, nothing more
        self, request: Any, tb_frame: Any
    ) -> list[tuple[str, Any]]:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        pool = known_secrets()
        shown = []
        for name, value in variables:
            try:
                text = repr(value)
            except Exception:  # a broken __repr__ must not break the error page
                text = f"<{type(value).__name__} object (repr failed)>"
            shown.append((name, _Shown(scrub(text, pool))))
        return shown


class SafeExceptionReporter(ExceptionReporter):
    """Django's reporter with every known secret scrubbed from its output.

    The exception message and the source lines are not filtered by Django at
    all; scrubbing the finished page covers them too.
    """

    def get_traceback_html(self) -> SafeString:
        # Secrets are scrubbed in their HTML-escaped spelling as well.
        from django.utils.html import escape

        pool = known_secrets()
        html = str(super().get_traceback_html())
        # Still the page Django rendered, only with secrets replaced: safe as it was.
        return mark_safe(scrub(html, pool | {str(escape(s)) for s in pool}))  # noqa: S308

    def get_traceback_text(self) -> SafeString:
        return mark_safe(scrub(str(super().get_traceback_text())))  # noqa: S308


_scrubbing = threading.local()


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """``record`` with secrets scrubbed from its message, traceback and stack, in place.

    Never raises: a log call must not fail because of its message.
    """
    if getattr(_scrubbing, "active", False):  # a record logged while scrubbing
        return record
    _scrubbing.active = True
    try:
        pool = known_secrets()
        message = record.getMessage()
        cleaned = scrub(message, pool)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            cleaned = scrub(text, pool)
            # Only when it changes, so handlers keep their own traceback format.
            if cleaned != text:
                record.exc_text = cleaned
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text, pool)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, pool)
    except Exception:  # noqa: S110 - logging must never break the caller
        pass
    finally:
        _scrubbing.active = False
    return record


class SecretLogFilter(logging.Filter):
    """Scrubs known secrets from a record's message before a handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


def install_log_scrubbing() -> None:
    """Scrub every record of every logger as it is created; safe to call twice.

    A record factory rather than handler filters: Django's LOGGING, Celery's
    worker and the user add handlers after the app is ready, and records of
    botocore, kombu or urllib3 reach handlers that no filter of ours is on.
    The factory runs only for records a logger's level lets through.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "scrubs_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(previous(*args, **kwargs))

    factory.scrubs_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


#: Shown instead of the endpoint when the broker URL cannot be parsed.
UNPARSABLE_URL = "(CELERY_BROKER_URL cannot be parsed: quote its key and secret)"

#: Environment variables that tell where boto3's default chain finds credentials.
#: Only their presence is shown, never their value.
_CHAIN_HINTS = (
    ("AWS_WEB_IDENTITY_TOKEN_FILE", "web identity (IRSA / OIDC role)"),
    ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "container role (ECS task role)"),
    ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "container role"),
    ("AWS_PROFILE", "shared credentials profile"),
)


def displayable_config(app: Any = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The broker settings that are safe to show, picked by an allow-list.

    Nothing is copied wholesale: each field is named here, so a new secret
    option never shows up on a page by accident. Credentials appear only as
    where they come from, never as a key, secret or token.
    """
    if app is None:
        from celery import current_app

        app = current_app._get_current_object()
    env = os.environ if env is None else env
    conf = app.conf
    options = dict(conf.broker_transport_options or {})
    broker = conf.broker_url or "sqs://"
    endpoint = None
    try:
        check_broker_url(broker)
        parts = url_to_parts(broker)
        hostname, port = parts.hostname, parts.port
    except (ImproperlyConfigured, ValueError):
        # A URL set in a settings module with an unquoted secret: its "host"
        # and "port" are pieces of the secret, so nothing of it is shown.
        hostname, port = None, None
        endpoint = UNPARSABLE_URL
    if hostname:
        scheme = "https" if options.get("is_secure") else "http"
        shown_port = f":{port}" if port else ""
        endpoint = mask_url(f"{scheme}://{hostname}{shown_port}")
    predefined = options.get("predefined_queues") or {}
    if url_has_credentials(broker):
        main = "url"
    elif env.get("AWS_ACCESS_KEY_ID"):
        main = "environment"
    else:
        main = "chain"
    chain = next((label for name, label in _CHAIN_HINTS if env.get(name)), None)
    return {
        "region": options.get("region"),
        "endpoint": endpoint,
        "queue_name_prefix": options.get("queue_name_prefix", "") or "",
        "polling_interval": options.get("polling_interval"),
        "wait_time_seconds": options.get("wait_time_seconds"),
        "visibility_timeout": options.get("visibility_timeout"),
        "predefined_queues": sorted(predefined),
        "credentials": {
            # "url": keys in the broker URL; "environment": AWS_ACCESS_KEY_ID and
            # friends; "chain": boto3's default chain (profile, container or
            # instance role), resolved by boto3 without the app seeing a key.
            "source": main,
            "chain_hint": chain if main == "chain" else None,
            "session_token": bool(env.get("AWS_SESSION_TOKEN")) and main == "environment",
            "sts_role_arn": options.get("sts_role_arn"),
            "per_queue_keys": sorted(
                name
                for name, spec in predefined.items()
                if isinstance(spec, Mapping) and spec.get("access_key_id")
            ),
        },
    }
