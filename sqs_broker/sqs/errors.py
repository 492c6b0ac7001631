"""What a failed SQS, STS or CloudWatch call means: a short secret-free text, its code, its kind.

Every face that shows an error (the dashboard, ``sqs_check``, the findings)
words it here, so one failure reads the same everywhere, and the checks sort
it (endpoint down, bad credentials, denied, missing) by one rule.
"""

from __future__ import annotations

import re
from typing import Literal

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from sqs_broker.redact import scrub

#: The longest SQS error message shown; the rest is cut off.
MAX_ERROR_MESSAGE = 500


def error_text(exc: BaseException) -> tuple[str, str | None]:
    """A short, secret-free description of an SQS error and its code."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "ClientError"
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            code = "QueueDoesNotExist"
        operation = getattr(exc, "operation_name", "") or "call"
        message = str(error.get("Message", "")).strip()
        if message.lstrip().lower().startswith(("<!doctype", "<html")):
            # A web page, not an SQS error: moto's 500 for a call it does not implement, a
            # proxy's error page. Its markup tells an operator nothing; its status does.
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            message = (
                f"the endpoint answered HTTP {status} with a web page, not an SQS error "
                f"(it may not support {operation})"
            )
        elif len(message) > MAX_ERROR_MESSAGE:
            message = message[:MAX_ERROR_MESSAGE] + "…"
        return scrub(f"{code} on {operation}: {message}".strip()), code
    if isinstance(exc, BotoCoreError):
        return scrub(f"{type(exc).__name__}: {exc}"), "Unreachable"
    return scrub(f"{type(exc).__name__}: {exc}"), type(exc).__name__


Failure = Literal["unreachable", "credentials", "denied", "missing", "other"]

#: Error codes meaning the credentials themselves are wrong, expired or absent.
CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidSecurity",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "NoCredentials",
    }
)

#: Error codes meaning the credentials are valid but not allowed to do this.
#: SNS says ``AuthorizationError`` where SQS says ``AccessDenied``.
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AWS.SimpleQueueService.AccessDenied",
        "AuthorizationError",
    }
)


_XML_ERROR = r"<Code>([\w.]+)</Code>(?:\s*<Message>(.*?)</Message>)?"


def readable_error(text: str) -> tuple[str, str | None]:
    """``text`` with an XML ``ErrorResponse`` body made readable, and the code inside it.

    Some endpoints (moto's IAM enforcement, proxies) answer a JSON-protocol
    call with an XML error body; botocore then reports only the HTTP status.
    """
    match = re.search(_XML_ERROR, text or "", re.S)
    if not match:
        return text, None
    head = text[: text.find("<")].rstrip(": ")
    return f"{head}: {match[1]}: {match[2] or ''}".strip(": "), match[1]


def failure_kind(exc_or_code: BaseException | str | None, text: str | None = None) -> Failure:
    """What a failed call means: endpoint down, bad credentials, denied, missing, other.

    ``text`` (an :func:`error_text`) lets a bare HTTP status be read from the body.
    """
    if isinstance(exc_or_code, NoCredentialsError | PartialCredentialsError):
        return "credentials"
    unreachable = (
        EndpointConnectionError,
        ConnectTimeoutError,
        ReadTimeoutError,
        ConnectionClosedError,
    )
    if isinstance(exc_or_code, unreachable):
        return "unreachable"
    if isinstance(exc_or_code, BotoCoreError):
        # Parameter validation and the like: botocore refused before sending.
        return "other"
    code = exc_or_code
    if isinstance(exc_or_code, BaseException):
        text, code = error_text(exc_or_code)
    if isinstance(code, str) and code.isdigit() and text:
        code = readable_error(text)[1] or code
    if code == "Unreachable":
        return "unreachable"
    if code in CREDENTIAL_CODES:
        return "credentials"
    if code in DENIED_CODES:
        return "denied"
    if code == "QueueDoesNotExist":
        return "missing"
    return "other"
