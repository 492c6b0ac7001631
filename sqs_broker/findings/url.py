"""Findings about the broker URL and its credentials: E001, W001, E002, E003."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import unquote

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from sqs_broker import settings as environment
from sqs_broker.findings.base import Finding, make, register
from sqs_broker.redact import url_has_credentials
from sqs_broker.topology import Topology

if TYPE_CHECKING:
    from celery import Celery

_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


def _environment_credentials() -> tuple[str | None, str | None]:
    """The raw key and secret sqs_broker.settings reads, to compare the URL's with."""
    try:
        found = environment.credentials(os.environ)
    except ImproperlyConfigured:  # the settings said so already, at start
        return None, None
    return (found.access_key_id, found.secret_access_key) if found else (None, None)


def _quoted_twice(user: str, password: str) -> bool:
    """Whether the URL's key or secret, as kombu unquotes it, still carries a quoting.

    A '%' left after kombu's unquote usually means the URL was quoted twice.
    But a secret may legally contain '%': when the value is exactly the raw
    one the environment holds (SQS_CREDENTIALS_IN_URL builds the URL from it),
    it was quoted once and is right.
    """
    raw_user, raw_password = _environment_credentials()
    checks = [(user, raw_user), (password, raw_password)]
    return any("%" in value and value != raw for value, raw in checks)


def debug_with_url_credentials(debug: bool, *broker_urls: str | None) -> Finding | None:
    """E001: DEBUG together with credentials in a broker URL (main, read or write)."""
    if not debug or not any(url and url_has_credentials(url) for url in broker_urls):
        return None
    return make(
        "sqs_broker.E001",
        _(
            "DEBUG is on and the broker URL carries AWS credentials: Django's debug page "
            "and error reports could expose them."
        ),
        _(
            "Turn DEBUG off, or take the keys out of the URL: leave SQS_CREDENTIALS_IN_URL "
            "false so boto3 reads them from the environment, or use an IAM role."
        ),
    )


@register("offline", applies="any")
def unsafe_debug(app: Celery | Topology | None = None) -> Finding | None:
    """E001 for this process: Django's DEBUG with the broker URLs the worker really uses."""
    topo = Topology.of(app)
    return debug_with_url_credentials(bool(settings.DEBUG), topo.broker_url, *topo.other_urls)


@register("offline", applies="not_sqs")
def not_sqs(topo: Topology) -> Finding | None:
    """W001: the broker is something else than SQS."""
    if topo.is_sqs:
        return None
    url = topo.broker_url
    scheme = url.split("://", 1)[0] if "://" in url else url or "(none)"
    return make(
        "sqs_broker.W001",
        _("The broker is %(scheme)s://, not sqs://: the SQS checks were skipped.")
        % {"scheme": scheme.split(";", 1)[0]},
        _(
            "Leave CELERY_BROKER_URL unset so sqs_broker.settings builds an sqs:// URL, "
            "or remove sqs_broker if this project does not use SQS."
        ),
    )


@register("offline")
def url_credentials(topo: Topology) -> Finding | None:
    """E002: the URL's credentials do not parse back to the same key and secret."""
    url = topo.broker_url
    rest = url.split("://", 1)[1] if "://" in url else ""
    if "@" not in rest:
        return None
    creds = rest.rpartition("@")[0]
    broken = sorted({c for c in creds if c in "/?#"})
    if broken:
        # urlsplit ends the host part at the first of these, so kombu reads a
        # truncated secret and takes part of it for the host.
        return make(
            "sqs_broker.E002",
            _(
                "The broker URL's credentials contain an unescaped %(chars)s: kombu reads a "
                "truncated secret and a wrong host, and every call is refused."
            )
            % {"chars": " ".join(repr(c) for c in broken)},
            _(
                "Build the URL with kombu.utils.url.safequote on the key and the secret "
                "(SQS_CREDENTIALS_IN_URL=true does it), or keep the keys out of the URL."
            ),
        )
    user, sep, password = creds.partition(":")
    if _quoted_twice(unquote(user), unquote(password)):
        return make(
            "sqs_broker.E002",
            _(
                "The broker URL's credentials still contain a percent sign after kombu unquotes "
                "them: "
                "they were quoted twice, so kombu signs with a wrong secret."
            ),
            _(
                "Apply kombu.utils.url.safequote once to the raw key and secret "
                "(SQS_CREDENTIALS_IN_URL=true does it)."
            ),
        )
    if not user or not sep or not password:
        return make(
            "sqs_broker.E002",
            _("The broker URL has an access key without a secret, or a secret without a key."),
            _(
                "Write both as sqs://KEY:SECRET@ (each safequoted), or neither so boto3 "
                "finds credentials in the environment or an IAM role."
            ),
        )
    return None


@register("offline")
def encoded_predefined_credentials(topo: Topology) -> list[Finding]:
    """E003: predefined-queue keys that look URL-encoded."""
    found = []
    for name, spec in topo.predefined.items():
        if not isinstance(spec, Mapping):
            continue
        fields = [
            key
            for key in ("access_key_id", "secret_access_key")
            if isinstance(spec.get(key), str) and _ENCODED.search(spec[key])
        ]
        if fields:
            found.append(
                make(
                    "sqs_broker.E003",
                    _(
                        "The %(fields)s of this predefined queue look URL-encoded (%%XX): "
                        "boto3 signs with them as written and SQS answers 'The request "
                        "signature we calculated does not match the signature you provided'."
                    )
                    % {"fields": " and ".join(fields)},
                    _(
                        "Give predefined queues the raw key and secret; safequote belongs "
                        "only to credentials inside the broker URL."
                    ),
                    queue=name,
                )
            )
    return found
