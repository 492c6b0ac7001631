"""The SQS dashboard's place in the Django admin: its URLs and who may open them.

:class:`~sqs_broker.models.Dashboard` is an unmanaged model: it gives the page
a place on the admin index and its own permissions. Its changelist is the
dashboard; ``get_urls`` adds a page per queue, the purge and dead-letter move
confirmation pages, the (POST-only) peek at a queue's messages, a task's
stored result, the workers' tasks and the worker actions' confirmation pages.
The pages themselves are :mod:`sqs_broker.dashboard.views` and ``.workers``.

Django's admin autodiscovery imports this module in every process, workers
too, and the URL check Celery's Django fixup runs builds these URLs there:
the views are named here and imported only when a request reaches one
(:meth:`DashboardAdmin._page`), so a worker never loads the dashboard
(docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.views.decorators.http import require_http_methods

from sqs_broker.models import Dashboard

#: A dashboard view: the ModelAdmin, the request, then the URL's arguments.
View = Callable[..., HttpResponse]


def _view(name: str) -> View:
    """The page ``name`` (``views`` or ``workers.<page>`` of :mod:`sqs_broker.dashboard`),
    imported on first use."""
    # A request's work: never done in a worker.
    from sqs_broker.dashboard import views, workers

    module, _, function = name.rpartition(".")
    view: View = getattr(workers if module == "workers" else views, function)
    return view


if TYPE_CHECKING:
    # django-stubs makes ModelAdmin generic; at run time it is a plain class.
    ModelAdmin = admin.ModelAdmin[Dashboard]
else:
    ModelAdmin = admin.ModelAdmin


@admin.register(Dashboard)
class DashboardAdmin(ModelAdmin):
    """The dashboard: queue depths, dead-letter queues, backoff, config, findings, history."""

    # --- permissions: a view-only page with actions of its own, one permission each ---

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.has_perm("sqs_broker.view_dashboard")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _require(self, request: HttpRequest, perm: str | None = None) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if perm and not request.user.has_perm(f"sqs_broker.{perm}"):
            raise PermissionDenied

    def _page(
        self, view: str, perm: str | None = None, methods: Sequence[str] | None = None
    ) -> Callable[..., HttpResponse]:
        """Dashboard view ``view`` behind the admin's login, ``methods`` and permission ``perm``.

        The order is the response's: a wrong method is 405 before a missing
        permission is 403, as Django's decorators on a method would answer.
        """

        def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            self._require(request, perm)
            return _view(view)(self, request, *args, **kwargs)

        guarded = require_http_methods(list(methods))(page) if methods else page
        return self.admin_site.admin_view(guarded)

    # --- URLs ---

    def get_urls(self) -> list[URLPattern]:
        queue = "queue/<str:name>/"
        move = queue + "move/<str:move_id>/"
        redrive = "redrive_queue"
        return [
            path("", self._page("dashboard"), name="sqs_broker_dashboard_changelist"),
            path(queue, self._page("queue"), name="sqs_broker_dashboard_queue"),
            path(
                queue + "peek/",
                self._page("peek", redrive, ["POST"]),
                name="sqs_broker_dashboard_peek",
            ),
            path(
                queue + "purge/",
                self._page("purge", "purge_queue", ["GET", "POST"]),
                name="sqs_broker_dashboard_purge",
            ),
            path(
                queue + "redrive/",
                self._page("redrive", redrive, ["GET", "POST"]),
                name="sqs_broker_dashboard_redrive",
            ),
            path(
                queue + "delete-succeeded/",
                self._page("delete_succeeded", "purge_queue", ["GET", "POST"]),
                name="sqs_broker_dashboard_delete_succeeded",
            ),
            path(move, self._page("move", redrive, ["GET"]), name="sqs_broker_dashboard_move"),
            path(
                move + "step/",
                self._page("move_step", redrive, ["POST"]),
                name="sqs_broker_dashboard_move_step",
            ),
            path(
                move + "cancel/",
                self._page("move_cancel", redrive, ["POST"]),
                name="sqs_broker_dashboard_move_cancel",
            ),
            path("task/", self._page("task", None, ["GET"]), name="sqs_broker_dashboard_task"),
            # The worker actions (Celery's remote control, sqs_broker.remote).
            path("workers/", self._page("workers.workers"), name="sqs_broker_dashboard_workers"),
            path(
                "revoke/",
                self._page("workers.revoke", "revoke_task", ["GET", "POST"]),
                name="sqs_broker_dashboard_revoke",
            ),
            path(
                "rate-limit/",
                self._page("workers.rate_limit", "rate_limit_task", ["GET", "POST"]),
                name="sqs_broker_dashboard_rate_limit",
            ),
            path(
                "worker/<str:hostname>/pool/",
                self._page("workers.pool", "resize_pool", ["GET", "POST"]),
                name="sqs_broker_dashboard_pool",
            ),
            path(
                "worker/<str:hostname>/shutdown/",
                self._page("workers.shutdown", "shutdown_worker", ["GET", "POST"]),
                name="sqs_broker_dashboard_shutdown",
            ),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The dashboard (the admin index links here)."""
        self._require(request)
        return _view("dashboard")(self, request, extra_context)
