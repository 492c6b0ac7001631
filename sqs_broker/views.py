"""``stats.json`` and ``metrics``: the dashboard's data for machines.

Both answer a staff session whose user may view the dashboard, or
``Authorization: Bearer <SQS_BROKER_API_TOKEN>`` compared in constant time
(token access is off while the setting is unset). Neither changes anything,
and neither ever shows a stack trace: SQS errors are reported per queue.

The data and metrics modules are imported inside the views: Celery's Django
fixup runs the system checks in every worker, and they import the URLconf
(and so this module), but a worker has no use for the dashboard's code.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from sqs_broker.conf import app_settings
from sqs_broker.topology import Topology

PERMISSION = "sqs_broker.view_dashboard"


def token_ok(request: HttpRequest) -> bool:
    """Whether the request carries the configured bearer token."""
    token = app_settings.API_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if not token or scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def denied(request: HttpRequest) -> HttpResponse | None:
    """``None`` when the request may read the data; else a 401 or 403 that says why."""
    if token_ok(request):
        return None
    user = request.user
    if user.is_authenticated and user.is_active and user.is_staff:
        if user.has_perm(PERMISSION):
            return None
        return JsonResponse({"error": f"This user lacks the {PERMISSION} permission."}, status=403)
    response = JsonResponse(
        {"error": "Log in as staff, or send 'Authorization: Bearer <SQS_BROKER_API_TOKEN>'."},
        status=401,
    )
    response["WWW-Authenticate"] = 'Bearer realm="sqs_broker"'
    return response


def data_view(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """GET only, never cached, and answered only when :func:`denied` lets the request in."""

    # CSRF protects requests that change something; these only read, and require_GET
    # answers any other method 405 before the view runs. Without the exemption a POST
    # with the bearer token met the CSRF middleware's 403 page instead of that 405.
    @csrf_exempt
    @never_cache
    @require_GET
    @wraps(view)
    def guarded(request: HttpRequest) -> HttpResponse:
        refusal = denied(request)
        return refusal if refusal is not None else view(request)

    return guarded


@data_view
def stats_json(request: HttpRequest) -> HttpResponse:
    """The same data as the dashboard, as JSON (``?window=300|3600|86400``)."""
    from sqs_broker import stats

    try:
        window = stats.parse_window(request.GET.get("window"))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    data = stats.gather(Topology.of(), window=window)
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False})


@data_view
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text of the same data; OpenMetrics when the ``Accept`` header asks for it."""
    from sqs_broker import metrics, stats

    accept = request.headers.get("Accept")
    data = stats.gather(Topology.of(), online=False, totals=True)
    body, content_type = metrics.render(data, accept)
    response = HttpResponse(body, content_type=content_type)
    patch_vary_headers(response, ["Accept"])
    return response
