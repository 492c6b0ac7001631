"""Real-browser tests of the dashboard: Playwright for Python driving Debian's chromium.

One browser per module; the Django app runs in pytest-django's live_server
thread and talks to the moto server like any deployment talks to SQS.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from project.csp import HEADER
from tests.support.browser import MARKS, WATCH_CSP
from tests.support.env import base_env, make_app
from tests.support.queues import queue_with_dlq

# Playwright's sync API runs an event loop in this thread; Django's ORM calls
# made here (creating the user) are still plain synchronous calls.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = MARKS


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _login(page, live_server) -> None:
    User.objects.create_superuser("admin", "admin@example.com", "pw-for-browser-tests")
    page.goto(f"{live_server.url}/admin/login/?next=/admin/sqs_broker/dashboard/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw-for-browser-tests")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/sqs_broker/dashboard/")


def _watch_csp(page) -> list[str]:
    """CSP reports from the console as well (those of a page that is gone by the end)."""
    console: list[str] = []
    page.add_init_script(WATCH_CSP)
    page.on(
        "console",
        lambda m: console.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return console


def _depth(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_dashboard__refresh_in_place_purge_and_chinese(page, live_server, sqs, unique):
    """Under a strict CSP: figures refresh in place, pause on a hidden tab; typed purge; zh-hans."""
    from playwright.sync_api import expect

    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    console = _watch_csp(page)
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "/sqs/stats.json" in r.url else None)
    with override_settings(
        SQS_BROKER_CELERY_APP=app,
        SQS_BROKER_CACHE_TTL=0,
        SQS_BROKER_REFRESH_SECONDS=1,
    ):
        _login(page, live_server)
        response = page.goto(f"{live_server.url}/admin/sqs_broker/dashboard/")
        assert response.headers["content-security-policy"] == HEADER
        row = page.locator(f'tr[data-queue="{unique}-celery"]')
        expect(row.locator("td.visible")).to_have_text("0")
        page.evaluate("window.__notReloaded = true")
        for i in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=str(i))
        # No click and no reload: the figures come from stats.json in place.
        expect(row.locator("td.visible")).to_have_text("5")
        assert page.evaluate("window.__notReloaded") is True
        assert fetched, "the refresh read stats.json"

        # A hidden tab asks nothing; back on the tab it refreshes at once.
        page.evaluate(
            """Object.defineProperty(document, "visibilityState", {configurable: true,
                   get: function () { return window.__hidden ? "hidden" : "visible"; }});
               window.__hidden = true;
               document.dispatchEvent(new Event("visibilitychange"));"""
        )
        page.wait_for_timeout(300)  # a request already under way may finish
        before = len(fetched)
        page.wait_for_timeout(2500)
        assert len(fetched) == before, "a hidden tab kept refreshing"
        page.evaluate(
            """window.__hidden = false; document.dispatchEvent(new Event("visibilitychange"));"""
        )
        page.wait_for_timeout(500)
        assert len(fetched) > before

        page.click("#sqs-refresh-toggle")
        expect(page.locator(".sqs-refresh-off")).to_be_visible()

        row.get_by_role("link", name="Purge").click()
        page.wait_for_url(f"**/queue/{unique}-celery/purge/")
        expect(page.locator("#content")).to_contain_text("60 seconds")
        assert _depth(sqs, url) == 5  # the confirmation page changed nothing
        button = page.get_by_role("button", name="Yes, purge it")
        expect(button).to_be_disabled()
        page.fill("#sqs-confirm-name", "celery")
        expect(button).to_be_disabled()
        page.fill("#sqs-confirm-name", f"{unique}-celery")
        button.click()
        page.wait_for_url("**/admin/sqs_broker/dashboard/")
        expect(page.locator(".messagelist .success")).to_contain_text("Purge of")
        assert _depth(sqs, url) == 0

        page.select_option("#sqs-language-select", "zh-hans")
        page.wait_for_load_state()
        expect(page.locator("h1")).to_have_text("SQS 仪表盘")
        expect(page.locator("#sqs-queues h2")).to_have_text("队列")
        expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
        assert page.evaluate("window.__csp") == []
    assert console == []


def test_dashboard__phone_width_and_dark_theme(browser, live_server, sqs, unique):
    """At 390 px: cards, no horizontal scroll, no queue name split, health first; dark colours."""
    from playwright.sync_api import expect

    # Names as long as real ones get: the old rule split them mid-word at this width.
    prefix = f"{unique}-notifications-"
    _url, dlq = queue_with_dlq(sqs, f"{prefix}celery", f"{prefix}celery-dlq")
    sqs.send_message(QueueUrl=dlq, MessageBody="dead")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=prefix))
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = context.new_page()
    console = _watch_csp(page)
    try:
        with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_REFRESH_SECONDS=0):
            _login(page, live_server)
            row = page.locator(f'tr[data-queue="{prefix}celery"]')
            expect(row).to_be_visible()
            # Each queue name is on one line (the old rule split "celery-dlq" as "celer / y-dlq").
            for name in row.locator("a.sqs-qname").all():
                assert name.evaluate("e => e.getClientRects().length") == 1, name.inner_text()
                box = name.bounding_box()
                line = name.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 20")
                assert box["height"] < 1.5 * line, (name.inner_text(), box)
            # Problems first: the health strip, red for the dead letter, above the queues.
            strip = page.locator('#sqs-health li[data-health="dead_letters"]')
            expect(strip).to_have_class("sqs-sev-error")
            assert strip.bounding_box()["y"] < row.bounding_box()["y"]
            assert page.evaluate("window.__csp") == []
            shot = os.environ.get("SQS_BROKER_SCREENSHOT_DIR")
            if shot:
                page.screenshot(path=str(Path(shot) / "dashboard-phone-dark.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 400, width
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(18, 18, 18)", background
    finally:
        context.close()
    assert console == []


def test_dashboard__backoff_dlq_and_history(page, live_server, sqs, unique):
    """A predefined queue's backoff table follows kombu, its DLQ depth and trend are drawn.

    With SQS_BROKER_SCREENSHOT_DIR set, the page is saved as dashboard.png there
    (docs/dashboard.png is made this way).
    """
    import json
    import math
    from datetime import UTC, datetime, timedelta

    from playwright.sync_api import expect

    from sqs_broker.models import QueueSample

    main, dlq = queue_with_dlq(
        sqs,
        f"{unique}-celery",
        f"{unique}-celery-dlq",
        VisibilityTimeout="1800",
        ReceiveMessageWaitTimeSeconds="10",
    )
    reports = sqs.create_queue(
        QueueName=f"{unique}-reports", Attributes={"ReceiveMessageWaitTimeSeconds": "10"}
    )["QueueUrl"]
    for i in range(42):
        sqs.send_message(QueueUrl=main, MessageBody=f"task {i}")
    sqs.receive_message(QueueUrl=main, MaxNumberOfMessages=3, VisibilityTimeout=600)
    sqs.send_message(QueueUrl=main, MessageBody="later", DelaySeconds=300)
    for i in range(7):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"failed {i}")
    for i in range(4):
        sqs.send_message(QueueUrl=reports, MessageBody=f"report {i}")
    predefined = {
        "celery": {
            "url": main,
            "backoff_policy": {"1": 10, "2": 20, "3": 40, "4": 80},
            "backoff_tasks": ["project.demo.tasks.flaky"],
        },
        "reports": {"url": reports},
    }
    app = make_app(
        base_env(SQS_PREDEFINED_QUEUES=json.dumps(predefined), SQS_VISIBILITY_TIMEOUT="1800")
    )
    now = datetime.now(UTC)
    QueueSample.objects.bulk_create(
        QueueSample(
            queue=name,
            sampled_at=now - timedelta(minutes=5 * (72 - i)),
            visible=int(base + base * 0.6 * math.sin(i / 6) + i * scale),
            in_flight=i % 4,
            delayed=0,
        )
        for name, base, scale in (("celery", 30, 0.2), (f"{unique}-celery-dlq", 2, 0.07))
        for i in range(72)
    )
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_REFRESH_SECONDS=30):
        _login(page, live_server)
        row = page.locator('tr[data-queue="celery"]')
        expect(row.locator("td.visible")).to_have_text("39")
        expect(row.locator("td.in-flight")).to_have_text("3")
        expect(row.locator("td.delayed")).to_have_text("1")
        expect(row.locator(".dlq-visible")).to_have_text("7")
        expect(row.locator("svg.sqs-spark polyline")).to_have_count(2)  # queue and its DLQ
        # Backoff policies fold away (problems come first); a click opens them.
        page.click("#sqs-backoff > summary")
        card = page.locator("#backoff-celery")
        cells = card.locator("tbody tr").all_inner_texts()
        assert [c.split() for c in cells] == [
            ["1", "—", "0"],
            ["2", "10", "10"],
            ["3", "20", "30"],
            ["4", "40", "70"],
            ["5", "80", "150"],
        ]
        expect(card.locator("svg.sqs-chart rect")).to_have_count(4)
        expect(card).to_contain_text("project.demo.tasks.flaky")
        shot = os.environ.get("SQS_BROKER_SCREENSHOT_DIR")
        if shot:
            page.screenshot(path=str(Path(shot) / "dashboard.png"), full_page=True)


def test_dashboard__task_box_and_selective_move_with_progress(page, live_server, sqs, unique):
    """Under a strict CSP: find a failed task by id; move back only one task's dead letters."""
    import json

    from django_celery_results.models import TaskResult
    from playwright.sync_api import expect

    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    for i in range(3):
        name = "t.flaky" if i < 2 else "t.other"
        app.send_task(name, queue="celery-dlq", task_id=f"{unique}-{i}")
    failure = {"exc_type": "TimeoutError", "exc_message": ["slow"], "exc_module": "builtins"}
    TaskResult.objects.create(
        task_id=f"{unique}-0",
        task_name="t.flaky",
        status="FAILURE",
        result=json.dumps(failure),
        traceback='Traceback (most recent call last):\n  File "t.py"\nTimeoutError: slow\n',
    )
    console = _watch_csp(page)
    with override_settings(SQS_BROKER_CELERY_APP=app, SQS_BROKER_CACHE_TTL=0):
        _login(page, live_server)
        page.fill("#sqs-task-id", f"{unique}-0")
        page.locator("#sqs-task-box").get_by_role("button").click()
        result = page.locator("#sqs-task-result")
        expect(result.locator("td.state")).to_have_text("FAILURE")
        expect(result).to_contain_text("TimeoutError: slow")
        assert page.evaluate("window.__csp") == []

        page.goto(f"{live_server.url}/admin/sqs_broker/dashboard/")
        row = page.locator(f'tr[data-queue="{unique}-celery"]')
        row.get_by_role("link", name="Move back from DLQ").click()
        page.fill("#sqs-move-task", "t.flaky")
        page.get_by_role("button", name="Yes, move them back").click()
        move = page.locator("#sqs-move")
        # The page drives the steps itself until the move is done.
        expect(move).to_have_attribute("data-state", "done", timeout=30_000)
        expect(move.locator('[data-field="moved"]')).to_have_text("2")
        expect(move.locator('[data-field="skipped"]')).to_have_text("1")
        assert page.evaluate("window.__csp") == []
    moved = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert len(moved.get("Messages", [])) == 2
    assert console == []


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_incident__strip_order_destructive_styling_breakdown_and_task_location(
    browser, live_server, sqs, unique, width, height
):
    """A DLQ of succeeded and failed tasks, at 1280 and 390 px, under a strict CSP.

    The strip reads in paging order; Purge is red and after Move back; the move form shows
    the breakdown before anything moves and the default move brings back only the failed
    tasks; the task page says where a task's message was and offers the move back.
    """
    import json

    from django_celery_results.models import TaskResult
    from playwright.sync_api import expect

    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    app = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    failure = json.dumps({"exc_type": "ValueError", "exc_message": ["boom"]})
    for i in range(5):
        name, status = ("t.slow", "SUCCESS") if i < 2 else ("t.fail", "FAILURE")
        app.send_task(name, queue="celery-dlq", task_id=f"{unique}-{i}")
        result = "1" if status == "SUCCESS" else failure
        TaskResult.objects.create(
            task_id=f"{unique}-{i}", status=status, result=result, task_name=name
        )
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = _watch_csp(page)
    try:
        with override_settings(
            SQS_BROKER_CELERY_APP=app, SQS_BROKER_CACHE_TTL=0, SQS_BROKER_REFRESH_SECONDS=0
        ):
            _login(page, live_server)
            items = page.locator("#sqs-health > li")
            order = [items.nth(i).get_attribute("data-health") for i in range(items.count())]
            assert order[:7] == [
                "stalled_workers",
                "lost_workers",
                "unconsumed_queues",
                "waiting_queues",
                "failing_tasks",
                "redelivered_tasks",
                "dead_letters",
            ]
            # Reading order on screen is the same (left to right, then down).
            boxes = [items.nth(i).bounding_box() for i in range(items.count())]
            spots = [(round(b["y"]), b["x"]) for b in boxes]
            assert spots == sorted(spots), spots
            expect(page.locator('#sqs-health li[data-health="dead_letters"]')).to_have_class(
                "sqs-sev-error"
            )
            row = page.locator(f'tr[data-queue="{unique}-celery"]')
            move = row.get_by_role("link", name="Move back from DLQ")
            purge = row.get_by_role("link", name="Purge")
            red = purge.evaluate("e => getComputedStyle(e).backgroundColor")
            calm = move.evaluate("e => getComputedStyle(e).backgroundColor")
            assert red != calm and red.startswith("rgb("), (red, calm)
            red_parts = [int(p) for p in red[4:-1].split(",")]
            assert red_parts[0] > 150 and red_parts[1] < 80, red  # red, as the admin's delete
            m, p = move.bounding_box(), purge.bounding_box()
            # After it, and set apart: to its right on the same line, or on a line below.
            assert p["x"] >= m["x"] + m["width"] + 8 or p["y"] >= m["y"] + m["height"] / 2, (m, p)
            assert page.evaluate("window.__csp") == []

            page.goto(f"{live_server.url}/admin/sqs_broker/dashboard/queue/{unique}-celery-dlq/")
            expect(page.locator("#sqs-dead-letter-of")).to_contain_text(f"{unique}-celery")
            peek = page.get_by_role("button", name="Peek at up to 10 messages")
            destructive = page.locator("#sqs-queue-destructive a.sqs-destructive")
            assert peek.evaluate("e => getComputedStyle(e).backgroundColor") != (
                destructive.evaluate("e => getComputedStyle(e).backgroundColor")
            )
            page.get_by_role("link", name=f"Triage and move back to {unique}-celery").click()

            groups = page.locator("#sqs-breakdown-groups tbody tr")
            expect(groups).to_have_count(2)
            expect(groups.nth(0)).to_contain_text("t.fail")
            expect(groups.nth(0).locator("td.count")).to_have_text("3")
            expect(page.locator('#sqs-move-preview li[data-choice="default"]')).to_contain_text(
                "A move takes 3 of the 5 sampled"
            )
            assert _depth(sqs, dlq) == 5 and _depth(sqs, source) == 0  # nothing moved yet
            submit = page.get_by_role("button", name="Yes, move them back")
            assert submit.evaluate("e => getComputedStyle(e).backgroundColor") != red
            delete = page.locator("#sqs-delete-succeeded a.sqs-destructive")
            assert delete.evaluate("e => getComputedStyle(e).backgroundColor") == red
            submit.click()
            expect(page.locator("#sqs-move")).to_have_attribute(
                "data-state", "done", timeout=30_000
            )
            expect(page.locator('#sqs-move [data-field="moved"]')).to_have_text("3")

            page.goto(f"{live_server.url}/admin/sqs_broker/dashboard/task/?id={unique}-0")
            location = page.locator("#sqs-task-location")
            expect(location).to_contain_text(f"In the dead-letter queue {unique}-celery-dlq")
            expect(
                location.get_by_role("link", name=f"Triage and move back to {unique}-celery")
            ).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= width + 10
            assert page.evaluate("window.__csp") == []
    finally:
        context.close()
    assert _depth(sqs, source) == 3 and _depth(sqs, dlq) == 2
    assert console == []
