"""The worker actions in a real browser: Playwright driving Debian's chromium, under the CSP.

The first two tests' workers answer through ``tests.support.remote.Control``
(the live server runs in this process); the last one's is a real worker.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from project.csp import HEADER
from sqs_broker.models import Revocation
from tests.support.browser import MARKS, WATCH_CSP
from tests.support.remote import ACTIVE, SCHEDULED, Control, beat, remote_app

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

DASHBOARD = "/admin/sqs_broker/dashboard/"

pytestmark = MARKS


@pytest.fixture
def control():
    """Two workers: celery@a (prefork, a running and a scheduled task) and celery@t (threads)."""
    ok = {
        "active": [],
        "reserved": [],
        "scheduled": [],
        "revoke": {"ok": "tasks flagged as revoked"},
    }
    fake = Control(
        {
            "celery@a": {**ok, "active": ACTIVE, "scheduled": SCHEDULED},
            "celery@t": ok,
        }
    )
    beat("celery@a")
    beat("celery@t", pool="threads")
    with override_settings(SQS_BROKER_CELERY_APP=remote_app(fake), SQS_BROKER_REFRESH_SECONDS=0):
        yield fake


def _open(browser, live_server, width: int):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    console: list[str] = []
    page.add_init_script(WATCH_CSP)
    page.on(
        "console",
        lambda m: console.append(m.text) if "Content Security Policy" in m.text else None,
    )
    User.objects.create_superuser("admin", "admin@example.com", "pw-for-browser-tests")
    page.goto(f"{live_server.url}/admin/login/?next={DASHBOARD}workers/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw-for-browser-tests")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{DASHBOARD}workers/")
    return context, page, console


def _screenshot(page, name: str) -> None:
    shot = os.environ.get("SQS_BROKER_SCREENSHOT_DIR")
    if shot:
        page.screenshot(path=str(Path(shot) / name), full_page=True)


def test_workers__revoke_with_terminate_and_typed_shutdown(browser, live_server, sqs, control):
    """At 1280 px under the CSP: tasks per worker, a revoke from the page, a typed shutdown."""
    from playwright.sync_api import expect

    context, page, console = _open(browser, live_server, 1280)
    try:
        response = page.goto(f"{live_server.url}{DASHBOARD}workers/")
        assert response.headers["content-security-policy"] == HEADER
        a = page.locator('.sqs-remote-worker[data-hostname="celery@a"]')
        expect(a.locator('tr[data-task-id="t-1"]')).to_contain_text("project.demo.add")
        expect(a.locator('tr[data-task-id="t-2"][data-kind="scheduled"]')).to_be_visible()
        t = page.locator('.sqs-remote-worker[data-hostname="celery@t"]')
        expect(t.locator(".sqs-no-resize")).to_contain_text("threads pool cannot grow")
        _screenshot(page, "workers.png")

        a.locator('tr[data-task-id="t-1"] a.sqs-revoke').click()
        page.wait_for_url("**/revoke/?id=t-1")
        expect(page.locator("#sqs-terminate-pools")).to_contain_text("celery@t (threads)")
        page.fill("#sqs-revoke-reason", "wrong input")
        page.check("#sqs-revoke-terminate")
        page.click("#sqs-confirm-submit")
        page.wait_for_url("**/task/?id=t-1")
        expect(page.locator("#sqs-task-revoked")).to_contain_text("Revoked by admin")
        messages = page.locator(".messagelist")
        expect(messages).to_contain_text("Revoke broadcast of t-1: done by celery@a, celery@t.")
        expect(messages).to_contain_text("the threads pool cannot terminate a task")
        assert Revocation.objects.get(task_id="t-1").reason == "wrong input"
        revokes = [kwargs for command, kwargs in control.calls if command == "revoke"]
        assert [(r["destination"], r.get("terminate")) for r in revokes] == [
            (None, None),
            (["celery@a"], True),
        ]

        page.goto(f"{live_server.url}{DASHBOARD}workers/")
        page.locator('.sqs-remote-worker[data-hostname="celery@a"] a.sqs-shutdown').click()
        submit = page.locator("#sqs-confirm-submit")
        expect(submit).to_be_disabled()  # dashboard.js, a static file: the CSP allows it
        page.fill("#sqs-confirm-name", "celery@a")
        expect(submit).to_be_enabled()
        submit.click()
        page.wait_for_url(f"**{DASHBOARD}workers/")
        expect(page.locator(".messagelist")).to_contain_text("Shutdown of celery@a: sent.")
        assert ("shutdown", {"destination": ["celery@a"], "reply": False}) in control.calls
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()
    assert console == []


def test_workers__phone_width(browser, live_server, control):
    """At 390 px: each task a card, the buttons on screen, no sideways scroll, no CSP report."""
    from playwright.sync_api import expect

    context, page, console = _open(browser, live_server, 390)
    try:
        row = page.locator('tr[data-task-id="t-1"]')
        expect(row).to_be_visible()
        assert row.evaluate("e => getComputedStyle(e).display") == "block"
        for button in ("a.sqs-revoke", "a.sqs-rate-limit"):
            box = row.locator(button).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (button, box)
        shutdown = page.locator('.sqs-remote-worker[data-hostname="celery@a"] a.sqs-shutdown')
        box = shutdown.bounding_box()
        assert box and box["x"] + box["width"] <= 390, box
        _screenshot(page, "workers-phone.png")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, width
        page.locator('.sqs-remote-worker[data-hostname="celery@a"] a.sqs-grow').click()
        expect(page.locator("#sqs-pool-n")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()
    assert console == []


def test_workers__real_worker_grows_its_pool_from_the_page(
    browser, live_server, start_worker, unique
):
    """A real prefork worker over moto's SNS and SQS: its row answers, and a grow is done by it."""
    from playwright.sync_api import expect

    from sqs_broker import control, remote
    from tests.support.env import base_env, make_app

    env = base_env(
        SQS_QUEUE_NAME_PREFIX=f"{unique}-",
        SQS_WAIT_TIME_SECONDS="1",
        SQS_REMOTE_CONTROL="true",
        SQS_BROKER_TELEMETRY_INTERVAL="1",
    )
    app = make_app(env)
    control.install(app)
    worker = start_worker(env, pool="prefork", extra=("--concurrency=1",))
    with override_settings(
        SQS_BROKER_CELERY_APP=app, SQS_BROKER_REMOTE_TIMEOUT=5, SQS_BROKER_REFRESH_SECONDS=0
    ):
        deadline = time.monotonic() + 60
        while not remote.live_workers() and time.monotonic() < deadline:
            time.sleep(0.5)  # its first heartbeat
        (live,) = remote.live_workers()
        context, page, console = _open(browser, live_server, 1280)
        try:
            # The dashboard's workers' panel links to the page.
            page.goto(f"{live_server.url}{DASHBOARD}")
            page.click("#sqs-remote-link a")
            page.wait_for_url(f"**{DASHBOARD}workers/")
            row = page.locator(f'.sqs-remote-worker[data-hostname="{live.hostname}"]')
            for _ in range(30):  # the mailbox subscribes as the worker starts
                if row.get_attribute("data-answered") == "yes":
                    break
                page.reload()
            expect(row).to_have_attribute("data-answered", "yes")
            row.locator("a.sqs-grow").click()
            page.fill("#sqs-pool-n", "2")
            page.click("#sqs-confirm-submit")
            page.wait_for_url(f"**{DASHBOARD}workers/")
            expect(page.locator(".messagelist")).to_contain_text(
                f"Pool of {live.hostname} grown by 2: done by {live.hostname}."
            )
            assert page.evaluate("window.__csp") == []
        finally:
            context.close()
    assert console == [], worker.output()[-2000:]
