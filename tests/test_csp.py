"""Tests of project/csp.py: the example sends a strict Content-Security-Policy, and its pages
work under it (the other browser tests in tests/test_browser.py run under it too)."""

from __future__ import annotations

import django
import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory

from project.csp import HEADER, POLICY, StrictCSPMiddleware
from tests.support.browser import CHROMIUM
from tests.test_browser import _login, _watch_csp


def _directives(header: str) -> dict[str, list[str]]:
    parts = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in parts}


def test_policy__strict():
    """Nothing from another origin, no inline code, no framing, no plugins, no <base>."""
    assert _directives(HEADER) == {
        "default-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
    assert "unsafe" not in HEADER


def test_settings__djangos_own_middleware_where_it_has_one():
    """Django 6 sends SECURE_CSP with its own middleware; 5.2 gets the example's stand-in."""
    if django.VERSION >= (6, 0):
        assert "django.middleware.csp.ContentSecurityPolicyMiddleware" in settings.MIDDLEWARE
        assert settings.SECURE_CSP == POLICY
        assert "project.csp.StrictCSPMiddleware" not in settings.MIDDLEWARE
    else:
        assert "project.csp.StrictCSPMiddleware" in settings.MIDDLEWARE


def test_strict_csp_middleware__leaves_a_header_already_set():
    """A view that sets its own policy keeps it, as with Django 6's middleware."""
    own = HttpResponse()
    own["Content-Security-Policy"] = "default-src 'none'"
    request = RequestFactory().get("/")
    assert StrictCSPMiddleware(lambda r: own)(request)["Content-Security-Policy"] == (
        "default-src 'none'"
    )
    plain = StrictCSPMiddleware(lambda r: HttpResponse())(request)
    assert plain["Content-Security-Policy"] == HEADER


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/admin/sqs_broker/dashboard/", "/nowhere/"])
def test_example__sends_the_header(client, path):
    """Every response of the example carries the policy: pages, redirects, errors."""
    response = client.get(path)
    assert _directives(response["Content-Security-Policy"]) == POLICY


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.usefixtures("sqs_endpoint")
def test_example__admin_and_dashboard_work_under_the_policy(browser, live_server, width):  # noqa: F811
    """Login, the admin index and the dashboard render and run their scripts: no violation."""
    from pathlib import Path

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = _watch_csp(page)
    try:
        response = page.goto(f"{live_server.url}/admin/login/")
        assert response.headers["content-security-policy"] == HEADER
        _login_form = page.locator("#id_username")
        assert _login_form.is_visible()
        _login(page, live_server)  # a form post and a redirect, both under form-action 'self'
        assert page.evaluate("typeof window.fetch") == "function"
        page.goto(f"{live_server.url}/admin/")
        assert page.locator("#content").is_visible()
        page.goto(f"{live_server.url}/admin/sqs_broker/dashboard/")
        assert page.locator("#sqs-queues").count() == 1
        # The admin's own stylesheet applied (a blocked one leaves the page unstyled).
        assert (
            page.evaluate("getComputedStyle(document.getElementById('header')).display") != "inline"
        )
        assert page.evaluate("window.__csp") == []
        assert console == []
    finally:
        context.close()
