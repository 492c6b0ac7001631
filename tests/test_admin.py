"""Tests of sqs_broker.admin: the dashboard, queue pages and actions, through Django's client."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.admin.models import LogEntry
from django.test import override_settings

import sqs_broker.cache
from sqs_broker import history, stats
from sqs_broker.localsqs import free_port
from sqs_broker.models import QueueSample
from tests.support.env import base_env, make_app
from tests.support.proxy import Proxy
from tests.support.queues import queue_with_dlq
from tests.support.users import user_with

DASHBOARD = "/admin/sqs_broker/dashboard/"


def _depth(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


@pytest.fixture
def app(unique):
    """A Celery app with this test's own prefix, served by the admin."""
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        yield celery


@pytest.fixture
def with_dlq(sqs, unique):
    """The app's queue with a dead-letter queue holding three messages."""
    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    for i in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"dead-{i}")
    return source, dlq


@pytest.mark.django_db
def test_dashboard__anonymous_redirects_to_login(client, app):
    """The admin asks anonymous visitors to log in."""
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_dashboard__staff_without_permission(client, app):
    """Staff without view_dashboard get 403 and no index entry."""
    client.force_login(user_with())
    assert client.get(DASHBOARD).status_code == 403
    assert DASHBOARD not in client.get("/admin/").content.decode()


@pytest.mark.django_db
def test_dashboard__shows_depths_and_dlq(client, sqs, unique, app, with_dlq):
    """Depths, the dead-letter queue's depth and maxReceiveCount are on the page."""
    source, _dlq = with_dlq
    for i in range(2):
        sqs.send_message(QueueUrl=source, MessageBody=str(i))
    client.force_login(user_with("view_dashboard"))
    assert DASHBOARD in client.get("/admin/").content.decode()
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-queue="{unique}-celery"' in html
    (row,) = [r for r in response.context["rows"] if r["q"]["name"] == f"{unique}-celery"]
    assert row["q"]["visible"] == 2
    assert row["q"]["dlq"] == {
        "name": f"{unique}-celery-dlq",
        "visible": 3,
        "max_receive_count": 5,
        "error": None,
    }
    # View permission only: no action buttons.
    assert "/purge/" not in html
    assert "/redrive/" not in html


class _Structure(HTMLParser):
    """Collects what a screen reader needs: header scopes, table names, control labels."""

    def __init__(self) -> None:
        super().__init__()
        self.th_without_scope = 0
        self.tables: list[dict[str, str | None]] = []
        self.ids: set[str] = set()
        self.label_for: set[str] = set()
        self.controls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "th" and a.get("scope") not in ("col", "row"):
            self.th_without_scope += 1
        if tag == "table":
            self.tables.append(a)
        if tag == "label" and a.get("for"):
            self.label_for.add(a["for"])
        if tag == "select" or (tag == "input" and a.get("type") not in ("hidden", "submit")):
            self.controls.append(a.get("id") or "")


@pytest.mark.django_db
def test_dashboard__headers_tables_and_controls_are_labelled(client, sqs, unique, app, with_dlq):
    """Every header cell has a scope, the main tables name their heading, every select a label."""
    client.force_login(user_with("view_dashboard", "purge_queue", "redrive_queue"))
    pages = {}
    for page in (DASHBOARD, f"{DASHBOARD}queue/{unique}-celery/"):
        pages[page] = found = _Structure()
        found.feed(client.get(page).content.decode())
        assert found.th_without_scope == 0, page
        assert all(c in found.label_for for c in found.controls), page
    dashboard = pages[DASHBOARD]
    assert len(dashboard.controls) >= 1  # the window select, at least
    titles = [
        t.get("aria-labelledby") for t in dashboard.tables if "sqs-table" in (t["class"] or "")
    ]
    assert titles[:3] == ["sqs-queues-title", "sqs-workers-title", "sqs-tasks-title"]
    assert set(titles[:3]) <= dashboard.ids


