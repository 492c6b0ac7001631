"""The SQS dashboard in the Django admin, and its purge and dead-letter move actions.

Django's admin autodiscovery imports this module in every process, workers
too: the data, chart and action modules are imported inside the views, so a
worker never loads them.

:class:`~sqs_broker.models.Dashboard` is an unmanaged model: it gives the page
a place on the admin index and its own permissions. Its changelist is the
dashboard; ``get_urls`` adds a page per queue, the purge and dead-letter move
confirmation pages, and the (POST-only) peek at a queue's messages.
Every number comes from :func:`sqs_broker.stats.gather`; every SQS change goes
through :mod:`sqs_broker.sqs` and is logged as an admin ``LogEntry``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from sqs_broker import sqs
from sqs_broker.conf import app_settings
from sqs_broker.models import Dashboard
from sqs_broker.redact import scrub
from sqs_broker.schema import QueueDetail


def _url(name: str) -> str | None:
    """A URL the project may or may not route (set_language, the JSON and metrics views)."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def log_action(request: HttpRequest, queue: str, message: str) -> None:
    """One admin LogEntry per action, on the Dashboard content type."""
    content_type = ContentType.objects.get_for_model(Dashboard, for_concrete_model=False)
    LogEntry.objects.create(
        # Only staff with a permission reach an action: the user is authenticated.
        user_id=int(request.user.pk or 0),
        content_type=content_type,
        object_id=queue,
        object_repr=queue[:200],
        action_flag=CHANGE,
        change_message=message,
    )


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """The dashboard: queue depths, dead-letter queues, backoff, config, findings, history."""

    # --- permissions: a view-only page with two actions of its own ---

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

    # --- URLs ---

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.changelist_view), name="sqs_broker_dashboard_changelist"),
            path("queue/<str:name>/", wrap(self.queue_view), name="sqs_broker_dashboard_queue"),
            path(
                "queue/<str:name>/peek/",
                wrap(self.peek_view),
                name="sqs_broker_dashboard_peek",
            ),
            path(
                "queue/<str:name>/purge/",
                wrap(self.purge_view),
                name="sqs_broker_dashboard_purge",
            ),
            path(
                "queue/<str:name>/redrive/",
                wrap(self.redrive_view),
                name="sqs_broker_dashboard_redrive",
            ),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            # The page needs the width more than the model list beside it.
            "is_nav_sidebar_enabled": False,
            "app_label": self.model._meta.app_label,
            "dashboard_url": reverse("admin:sqs_broker_dashboard_changelist"),
            "can_purge": request.user.has_perm("sqs_broker.purge_queue"),
            "can_redrive": request.user.has_perm("sqs_broker.redrive_queue"),
            "set_language_url": _url("set_language"),
            "stats_url": _url("sqs_broker:stats"),
            "metrics_url": _url("sqs_broker:metrics"),
            "languages": settings.LANGUAGES,
            **extra,
        }

    # --- the dashboard ---

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The dashboard: every queue, the findings, workers, tasks and configuration."""
        from sqs_broker import charts, stats
        from sqs_broker.telemetry import read as telemetry

        self._require(request)
        try:
            window = stats.parse_window(request.GET.get("window"))
        except ValueError:
            window = stats.DEFAULT_WINDOW
            messages.warning(
                request,
                _("The window must be one of the choices offered; showing the last %(s)s s.")
                % {"s": window},
            )
        data = stats.gather(window=window)
        names = [q["name"] for q in data["queues"]]
        names += [q["dlq"]["name"] for q in data["queues"] if q["dlq"]]
        series = stats.history(names)
        rows: list[dict[str, Any]] = []
        for queue in data["queues"]:
            dlq = queue["dlq"]
            rows.append(
                {
                    "q": queue,
                    "spark": charts.sparkline(series.get(queue["name"], [])),
                    "dlq_spark": charts.sparkline(series.get(dlq["name"], [])) if dlq else None,
                    "backoff_chart": charts.backoff_chart(queue["backoff_policy"]),
                    "findings": [f for f in data["findings"] if f["queue"] == queue["name"]],
                }
            )
        context = self._context(
            request,
            _("SQS dashboard"),
            data=data,
            rows=rows,
            backoff_rows=[r for r in rows if r["q"]["backoff_policy"]],
            refresh_seconds=app_settings.REFRESH_SECONDS,
            window=window,
            windows=stats.WINDOWS,
            history_hours=app_settings.HISTORY_HOURS,
            telemetry=telemetry.panels(data),
            **(extra_context or {}),
        )
        return TemplateResponse(request, "sqs_broker/dashboard.html", context)

    # --- one queue ---

    def _queue(self, name: str) -> QueueDetail:
        """The queue's row and findings, or 404 for a queue the app does not use."""
        from sqs_broker import stats

        detail = stats.queue_detail(name)
        if detail is None:
            raise Http404(_("No queue of this app is called %(name)s.") % {"name": name})
        return detail

    def queue_view(
        self, request: HttpRequest, name: str, peeked: list[dict[str, Any]] | None = None
    ) -> HttpResponse:
        """One queue: its depths, history chart, findings, backoff and (after a peek) messages."""
        from sqs_broker import charts, stats

        self._require(request)
        detail = self._queue(name)
        queue = detail["queue"]
        names = [name] + ([queue["dlq"]["name"]] if queue["dlq"] else [])
        series = stats.history(names)
        context = self._context(
            request,
            _("Queue %(name)s") % {"name": name},
            q=queue,
            chart=charts.history_chart(series[name]),
            dlq_chart=charts.history_chart(series[queue["dlq"]["name"]]) if queue["dlq"] else None,
            backoff_chart=charts.backoff_chart(queue["backoff_policy"]),
            findings=detail["findings"],
            history_hours=app_settings.HISTORY_HOURS,
            peeked=peeked,
        )
        return TemplateResponse(request, "sqs_broker/queue.html", context)

    @method_decorator(require_http_methods(["POST"]))
    def peek_view(self, request: HttpRequest, name: str) -> HttpResponse:
        """Receive up to 10 messages, show them, and let them go again."""
        from sqs_broker import actions, envelopes, stats

        # A receive raises each message's receive count, so it is an action:
        # POST only, and the permission of those who handle dead letters.
        self._require(request, "redrive_queue")
        app = stats.celery_app()
        state = self._fresh_state(name, app)
        if state.error is not None:
            messages.error(request, state.error)
            return self.queue_view(request, name, peeked=[])
        try:
            received = actions.peek(state, app)
        except Exception as exc:
            messages.error(request, sqs.error_text(exc)[0])
            return self.queue_view(request, name, peeked=[])
        log_action(request, name, f"Peeked at {len(received)} messages of {name}.")
        return self.queue_view(
            request, name, peeked=[envelopes.message_summary(m) for m in received]
        )

    # --- actions: GET shows the confirmation, only POST changes anything ---

    def _fresh_state(self, name: str, app: Any) -> sqs.QueueState:
        """The queue's state straight from SQS (an action never trusts the cache)."""
        from sqs_broker import stats

        for ref in sqs.inventory(app, discover=False):
            if ref.name == name:
                return sqs.fetch_one(ref, app)
        # Dead-letter queues of the app's queues are in the (cached) pass. Queues
        # found only by listing the prefix are another service's, perhaps: no action.
        found = stats.sqs_pass(app)
        state = found.dead_letters.get(name)
        if state is not None and name in found.owned:
            return sqs.fetch_one(state.ref, app)
        raise Http404(_("No queue of this app is called %(name)s.") % {"name": name})

    @staticmethod
    def _to_dashboard() -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:sqs_broker_dashboard_changelist"))

    @method_decorator(require_http_methods(["GET", "POST"]))
    def purge_view(self, request: HttpRequest, name: str) -> HttpResponse:
        """GET: what a purge would delete; POST: purge the queue."""
        from sqs_broker import actions, stats

        self._require(request, "purge_queue")
        app = stats.celery_app()
        state = self._fresh_state(name, app)
        if request.method == "POST" and state.error is None:
            try:
                actions.purge(state, app)
            except Exception as exc:
                text, code = sqs.error_text(exc)
                if code and code.endswith("PurgeQueueInProgress"):
                    messages.error(
                        request,
                        _(
                            "SQS is still purging %(name)s: it allows one purge per queue "
                            "every 60 seconds. Try again in a minute."
                        )
                        % {"name": name},
                    )
                else:
                    messages.error(
                        request,
                        _("Purging %(name)s failed: %(error)s") % {"name": name, "error": text},
                    )
                return self._to_dashboard()
            count = state.int("ApproximateNumberOfMessages") or 0
            log_action(request, name, f"Purged SQS queue {name} (about {count} messages).")
            messages.success(
                request,
                _(
                    "Purge of %(name)s started: SQS deletes its messages within about 60 "
                    "seconds, and allows the next purge of this queue after that."
                )
                % {"name": name},
            )
            return self._to_dashboard()
        context = self._context(
            request,
            _("Purge queue %(name)s?") % {"name": name},
            name=name,
            state_error=state.error,
            visible=state.int("ApproximateNumberOfMessages"),
            in_flight=state.int("ApproximateNumberOfMessagesNotVisible"),
            delayed=state.int("ApproximateNumberOfMessagesDelayed"),
        )
        return TemplateResponse(request, "sqs_broker/confirm_purge.html", context)

    @method_decorator(require_http_methods(["GET", "POST"]))
    def redrive_view(self, request: HttpRequest, name: str) -> HttpResponse:
        """GET: what a move back from the dead-letter queue would do; POST: move them."""
        from sqs_broker import actions, stats

        self._require(request, "redrive_queue")
        app = stats.celery_app()
        source = self._fresh_state(name, app)
        policy = stats.redrive_policy(source)
        if policy is None:
            raise Http404(
                _("Queue %(name)s has no dead-letter queue (no RedrivePolicy).") % {"name": name}
            )
        dlq = sqs.fetch_one(stats._dead_letter_ref(policy["name"], app), app)
        error = source.error or dlq.error
        if request.method == "POST" and error is None:
            try:
                handle = actions.start_message_move(dlq, source, app)
            except Exception as exc:  # a move already running, access denied: say which
                messages.error(
                    request,
                    _("Moving the messages of %(dlq)s back failed: %(error)s")
                    % {"dlq": dlq.ref.name, "error": sqs.error_text(exc)[0]},
                )
                return self._to_dashboard()
            if handle is not None:
                log_action(
                    request,
                    name,
                    f"Started StartMessageMoveTask from {dlq.ref.name} to {name} "
                    f"(task handle {handle}).",
                )
                messages.success(
                    request,
                    _(
                        "SQS started moving the messages of %(dlq)s back to %(name)s "
                        "(StartMessageMoveTask); depths update as it proceeds."
                    )
                    % {"dlq": dlq.ref.name, "name": name},
                )
                return self._to_dashboard()
            result = actions.move_messages(dlq, source, app, limit=app_settings.REDRIVE_LIMIT)
            log_action(
                request,
                name,
                f"Moved {result.moved} messages from {dlq.ref.name} back to {name} in batches "
                f"of {actions.BATCH}; {result.failed} not sent (left in {dlq.ref.name}), "
                f"{result.not_deleted} sent but not deleted."
                + (f" Errors: {'; '.join(result.errors)}" if result.errors else ""),
            )
            level = messages.success if not (result.errors or result.failed) else messages.warning
            level(
                request,
                _(
                    "Moved %(moved)s messages from %(dlq)s back to %(name)s; %(failed)s could "
                    "not be sent and stay in %(dlq)s; %(not_deleted)s were sent but could "
                    "not be deleted from it."
                )
                % {
                    "moved": result.moved,
                    "dlq": dlq.ref.name,
                    "name": name,
                    "failed": result.failed,
                    "not_deleted": result.not_deleted,
                },
            )
            for text in result.errors[:5]:
                messages.error(request, scrub(text))
            return self._to_dashboard()
        context = self._context(
            request,
            _("Move messages from %(dlq)s back to %(name)s?") % {"dlq": dlq.ref.name, "name": name},
            name=name,
            dlq_name=dlq.ref.name,
            state_error=error,
            dlq_visible=dlq.int("ApproximateNumberOfMessages"),
            max_receive_count=policy["max_receive_count"],
            limit=app_settings.REDRIVE_LIMIT,
        )
        return TemplateResponse(request, "sqs_broker/confirm_redrive.html", context)
