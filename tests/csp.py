"""A strict Content-Security-Policy on every page the tests serve: ``default-src 'self'``.

Django 5.2 has no CSP setting of its own (6.0 does); this middleware sends the
header so the browser tests prove the pages need no inline script or style.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

POLICY = "default-src 'self'"


class StrictCSPMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response["Content-Security-Policy"] = POLICY
        return response