@pytest.mark.django_db
def test_dashboard__sparkline_from_samples(client, sqs, unique, app):
    """Samples of the last hours draw a sparkline; the queue page draws the larger chart."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    now = datetime.now(UTC)
    QueueSample.objects.bulk_create(
        QueueSample(
            queue=f"{unique}-celery",
            sampled_at=now - timedelta(minutes=10 - i),
            visible=i,
            in_flight=0,
            delayed=0,
        )
        for i in range(5)
    )
    client.force_login(user_with("view_dashboard"))
    html = client.get(DASHBOARD).content.decode()
    assert 'class="sqs-spark"' in html
    page = client.get(f"{DASHBOARD}queue/{unique}-celery/")
    assert page.status_code == 200
    assert page.context["chart"]["count"] == 5
    assert page.context["chart"]["top"] == 4
    assert "<polyline" in page.content.decode()


@pytest.mark.django_db
@pytest.mark.usefixtures("sqs_endpoint")
def test_queue_page__unknown_queue_is_404(client, app):
    """A queue the app does not use has no page."""
    client.force_login(user_with("view_dashboard", "purge_queue"))
    assert client.get(f"{DASHBOARD}queue/not-ours/").status_code == 404
    assert client.get(f"{DASHBOARD}queue/not-ours/purge/").status_code == 404


@pytest.mark.django_db
def test_purge__needs_permission(client, sqs, unique, app):
    """Without purge_queue both the confirmation page and the POST are refused."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    assert client.get(f"{DASHBOARD}queue/{unique}-celery/purge/").status_code == 403
    assert client.post(f"{DASHBOARD}queue/{unique}-celery/purge/").status_code == 403
    assert _depth(sqs, url) == 1


@pytest.mark.django_db
def test_purge__confirm_then_post(client, sqs, unique, app):
    """GET only confirms; POST purges, logs a LogEntry; a second purge says 60 s."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    client.force_login(user_with("view_dashboard", "purge_queue"))
    assert "/purge/" in client.get(DASHBOARD).content.decode()
    page = client.get(f"{DASHBOARD}queue/{unique}-celery/purge/")
    assert page.status_code == 200
    assert "60 seconds" in page.content.decode()
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()
    assert _depth(sqs, url) == 3
    mistyped = client.post(f"{DASHBOARD}queue/{unique}-celery/purge/", {"confirm": "celery"})
    assert mistyped.status_code == 400
    assert "Nothing was purged" in mistyped.content.decode()
    assert _depth(sqs, url) == 3
    confirm = {"confirm": f"{unique}-celery"}
    response = client.post(f"{DASHBOARD}queue/{unique}-celery/purge/", confirm, follow=True)
    assert response.status_code == 200
    assert _depth(sqs, url) == 0
    entry = LogEntry.objects.get(object_id=f"{unique}-celery")
    assert "Purged" in entry.change_message
    # Recent actions reads what was done, to what, and how many; a deletion's icon.
    assert entry.object_repr == f"Purged SQS queue {unique}-celery (about 3 messages)."
    assert entry.is_deletion()
    assert entry.content_type.model == "dashboard"
    again = client.post(f"{DASHBOARD}queue/{unique}-celery/purge/", confirm, follow=True)
    text = again.content.decode()
    assert "one purge per queue every 60 seconds" in text
    assert LogEntry.objects.filter(object_id=f"{unique}-celery").count() == 1


@pytest.mark.django_db
def test_purge__needs_csrf(sqs, unique, app):
    """A POST without the CSRF token changes nothing."""
    from django.test import Client

    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_with("view_dashboard", "purge_queue"))
    assert client.post(f"{DASHBOARD}queue/{unique}-celery/purge/").status_code == 403
    assert _depth(sqs, url) == 1


@pytest.mark.django_db
def test_redrive__moves_everything_back_once(client, sqs, unique, app, with_dlq):
    """POST moves every dead-letter message back exactly once and logs it."""
    source, dlq = with_dlq
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    page = client.get(f"{DASHBOARD}queue/{unique}-celery/redrive/")
    assert page.status_code == 200
    assert f"{unique}-celery-dlq" in page.content.decode()
    assert _depth(sqs, dlq) == 3
    response = client.post(f"{DASHBOARD}queue/{unique}-celery/redrive/", follow=True)
    assert response.status_code == 200
    assert "Moved 3 messages" in response.content.decode()
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        bodies += [m["Body"] for m in got]
    assert sorted(bodies) == ["dead-0", "dead-1", "dead-2"]
    assert _depth(sqs, dlq) == 0
    entry = LogEntry.objects.get(object_id=f"{unique}-celery")
    assert "Moved 3 messages" in entry.change_message


@pytest.mark.django_db
def test_redrive__needs_permission_and_a_dlq(client, sqs, unique, app, with_dlq):
    """Purge permission does not allow a move; a queue without a DLQ has no move page."""
    _source, dlq = with_dlq
    sqs.create_queue(QueueName=f"{unique}-other")
    client.force_login(user_with("view_dashboard", "purge_queue"))
    assert client.post(f"{DASHBOARD}queue/{unique}-celery/redrive/").status_code == 403
    assert _depth(sqs, dlq) == 3
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    assert client.get(f"{DASHBOARD}queue/{unique}-celery-dlq/redrive/").status_code == 404


@pytest.mark.django_db
def test_dashboard__endpoint_down(client, unique):
    """With nothing listening at the endpoint the page still renders, with the error."""
    down = f"http://127.0.0.1:{free_port()}"
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=down))
    client.force_login(user_with("view_dashboard", "purge_queue"))
    with override_settings(SQS_BROKER_CELERY_APP=celery, SQS_BROKER_CONNECT_TIMEOUT=1):
        started = time.monotonic()
        response = client.get(DASHBOARD)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    html = response.content.decode()
    assert "Could not connect" in html or "Unreachable" in html or "EndpointConnectionError" in html
    assert "Traceback" not in html
    assert elapsed < 15


@pytest.mark.django_db
def test_dashboard__endpoint_slow(client, sqs_endpoint, unique):
    """A slow endpoint costs at most SQS_BROKER_GATHER_TIMEOUT, then per-queue errors."""
    with Proxy.to(sqs_endpoint, delay=5) as proxy:
        celery = make_app(
            base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-", SQS_ENDPOINT_URL=proxy.endpoint_url)
        )
        client.force_login(user_with("view_dashboard"))
        with override_settings(SQS_BROKER_CELERY_APP=celery, SQS_BROKER_GATHER_TIMEOUT=1):
            started = time.monotonic()
            response = client.get(DASHBOARD)
            elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 5
    assert "did not answer within 1 s" in response.content.decode()


@pytest.mark.django_db
def test_peek__post_only_with_redrive_permission(client, sqs, unique, app):
    """Peek is a POST behind redrive_queue; GET is 405 and view alone is 403."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    peek = f"{DASHBOARD}queue/{unique}-celery/peek/"
    client.force_login(user_with("view_dashboard", "purge_queue"))
    assert client.post(peek).status_code == 403
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    assert client.get(peek).status_code == 405


