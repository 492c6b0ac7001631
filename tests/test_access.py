"""Access to every URL of the app: who may read, who may act, and that reading changes nothing.

Identities: anonymous, staff without permission, staff with view, with view
and purge, with view and redrive, and the API token (right, wrong, missing,
in another header, disabled). Actions only by POST with CSRF.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client, override_settings

from sqs_broker import views
from tests.support.env import base_env, make_app
from tests.support.queues import queue_with_dlq
from tests.support.users import user_with

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/sqs_broker/dashboard/"
TOKEN = "access-test-token-0123456789abcdef"

IDENTITIES = {
    "anonymous": None,
    "staff": (),
    "view": ("view_dashboard",),
    "purge": ("view_dashboard", "purge_queue"),
    "redrive": ("view_dashboard", "redrive_queue"),
    "purge_without_view": ("purge_queue", "redrive_queue"),
    "worker_actions": (
        "view_dashboard",
        "revoke_task",
        "rate_limit_task",
        "resize_pool",
        "shutdown_worker",
    ),
}


@pytest.fixture
def queues(sqs: Any, unique: str) -> Iterator[dict[str, str]]:
    """The app's queue (2 messages) with a dead-letter queue (3 messages), served by the admin."""
    source, dlq = queue_with_dlq(sqs, f"{unique}-celery", f"{unique}-celery-dlq")
    for i in range(2):
        sqs.send_message(QueueUrl=source, MessageBody=f"live-{i}")
    for i in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"dead-{i}")
    celery = make_app(base_env(SQS_QUEUE_NAME_PREFIX=f"{unique}-"))
    with override_settings(SQS_BROKER_CELERY_APP=celery, SQS_BROKER_API_TOKEN=TOKEN):
        yield {"source": source, "dlq": dlq, "name": f"{unique}-celery"}


def depths(sqs: Any, queues: dict[str, str]) -> tuple[int, int]:
    """Messages in the queue and its dead-letter queue, visible plus in flight."""
    total = []
    for url in (queues["source"], queues["dlq"]):
        a = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        total.append(
            int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])
        )
    return total[0], total[1]


