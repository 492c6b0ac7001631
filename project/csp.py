"""The example project's Content-Security-Policy: strict, sent on every response.

No inline script, style or event handler, nothing from another origin: the
admin and sqs_broker's pages need none. Django 6.0 and later send it with
their own ``ContentSecurityPolicyMiddleware`` from ``SECURE_CSP``; on Django
5.2, which has no CSP support, :class:`StrictCSPMiddleware` sends the same
header. Either way a header set by a view or an outer layer is left alone.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

#: ``SECURE_CSP``'s shape: directive -> sources (Django's ``CSP.SELF`` is ``"'self'"``).
POLICY: dict[str, list[str]] = {
    "default-src": ["'self'"],
    # Not covered by default-src: where a page may be framed, post forms, set <base>.
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'none'"],
    "object-src": ["'none'"],
}

#: The header's value, as Django 6's middleware writes it from POLICY.
HEADER = "; ".join(f"{name} {' '.join(sources)}" for name, sources in POLICY.items())


class StrictCSPMiddleware:
    """Django 5.2's stand-in for ``django.middleware.csp.ContentSecurityPolicyMiddleware``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", HEADER)
        return response