@pytest.mark.django_db
def test_peek__celery_and_malformed_messages(client, sqs, unique, app):
    """A Celery task shows its name and arguments; garbage and huge bodies neither crash nor go."""
    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    app.send_task("project.demo.tasks.add", args=(2, 3), queue="celery")
    sqs.send_message(QueueUrl=url, MessageBody="not json, not base64 \u0001")
    sqs.send_message(QueueUrl=url, MessageBody="x" * 200_000)
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    response = client.post(f"{DASHBOARD}queue/{unique}-celery/peek/")
    assert response.status_code == 200
    peeked = response.context["peeked"]
    assert len(peeked) == 3
    tasks = [m for m in peeked if m["task"]]
    assert [m["task"] for m in tasks] == ["project.demo.tasks.add"]
    assert '"args": [2, 3]' in tasks[0]["preview"]
    others = [m for m in peeked if not m["task"]]
    assert all(m["note"].startswith("Not a Celery message") for m in others)
    assert max(len(m["preview"]) for m in others) <= 301
    assert _depth(sqs, url) == 3  # visible again at once: nothing taken away
    assert (
        "Peeked at 3 messages" in LogEntry.objects.get(object_id=f"{unique}-celery").change_message
    )


@pytest.mark.django_db
def test_queue_page__dead_letter_queue(client, sqs, unique, with_dlq):
    """A dead-letter queue outside the app's queues still has its page (linked from the row)."""
    celery = make_app(base_env(), task_default_queue=f"{unique}-celery")
    client.force_login(user_with("view_dashboard"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        html = client.get(DASHBOARD).content.decode()
        assert f"{DASHBOARD}queue/{unique}-celery-dlq/" in html
        page = client.get(f"{DASHBOARD}queue/{unique}-celery-dlq/")
    assert page.status_code == 200
    assert page.context["q"]["visible"] == 3


@pytest.mark.django_db
def test_queue_page__one_sqs_pass(client, sqs, unique, with_dlq, monkeypatch):
    """A dead-letter queue's page reads SQS in one pass, as an app queue's page does."""
    from sqs_broker import stats

    passes = []
    real = stats.sqs_pass

    def counting(*args, **kwargs):
        passes.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats, "sqs_pass", counting)
    celery = make_app(base_env(), task_default_queue=f"{unique}-celery")
    client.force_login(user_with("view_dashboard"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        for name in (f"{unique}-celery-dlq", f"{unique}-celery"):
            passes.clear()
            page = client.get(f"{DASHBOARD}queue/{name}/")
            assert page.status_code == 200
            assert page.context["q"]["name"] == name
            assert len(passes) == 1, name


@pytest.mark.django_db
def test_dashboard__simplified_chinese(client, sqs, unique, app):
    """With Accept-Language zh-hans the headings, labels and actions are in Chinese."""
    sqs.create_queue(QueueName=f"{unique}-celery")
    client.force_login(user_with("view_dashboard", "purge_queue"))
    html = client.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    chinese = ("SQS 仪表盘", "退避策略", "配置", "检查结果", "死信队列", "清空", "暂停自动刷新")
    for text in chinese:
        assert text in html
    for english in ("Backoff policies", "Configuration", "Dead-letter queue", "Pause auto-refresh"):
        assert english not in html


@pytest.mark.django_db
def test_queue_page__dead_letter_queue_of_a_predefined_queue(client, sqs, unique):
    """The dashboard's link to a predefined queue's dead-letter queue opens its page."""
    source, _dlq = queue_with_dlq(sqs, unique, f"{unique}-dlq", max_receive_count=3)
    celery = make_app(
        base_env(SQS_PREDEFINED_QUEUES=json.dumps({unique: {"url": source}})),
        task_default_queue=unique,
    )
    client.force_login(user_with("view_dashboard"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        page = client.get(DASHBOARD).content.decode()
        link = f"{DASHBOARD}queue/{unique}-dlq/"
        assert link in page
        response = client.get(link)
    assert response.status_code == 200
    assert f"{unique}-dlq" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.usefixtures("sqs_endpoint")
def test_dashboard__window_not_offered_says_so(client, app):
    """?window=7 shows the default window and a warning, not a silent substitute."""
    client.force_login(user_with("view_dashboard"))
    page = client.get(f"{DASHBOARD}?window=7")
    assert page.status_code == 200 and page.context["window"] == 300
    assert "The window must be one of the choices offered" in page.content.decode()
    assert "The window must" not in client.get(f"{DASHBOARD}?window=3600").content.decode()


@pytest.mark.django_db
def test_dashboard__queries_do_not_grow_with_queues(client, sqs, unique, app):
    """History and telemetry are read once per page, not once per queue or worker."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sqs_broker.models import TaskCounter, WorkerHeartbeat
    from sqs_broker.telemetry.base import minute_of

    client.force_login(user_with("view_dashboard"))
    now = datetime.now(UTC)

    def add(name: str) -> None:
        sqs.create_queue(QueueName=name)
        QueueSample.objects.create(queue=name, sampled_at=now, visible=1, in_flight=0, delayed=0)
        TaskCounter.objects.create(
            task="t", queue=name, minute=minute_of(now), received=1, succeeded=1
        )
        WorkerHeartbeat.objects.create(
            hostname=f"{name}@h", pid=1, pool="solo", concurrency=1, queues=[name],
            started_at=now, last_seen=now,
        )  # fmt: skip

    def queries(shown: int) -> int:
        sqs_broker.cache.reset()  # list the queues again
        with CaptureQueriesContext(connection) as captured:
            page = client.get(DASHBOARD)
        assert len(page.context["rows"]) == shown
        assert len(page.context["telemetry"]["workers"]) == shown
        assert len(page.context["telemetry"]["tasks"]) == shown
        return len(captured.captured_queries)

    add(f"{unique}-celery")
    one = queries(shown=1)
    for n in range(4):
        add(f"{unique}-q{n}")
    assert queries(shown=5) == one


@pytest.mark.django_db
def test_actions__only_on_the_apps_own_queues(client, sqs):
    """Another service's queue under the prefix is listed read-only; purge, move, peek refuse it."""
    prefix = f"app{uuid.uuid4().hex[:6]}"
    sqs.create_queue(QueueName=f"{prefix}celery")
    theirs, their_dlq = queue_with_dlq(sqs, f"{prefix}le-payments", f"{prefix}le-payments-dlq")
    sqs.send_message(QueueUrl=theirs, MessageBody="their payment")
    sqs.send_message(QueueUrl=their_dlq, MessageBody="their dead letter")
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=prefix))
    client.force_login(user_with("view_dashboard", "purge_queue", "redrive_queue"))
    with override_settings(SQS_BROKER_CELERY_APP=celery):
        rows = {q["name"]: q for q in stats.gather(celery, online=False)["queues"]}
        assert rows[f"{prefix}le-payments"]["read_only"] is True
        assert rows[f"{prefix}celery"]["read_only"] is False
        html = client.get(DASHBOARD).content.decode()
        assert f"queue/{prefix}le-payments/purge/" not in html and "read-only" in html
        assert f"queue/{prefix}celery/purge/" in html
        for name in (f"{prefix}le-payments", f"{prefix}le-payments-dlq"):
            for action in ("purge", "redrive", "peek"):
                response = client.post(f"{DASHBOARD}queue/{name}/{action}/")
                assert response.status_code == 404, (name, action)
    assert _depth(sqs, theirs) == 1 and _depth(sqs, their_dlq) == 1


def test_templates__no_inline_script_style_or_handlers():
    """Every template of the app is CSP-clean: no inline <script>/<style>, no on*= handlers."""
    import re
    from pathlib import Path

    import sqs_broker

    folder = Path(sqs_broker.__file__).parent / "templates"
    offenders = []
    for path in folder.rglob("*.html"):
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or "<style" in text:
            offenders.append(f"{path.name}: inline script or style")
        if re.search(r"\son[a-z]+\s*=", text) or re.search(r"\sstyle\s*=", text):
            offenders.append(f"{path.name}: inline handler or style attribute")
    assert offenders == []


@pytest.mark.django_db
def test_dashboard__health_first_and_in_the_json(client, sqs, unique, app, with_dlq):
    """The health strip comes before the queue table, red for dead letters; stats.json agrees."""
    client.force_login(user_with("view_dashboard"))
    html = client.get(DASHBOARD).content.decode()
    assert html.index('id="sqs-health"') < html.index('id="sqs-findings"')
    assert html.index('id="sqs-findings"') < html.index('id="sqs-queues"')
    strip = html[html.index('id="sqs-health"') :]
    assert 'data-health="dead_letters" data-severity="error" class="sqs-sev-error"' in strip
    assert '<span class="figure">3</span>' in strip
    assert 'class="dlq-visible sqs-dlq-full"' in html
    assert "sqs_broker/dashboard.js" in html and "sqs_broker/dashboard.css" in html
    data = client.get("/sqs/stats.json").json()
    # Informational findings fold away below the errors and warnings.
    infos = [f for f in data["findings"] if f["level"] not in ("error", "warning")]
    assert ('id="sqs-findings-info"' in html) is bool(infos)
    assert data["health"]["dead_letters"] == 3
    assert data["health"]["dead_letter_queues"] == [f"{unique}-celery-dlq"]
    assert data["health"]["level"] == "error"


@pytest.mark.django_db
def test_redrive__by_task_name_with_progress_page(client, sqs, unique, app):
    """A filtered move goes to its progress page; only the named task moves; one LogEntry."""
    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    app.send_task("t.keep", queue="celery-dlq")
    app.send_task("t.move", queue="celery-dlq")
    app.send_task("t.move", queue="celery-dlq")
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    form = client.get(f"{DASHBOARD}queue/{unique}-celery/redrive/").content.decode()
    assert 'name="task"' in form and 'name="exception"' in form and 'name="rate"' in form
    bad = client.post(f"{DASHBOARD}queue/{unique}-celery/redrive/", {"rate": "-1"})
    assert bad.status_code == 200 and "positive number" in bad.content.decode()
    response = client.post(
        f"{DASHBOARD}queue/{unique}-celery/redrive/", {"task": "t.move", "rate": "100"}
    )
    assert response.status_code == 302 and "/move/" in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert 'data-state="done"' in page
    assert _depth(sqs, source) == 2 and _depth(sqs, dlq) == 1
    entry = LogEntry.objects.get(object_id=f"{unique}-celery")
    assert entry.object_repr.startswith(
        f"Moved 2 messages matching task t.move from {unique}-celery-dlq back to {unique}-celery"
    )
    assert "1 passed over" in entry.change_message
    step = client.post(response["Location"] + "step/", HTTP_ACCEPT="application/json").json()
    assert (step["state"], step["moved"], step["skipped"]) == ("done", 2, 1)
    assert "seen" not in step and "user" not in step
    assert LogEntry.objects.filter(object_id=f"{unique}-celery").count() == 1
    client.force_login(user_with("view_dashboard", "purge_queue"))
    assert client.get(response["Location"]).status_code == 403


@pytest.mark.django_db
def test_task_lookup__result_traceback_and_peek_link(client, sqs, unique, app):
    """The task box finds a stored result; a peeked message shows its state and links to it."""
    from django_celery_results.models import TaskResult

    sqs.create_queue(QueueName=f"{unique}-celery")
    sent = app.send_task("t.fails", queue="celery")
    failure = {"exc_type": "KeyError", "exc_message": ["gone"], "exc_module": "builtins"}
    TaskResult.objects.create(
        task_id=sent.id,
        task_name="t.fails",
        status="FAILURE",
        result=json.dumps(failure),
        traceback="Traceback (most recent call last):\nKeyError: 'gone'",
    )
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    assert 'id="sqs-task-box"' in client.get(DASHBOARD).content.decode()
    page = client.get(f"{DASHBOARD}task/", {"id": sent.id}).content.decode()
    assert "KeyError: gone" in page and "FAILURE" in page
    assert "/admin/django_celery_results/taskresult/" in page
    missing = client.get(f"{DASHBOARD}task/", {"id": "no-such-id"}).content.decode()
    assert 'id="sqs-task-missing"' in missing
    peek = client.post(f"{DASHBOARD}queue/{unique}-celery/peek/")
    assert peek.context["peeked"][0]["result"]["state"] == "FAILURE"
    body = peek.content.decode()
    assert f"task/?id={sent.id}" in body and "KeyError: gone" in body


@pytest.mark.django_db
def test_dashboard__in_flight_with_idle_workers_is_explained(client, sqs, unique, app):
    """Messages in flight while the queue's live worker runs nothing: the page says why."""
    from django.utils import timezone

    from sqs_broker.models import WorkerHeartbeat

    url = sqs.create_queue(QueueName=f"{unique}-celery")["QueueUrl"]
    for i in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=600)
    now = timezone.now()
    worker = WorkerHeartbeat.objects.create(
        hostname=f"w@{unique}",
        pid=1,
        pool="prefork",
        concurrency=2,
        queues=[f"{unique}-celery"],
        started_at=now - timedelta(minutes=5),
        last_seen=now,
        active=0,
    )
    client.force_login(user_with("view_dashboard"))
    html = client.get(DASHBOARD).content.decode()
    assert 'id="sqs-unheld"' in html
    assert f"2 messages of {unique}-celery are in flight" in html
    health = client.get("/sqs/stats.json").json()["health"]
    assert health["unheld_in_flight"] == [{"queue": f"{unique}-celery", "in_flight": 2}]
    worker.active = 2  # a busy worker holds them: nothing to explain
    worker.save()
    assert 'id="sqs-unheld"' not in client.get(DASHBOARD).content.decode()


class _RowLabels(HTMLParser):
    """The data-label of every cell of the queue table's rows, and the sparklines' aria-labels."""

    def __init__(self) -> None:
        super().__init__()
        self.in_row = False
        self.labels: list[str] = []
        self.sparks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr":
            self.in_row = "data-queue" in found
        elif self.in_row and tag == "td":
            self.labels.append(found.get("data-label") or "")
        elif self.in_row and tag == "svg":
            self.sparks.append(found.get("aria-label") or "")


@pytest.mark.django_db
def test_dashboard__rows_labelled_in_simplified_chinese(client, sqs, unique, app, with_dlq):
    """Every cell's data-label (the phone layout's labels) and each row's sentences are Chinese."""
    # Two time buckets: a line, not the "collecting" note of a young history.
    for age, visible in ((600, 1), (0, 2)):
        QueueSample.objects.create(
            queue=f"{unique}-celery",
            sampled_at=datetime.now(UTC) - timedelta(seconds=age),
            visible=visible,
            in_flight=0,
            delayed=0,
        )
    client.force_login(user_with("view_dashboard", "purge_queue", "redrive_queue"))
    html = client.get(DASHBOARD, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    cells = _RowLabels()
    cells.feed(html)
    heads = ["队列", "可见", "处理中", "延迟", "最早的消息", "可见性超时", "接收等待", "死信队列"]
    heads += ["趋势", "操作"]
    assert cells.labels[:10] == heads
    assert set(cells.labels) == set(heads), "every row's cells carry the translated labels"
    assert cells.sparks == ["可见消息，2 个样本，峰值 2"]
    for text in ("接收 5 次后", "从死信队列移回", "清空", "无历史"):
        assert text in html
    english = ('data-label="Visible"', "after 5 receives", "Move back from DLQ", "no history")
    assert not [text for text in english if text in html]


@pytest.mark.django_db
def test_dashboard__cached_load_reads_no_queue_samples(client, sqs, unique, app, monkeypatch):
    """Inside the caches' lifetimes a reload reads no history from the database.

    Its SQL is the login's and the telemetry panels' (read live), the same few
    queries with 1 or 300 queues (test_dashboard__queries_do_not_grow_with_queues).
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    sqs.create_queue(QueueName=f"{unique}-celery")
    for age in (600, 0):  # two time buckets: a line is drawn
        QueueSample.objects.create(
            queue=f"{unique}-celery",
            sampled_at=datetime.now(UTC) - timedelta(seconds=age),
            visible=2,
            in_flight=0,
            delayed=0,
        )
    # The history's cache key follows the clock in 10 s steps: hold the clock still for it.
    now = datetime.now(UTC)
    window = history.history_window

    def still(hours: float | None = None, _now: object = None, points: int = 120) -> object:
        return window(hours, now, points)

    monkeypatch.setattr(history, "history_window", still)
    client.force_login(user_with("view_dashboard"))
    with override_settings(SQS_BROKER_CACHE_TTL=300):
        assert client.get(DASHBOARD).status_code == 200
        with CaptureQueriesContext(connection) as captured:
            page = client.get(DASHBOARD)
    assert page.status_code == 200 and 'class="sqs-spark"' in page.content.decode()
    read = [q["sql"] for q in captured.captured_queries if "sqs_broker_queuesample" in q["sql"]]
    assert read == []


@pytest.fixture
def incident(sqs, unique, app):
    """A DLQ with 2 tasks whose stored result is SUCCESS and 3 stored as FAILURE."""
    from django_celery_results.models import TaskResult

    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    failure = json.dumps({"exc_type": "ValueError", "exc_message": ["boom"]})
    for i in range(5):
        name, status = ("t.slow", "SUCCESS") if i < 2 else ("t.fail", "FAILURE")
        task_id = app.send_task(name, queue="celery-dlq", task_id=f"{unique}-{i}").id
        result = "1" if status == "SUCCESS" else failure
        TaskResult.objects.create(task_id=task_id, status=status, result=result, task_name=name)
    return source, dlq


def _move_form(client, unique):
    page = client.get(f"{DASHBOARD}queue/{unique}-celery/redrive/")
    assert page.status_code == 200
    return page


@pytest.mark.django_db
def test_redrive__form_shows_the_breakdown_before_anything_moves(client, sqs, unique, incident):
    """The move form groups the dead letters by task and stored state and previews each move."""
    source, dlq = incident
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    page = _move_form(client, unique)
    found = page.context["breakdown"]
    assert [(g["task"], g["state"], g["count"]) for g in found["groups"]] == [
        ("t.fail", "FAILURE", 3),
        ("t.slow", "SUCCESS", 2),
    ]
    html = page.content.decode()
    assert 'id="sqs-breakdown-groups"' in html
    assert "A move takes <strong>3</strong> of the 5 sampled" in html
    assert "<strong>5</strong>" in html  # with the succeeded ones
    assert 'name="include_succeeded"' in html and " checked" not in html
    assert _depth(sqs, dlq) == 5 and _depth(sqs, source) == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("form", "moved"), [({}, 3), ({"include_succeeded": "on"}, 5)])
def test_redrive__default_leaves_succeeded_checkbox_includes_them(
    client, sqs, unique, incident, form, moved
):
    """The default move brings back only the failed tasks; the checkbox moves all."""
    source, dlq = incident
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    response = client.post(f"{DASHBOARD}queue/{unique}-celery/redrive/", form, follow=True)
    assert response.status_code == 200
    assert _depth(sqs, source) == moved and _depth(sqs, dlq) == 5 - moved
    entry = LogEntry.objects.filter(object_id=f"{unique}-celery").latest("pk")
    assert f"Moved {moved} messages" in entry.change_message
    assert ("2 left with a stored SUCCESS result" in entry.change_message) is (moved == 3)
    html = response.content.decode()
    assert f'data-field="succeeded">{5 - moved}</td>' in html  # the move page counts them apart
    assert f"{5 - moved} left because their task succeeded" in html


@pytest.mark.django_db
def test_delete_succeeded__confirmed_logged_and_only_succeeded(
    client, sqs, unique, incident, caplog
):
    """Deleting the succeeded dead letters needs purge rights and the name typed; it is logged."""
    _source, dlq = incident
    url = f"{DASHBOARD}queue/{unique}-celery/delete-succeeded/"
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    assert client.post(url, {"confirm": f"{unique}-celery-dlq"}).status_code == 403
    client.force_login(user_with("view_dashboard", "redrive_queue", "purge_queue"))
    page = _move_form(client, unique)
    assert url in page.content.decode()  # offered beside the move, apart and destructive
    assert 'class="button sqs-destructive"' in page.content.decode()
    assert client.post(url, {"confirm": "wrong"}).status_code == 400
    assert _depth(sqs, dlq) == 5
    with caplog.at_level("INFO", logger="sqs_broker.audit"):
        response = client.post(url, {"confirm": f"{unique}-celery-dlq"})
    assert response.status_code == 302
    assert _depth(sqs, dlq) == 3
    entry = LogEntry.objects.get(object_id=f"{unique}-celery-dlq")
    assert entry.action_flag == 3  # DELETION
    assert entry.change_message.startswith("Deleted 2 dead letters with a stored SUCCESS result")
    (record,) = [r for r in caplog.records if r.name == "sqs_broker.audit"]
    assert "Deleted 2 dead letters" in record.getMessage()


@pytest.mark.django_db
def test_queue_page__dead_letter_queue_offers_the_move_back(client, sqs, unique, incident):
    """The DLQ's page names its source queue and offers the move back; purge sits apart."""
    client.force_login(user_with("view_dashboard", "redrive_queue", "purge_queue"))
    html = client.get(f"{DASHBOARD}queue/{unique}-celery-dlq/").content.decode()
    assert "Dead-letter queue of" in html
    assert f'href="{DASHBOARD}queue/{unique}-celery/redrive/"' in html
    assert f"Triage and move back to {unique}-celery" in html
    actions, destructive = html.split('id="sqs-queue-actions"')[1].split(
        'id="sqs-queue-destructive"'
    )
    assert "purge" not in actions.split("</p>")[0]
    assert 'class="button sqs-destructive"' in destructive.split("</p>")[0]
    assert 'class="sqs-secondary"' in html  # peek
    assert 'id="sqs-breakdown"' not in html  # nothing sampled yet: nothing received
    _move_form(client, unique)
    html = client.get(f"{DASHBOARD}queue/{unique}-celery-dlq/").content.decode()
    assert 'id="sqs-breakdown"' in html and "A move takes <strong>3</strong>" in html


@pytest.mark.django_db
def test_dashboard__health_strip_in_paging_order_with_an_all_clear(client, sqs, unique, app):
    """Consumers first, then waiting messages, rates, dead letters, findings; all clear shown."""
    import re

    sqs.create_queue(QueueName=f"{unique}-celery")
    client.force_login(user_with("view_dashboard"))
    html = client.get(DASHBOARD).content.decode()
    strip = html[html.index('id="sqs-health"') : html.index("</ul>", html.index('id="sqs-health"'))]
    assert re.findall(r'data-health="(\w+)"', strip) == [
        "stalled_workers",
        "lost_workers",
        "unconsumed_queues",
        "waiting_queues",
        "failing_tasks",
        "redelivered_tasks",
        "dead_letters",
        "error_findings",
        "warning_findings",
        "unheld_in_flight",
    ]
    assert "queues with a message older than 10" in strip
    assert "tasks failing over 10 %" in strip
    clear = html[html.index('id="sqs-all-clear"') - 40 : html.index('id="sqs-all-clear"') + 60]
    assert ("hidden" in clear) is not client.get("/sqs/stats.json").json()["health"]["all_clear"]
    assert '<time id="sqs-generated" datetime="' in html and 'data-now="just now"' in html


@pytest.mark.django_db
def test_task_page__says_where_the_message_is_and_offers_the_move(client, sqs, unique, incident):
    """After the DLQ was sampled, a failed task's page names the DLQ, receive count and move."""
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    page = client.get(f"{DASHBOARD}task/", {"id": f"{unique}-3"})
    assert 'id="sqs-task-not-seen"' in page.content.decode()
    _move_form(client, unique)  # samples the DLQ
    html = client.get(f"{DASHBOARD}task/", {"id": f"{unique}-3"}).content.decode()
    location = html[html.index('id="sqs-task-location"') :]
    assert f"In the dead-letter queue <strong>{unique}-celery-dlq</strong>, received 1 time," in (
        location
    )
    assert f"it dead-letters for {unique}-celery" in location
    assert f'href="{DASHBOARD}queue/{unique}-celery/redrive/"' in location
    assert '<td class="state">FAILURE</td>' in html


@pytest.mark.django_db
def test_redrive__a_failed_sample_is_said_and_the_move_still_offered(
    client, sqs, unique, incident, monkeypatch
):
    """When the dead-letter queue cannot be sampled, the form says why and still offers the move."""
    from sqs_broker import actions

    def refused(*args, **kwargs):
        raise ConnectionError("endpoint went away")

    monkeypatch.setattr(actions, "sample_messages", refused)
    client.force_login(user_with("view_dashboard", "redrive_queue"))
    html = _move_form(client, unique).content.decode()
    assert "The dead-letter queue could not be sampled: ConnectionError" in html
    assert "endpoint went away" in html
    assert 'id="sqs-confirm-submit"' in html and 'id="sqs-breakdown"' not in html