def client_for(identity: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    perms = IDENTITIES[identity]
    if perms is not None:
        client.force_login(user_with(*perms, username=f"{identity}-user"))
    return client


def pages(name: str) -> dict[str, str]:
    return {
        "dashboard": DASHBOARD,
        "queue": f"{DASHBOARD}queue/{name}/",
        "purge": f"{DASHBOARD}queue/{name}/purge/",
        "redrive": f"{DASHBOARD}queue/{name}/redrive/",
        "peek": f"{DASHBOARD}queue/{name}/peek/",
        "delete_succeeded": f"{DASHBOARD}queue/{name}/delete-succeeded/",
        "move": f"{DASHBOARD}queue/{name}/move/no-such-move/",
        "move_step": f"{DASHBOARD}queue/{name}/move/no-such-move/step/",
        "move_cancel": f"{DASHBOARD}queue/{name}/move/no-such-move/cancel/",
        "task": f"{DASHBOARD}task/?id=no-such-task",
        "workers": f"{DASHBOARD}workers/",
        "revoke": f"{DASHBOARD}revoke/?id=no-such-task",
        "rate_limit": f"{DASHBOARD}rate-limit/?task=no.such.task",
        "pool": f"{DASHBOARD}worker/celery@nowhere/pool/",
        "shutdown": f"{DASHBOARD}worker/celery@nowhere/shutdown/",
        "stats": "/sqs/stats.json",
        "metrics": "/sqs/metrics",
    }


#: identity -> page -> status of a GET.
#: The move step and cancel are POST only, like peek; a move id no one started is 404.
POST_ONLY = {"peek": 405, "move_step": 405, "move_cancel": 405}
#: The worker actions: each its own permission; the workers' page is for viewers.
WORKER_PAGES = ["workers", "revoke", "rate_limit", "pool", "shutdown"]
NO_WORKER_ACTIONS = {"workers": 200} | dict.fromkeys(WORKER_PAGES[1:], 403)
EXPECTED_GET = {
    "anonymous": dict.fromkeys(
        ["dashboard", "queue", "purge", "redrive", "peek", "move", "move_step", "move_cancel"],
        302,
    )
    | {"delete_succeeded": 302}
    | {"task": 302, "stats": 401, "metrics": 401}
    | dict.fromkeys(WORKER_PAGES, 302),
    "staff": dict.fromkeys(
        ["dashboard", "queue", "purge", "redrive", "move", "task", "stats", "metrics"], 403
    )
    | {"delete_succeeded": 403}
    | dict.fromkeys(WORKER_PAGES, 403)
    | POST_ONLY,
    "view": {
        "dashboard": 200,
        "queue": 200,
        "purge": 403,
        "redrive": 403,
        "delete_succeeded": 403,
        "move": 403,
        "task": 200,
        "stats": 200,
        "metrics": 200,
    }
    | NO_WORKER_ACTIONS
    | POST_ONLY,
    "purge": {
        "dashboard": 200,
        "queue": 200,
        "purge": 200,
        "redrive": 403,
        "delete_succeeded": 200,
        "move": 403,
        "task": 200,
        "stats": 200,
        "metrics": 200,
    }
    | NO_WORKER_ACTIONS
    | POST_ONLY,
    "redrive": {
        "dashboard": 200,
        "queue": 200,
        "purge": 403,
        "redrive": 200,
        "delete_succeeded": 403,
        "move": 404,
        "task": 200,
        "stats": 200,
        "metrics": 200,
    }
    | NO_WORKER_ACTIONS
    | POST_ONLY,
    "purge_without_view": dict.fromkeys(
        ["dashboard", "queue", "purge", "redrive", "move", "task", "stats", "metrics"], 403
    )
    | {"delete_succeeded": 403}
    | dict.fromkeys(WORKER_PAGES, 403)
    | POST_ONLY,
    "worker_actions": {
        "dashboard": 200,
        "queue": 200,
        "purge": 403,
        "redrive": 403,
        "delete_succeeded": 403,
        "move": 403,
        "task": 200,
        "stats": 200,
        "metrics": 200,
    }
    | dict.fromkeys(WORKER_PAGES, 200)
    | POST_ONLY,
}


@pytest.mark.parametrize("identity", list(IDENTITIES))
def test_get__every_page_answers_by_permission_and_changes_nothing(
    identity: str, queues: dict[str, str], sqs: Any
) -> None:
    """Each identity gets exactly the pages its permissions allow; no GET moves a message."""
    client = client_for(identity)
    before = depths(sqs, queues)
    got = {page: client.get(url).status_code for page, url in pages(queues["name"]).items()}
    assert got == EXPECTED_GET[identity]
    if identity == "anonymous":
        response = client.get(DASHBOARD)
        assert response["Location"].startswith("/admin/login/")
    assert depths(sqs, queues) == before
    assert LogEntry.objects.count() == 0


def _csrf_post(client: Client, url: str, **data: str) -> int:
    """POST with a valid CSRF cookie and token, so only the permission decides."""
    from django.middleware.csrf import _get_new_csrf_string

    secret = _get_new_csrf_string()
    client.cookies["csrftoken"] = secret
    return client.post(url, {"csrfmiddlewaretoken": secret, **data}).status_code


@pytest.mark.parametrize("identity", list(IDENTITIES))
def test_post__only_the_right_permission_acts(
    identity: str, queues: dict[str, str], sqs: Any
) -> None:
    """A CSRF-valid POST purges only with purge_queue and moves only with redrive_queue."""
    client = client_for(identity)
    urls = pages(queues["name"])
    assert depths(sqs, queues) == (2, 3)

    status = _csrf_post(client, urls["redrive"])
    if identity == "redrive":
        assert status == 302
        assert depths(sqs, queues) == (5, 0)
    else:
        assert status in (302, 403)
        if identity == "anonymous":
            assert status == 302  # to the login page
        assert depths(sqs, queues) == (2, 3)

    status = _csrf_post(client, urls["purge"], confirm=queues["name"])
    if identity == "purge":
        assert status == 302
        assert depths(sqs, queues)[0] == 0
    else:
        assert status in (302, 403)
        assert depths(sqs, queues)[0] in (2, 5)
    before = depths(sqs, queues)
    status = _csrf_post(client, urls["peek"])
    # Peek receives with a zero visibility timeout: it needs the redrive permission.
    assert status == (200 if identity == "redrive" else 302 if identity == "anonymous" else 403)
    assert depths(sqs, queues) == before
    acted = {"purge": 1, "redrive": 2}.get(identity, 0)
    assert LogEntry.objects.count() == acted


@pytest.mark.parametrize("action", ["purge", "redrive"])
def test_post__without_csrf_changes_nothing(action: str, queues: dict[str, str], sqs: Any) -> None:
    """Even with the permission, a POST without the CSRF token is refused."""
    client = client_for(action)
    response = client.post(pages(queues["name"])[action])
    assert response.status_code == 403
    assert depths(sqs, queues) == (2, 3)
    assert LogEntry.objects.count() == 0


@pytest.mark.parametrize("action", ["purge", "redrive"])
def test_actions__other_methods_refused(action: str, queues: dict[str, str], sqs: Any) -> None:
    """PUT, DELETE and PATCH on an action answer 405 and change nothing."""
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    url = pages(queues["name"])[action]
    for method in (client.put, client.delete, client.patch):
        assert method(url).status_code == 405
    assert depths(sqs, queues) == (2, 3)


def test_get__superuser_changes_nothing(queues: dict[str, str], sqs: Any) -> None:
    """Even a superuser's GET of every page, confirmations included, changes nothing."""
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    for page, url in pages(queues["name"]).items():
        if page in POST_ONLY:
            assert client.get(url).status_code == 405
            continue
        expected = 404 if page == "move" else 200  # no move of that id was started
        assert client.get(url).status_code == expected, url
        assert client.head(url).status_code in (expected, 405), url
    assert depths(sqs, queues) == (2, 3)
    assert LogEntry.objects.count() == 0


TOKEN_CASES = {
    "right": ({"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, 200),
    "right_lowercase_scheme": ({"HTTP_AUTHORIZATION": f"bearer {TOKEN}"}, 200),
    "wrong": ({"HTTP_AUTHORIZATION": "Bearer wrong-token-0123456789abcdef"}, 401),
    "prefix": ({"HTTP_AUTHORIZATION": f"Bearer {TOKEN[:-1]}"}, 401),
    "longer": ({"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"}, 401),
    "empty": ({"HTTP_AUTHORIZATION": "Bearer "}, 401),
    "missing": ({}, 401),
    "basic_scheme": ({"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}, 401),
    "other_header": ({"HTTP_X_API_TOKEN": TOKEN}, 401),
    "query_string": ({"QUERY_STRING": f"token={TOKEN}"}, 401),
    "unicode": ({"HTTP_AUTHORIZATION": "Bearer ключ-0123456789abcdef"}, 401),
}


@pytest.mark.parametrize("case", list(TOKEN_CASES))
@pytest.mark.parametrize("page", ["stats", "metrics"])
def test_token__only_the_right_bearer_token_reads(
    case: str, page: str, queues: dict[str, str]
) -> None:
    """The API token opens stats.json and metrics only as a right Bearer token."""
    headers, expected = TOKEN_CASES[case]
    response = Client().get(pages(queues["name"])[page], **headers)
    assert response.status_code == expected
    if expected == 401:
        assert "Bearer" in response["WWW-Authenticate"]
        assert TOKEN not in response.content.decode()


def test_token__does_not_open_the_admin(queues: dict[str, str]) -> None:
    """The API token is for machines: it opens no admin page and no action."""
    client = Client()
    for page in ("dashboard", "queue", "purge", "redrive", "peek"):
        response = client.get(pages(queues["name"])[page], HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 302, page


def test_token__post_refused(queues: dict[str, str], sqs: Any) -> None:
    """stats.json and metrics answer only GET, even with the token: 405 as curl sees it."""
    client = Client(enforce_csrf_checks=True)  # as curl meets the CSRF middleware
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    for page in ("stats", "metrics"):
        url = pages(queues["name"])[page]
        for method in (client.post, client.put, client.patch, client.delete):
            assert method(url, **auth).status_code == 405, (page, method)
    assert depths(sqs, queues) == (2, 3)


@pytest.mark.parametrize("disabled", [None, ""])
def test_token__can_be_disabled(disabled: str | None, queues: dict[str, str]) -> None:
    """With SQS_BROKER_API_TOKEN unset no token opens anything, not even an empty one."""
    with override_settings(SQS_BROKER_API_TOKEN=disabled):
        for header in (f"Bearer {TOKEN}", "Bearer ", "Bearer None"):
            response = Client().get("/sqs/stats.json", HTTP_AUTHORIZATION=header)
            assert response.status_code == 401, header


def test_token__compared_in_constant_time(
    queues: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token goes through hmac.compare_digest, never ==, and only there."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert Client().get("/sqs/stats.json", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert Client().get("/sqs/stats.json", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert len(calls) == 2
    assert calls[1] == (TOKEN.encode(), TOKEN.encode())
    source = inspect.getsource(views)
    assert "compare_digest" in inspect.getsource(views.token_ok)
    assert "== token" not in source and "token ==" not in source


def test_admin_index__lists_dashboard_only_with_view(queues: dict[str, str]) -> None:
    """The admin index shows the dashboard to users who may view it, and to no one else."""
    for identity, shown in (("staff", False), ("view", True), ("purge_without_view", False)):
        response = client_for(identity).get("/admin/")
        assert response.status_code == 200
        assert (DASHBOARD in response.content.decode()) is shown, identity


#: URL name -> the page of :func:`pages` that tests it.
COVERED = {
    "sqs_broker_dashboard_changelist": "dashboard",
    "sqs_broker_dashboard_queue": "queue",
    "sqs_broker_dashboard_purge": "purge",
    "sqs_broker_dashboard_redrive": "redrive",
    "sqs_broker_dashboard_peek": "peek",
    "sqs_broker_dashboard_delete_succeeded": "delete_succeeded",
    "sqs_broker_dashboard_move": "move",
    "sqs_broker_dashboard_move_step": "move_step",
    "sqs_broker_dashboard_move_cancel": "move_cancel",
    "sqs_broker_dashboard_task": "task",
    "sqs_broker_dashboard_workers": "workers",
    "sqs_broker_dashboard_revoke": "revoke",
    "sqs_broker_dashboard_rate_limit": "rate_limit",
    "sqs_broker_dashboard_pool": "pool",
    "sqs_broker_dashboard_shutdown": "shutdown",
    "stats": "stats",
    "metrics": "metrics",
}


def test_every_url_of_the_app__is_in_the_matrix() -> None:
    """A URL added to the admin or to sqs_broker.urls fails here until its access is tested."""
    from django.contrib import admin

    from sqs_broker import urls
    from sqs_broker.models import Dashboard

    names = {p.name for p in admin.site._registry[Dashboard].get_urls()}
    names |= {p.name for p in urls.urlpatterns}
    assert names == set(COVERED)
    assert set(COVERED.values()) == set(pages("q"))
    assert set(EXPECTED_GET["view"]) == set(pages("q"))


@pytest.mark.parametrize("identity", list(IDENTITIES))
def test_post__delete_succeeded_only_with_purge_permission(
    identity: str, queues: dict[str, str], sqs: Any
) -> None:
    """Deleting succeeded dead letters is a deletion: the purge permission, and view, or nothing."""
    url = pages(queues["name"])["delete_succeeded"]
    status = _csrf_post(client_for(identity), url, confirm=f"{queues['name']}-dlq")
    expected = {"anonymous": 302, "purge": 302}.get(identity, 403)
    assert status == expected
    logged = LogEntry.objects.filter(object_id=f"{queues['name']}-dlq").count()
    assert logged == (1 if identity == "purge" else 0)
    assert depths(sqs, queues) == (2, 3)  # none of these dead letters has a stored SUCCESS
