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
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
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


def log_action(request: HttpRequest, queue: str, message: str, flag: int = CHANGE) -> None:
    """One admin LogEntry per action, on the Dashboard content type.

    ``object_repr`` is the sentence itself (cut to the column's 200
    characters): the admin's Recent actions shows it, so it reads "Purged
    celery (about 9 messages)." rather than the bare queue name.
    """
    content_type = ContentType.objects.get_for_model(Dashboard, for_concrete_model=False)
    LogEntry.objects.create(
        # Only staff with a permission reach an action: the user is authenticated.
        user_id=int(request.user.pk or 0),
        content_type=content_type,
        object_id=queue,
        object_repr=scrub(message)[:200],
        action_flag=flag,
        change_message=scrub(message),
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
            path(
                "queue/<str:name>/move/<str:move_id>/",
                wrap(self.move_view),
                name="sqs_broker_dashboard_move",
            ),
            path(
                "queue/<str:name>/move/<str:move_id>/step/",
                wrap(self.move_step_view),
                name="sqs_broker_dashboard_move_step",
            ),
            path(
                "queue/<str:name>/move/<str:move_id>/cancel/",
                wrap(self.move_cancel_view),
                name="sqs_broker_dashboard_move_cancel",
            ),
            path("task/", wrap(self.task_view), name="sqs_broker_dashboard_task"),
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
            "task_url": reverse("admin:sqs_broker_dashboard_task"),
            "languages": settings.LANGUAGES,
            **extra,
        }

    # --- the dashboard ---

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The dashboard: every queue, the findings, workers, tasks and configuration."""
        from sqs_broker import rows as table
        from sqs_broker import stats
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
        rows = table.queue_rows(
            data["queues"],
            series,
            data["findings"],
            can_purge=request.user.has_perm("sqs_broker.purge_queue"),
            can_redrive=request.user.has_perm("sqs_broker.redrive_queue"),
        )
        context = self._context(
            request,
            _("SQS dashboard"),
            data=data,
            rows=rows,
            labels=table.labels(),
            backoff_rows=[r for r in rows if r["q"]["backoff_policy"]],
            refresh_seconds=app_settings.REFRESH_SECONDS,
            window=window,
            windows=stats.WINDOWS,
            history_hours=app_settings.HISTORY_HOURS,
            telemetry=telemetry.panels(data),
            # Problems first: errors, then warnings; the rest folded below them.
            findings_by_level=sorted(
                [f for f in data["findings"] if f["level"] in ("error", "warning")],
                key=lambda f: f["level"] != "error",
            ),
            findings_info=[f for f in data["findings"] if f["level"] not in ("error", "warning")],
            backoff_open=any(r["findings"] for r in rows if r["q"]["backoff_policy"]),
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
        from sqs_broker import actions, stats

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
        return self.queue_view(request, name, peeked=self._with_results(request, received))

    @staticmethod
    def _with_results(request: HttpRequest, received: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each message's summary with its stored result (state, exception, traceback), if any."""
        from sqs_broker import envelopes, results

        peeked = [envelopes.message_summary(m) for m in received]
        try:
            found = results.lookup([m["task_id"] for m in peeked if m["task_id"]])
        except Exception as exc:  # the messages still show; the lookup's failure is said
            messages.warning(
                request,
                _("Stored results could not be read: %(error)s")
                % {"error": scrub(f"{type(exc).__name__}: {exc}")},
            )
            found = {}
        for message in peeked:
            message["result"] = found.get(message["task_id"] or "")
        return peeked

    # --- actions: GET shows the confirmation, only POST changes anything ---

    def _fresh_state(self, name: str, app: Any) -> sqs.QueueState:
        """The queue's state straight from SQS (an action never trusts the cache)."""
        from sqs_broker import actions

        state = actions.owned_state(name, app)
        if state is None:
            raise Http404(_("No queue of this app is called %(name)s.") % {"name": name})
        return state

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
        typed = request.POST.get("confirm", "").strip()
        mistyped = request.method == "POST" and typed != name
        if request.method == "POST" and state.error is None and not mistyped:
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
            log_action(
                request, name, f"Purged SQS queue {name} (about {count} messages).", DELETION
            )
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
            mistyped=mistyped,
        )
        return TemplateResponse(
            request, "sqs_broker/confirm_purge.html", context, status=400 if mistyped else 200
        )

    @method_decorator(require_http_methods(["GET", "POST"]))
    def redrive_view(self, request: HttpRequest, name: str) -> HttpResponse:
        """GET: the move form (all, or by task name or exception, at a rate); POST: start it."""
        from sqs_broker import actions, moves, stats

        self._require(request, "redrive_queue")
        app = stats.celery_app()
        source = self._fresh_state(name, app)
        policy = stats.redrive_policy(source)
        if policy is None:
            raise Http404(
                _("Queue %(name)s has no dead-letter queue (no RedrivePolicy).") % {"name": name}
            )
        dlq = actions.dead_letter_state(source, app)
        if dlq is None:  # the policy changed between the two reads
            raise Http404(_("Queue %(name)s has no dead-letter queue.") % {"name": name})
        error = source.error or dlq.error
        form_error = None
        if request.method == "POST" and error is None:
            task = request.POST.get("task", "").strip()[:200]
            exception = request.POST.get("exception", "").strip()[:200]
            try:
                rate = float(request.POST["rate"]) if request.POST.get("rate") else None
                record = moves.start(
                    dlq,
                    source,
                    app,
                    task=task or None,
                    exception=exception or None,
                    rate=rate,
                    limit=app_settings.REDRIVE_LIMIT,
                    user=request.user.get_username(),
                )
            except ValueError as exc:
                form_error = _("The rate must be a positive number of messages per second.")
                if "limit" in str(exc):
                    form_error = str(exc)
            except Exception as exc:  # a move already running, access denied: say which
                messages.error(
                    request,
                    _("Moving the messages of %(dlq)s back failed: %(error)s")
                    % {"dlq": dlq.ref.name, "error": sqs.error_text(exc)[0]},
                )
                return self._to_dashboard()
            else:
                # The first step runs now: a small move is done before the page shows.
                record = moves.step(record["id"], app)
                self._log_move(request, record, started=True)
                return HttpResponseRedirect(
                    reverse("admin:sqs_broker_dashboard_move", args=[name, record["id"]])
                )
        context = self._context(
            request,
            _("Move messages from %(dlq)s back to %(name)s?") % {"dlq": dlq.ref.name, "name": name},
            name=name,
            dlq_name=dlq.ref.name,
            state_error=error,
            form_error=form_error,
            dlq_visible=dlq.int("ApproximateNumberOfMessages"),
            max_receive_count=policy["max_receive_count"],
            limit=app_settings.REDRIVE_LIMIT,
            posted=request.POST if request.method == "POST" else {},
        )
        return TemplateResponse(request, "sqs_broker/confirm_redrive.html", context)

    def _log_move(
        self, request: HttpRequest, record: dict[str, Any], started: bool = False
    ) -> None:
        """A LogEntry when a move starts (and is still running) and one when it ends."""
        from sqs_broker import moves

        if record["state"] == "running":
            if started:
                log_action(request, record["destination"], "Started: " + moves.describe(record))
            return
        if record.get("logged"):
            return
        record["logged"] = True
        moves._save(record)
        log_action(request, record["destination"], moves.describe(record))
        level = messages.success
        if record["state"] != "done" or record["failed"] or record["not_deleted"]:
            level = messages.warning
        level(
            request,
            _(
                "Moved %(moved)s messages from %(dlq)s back to %(name)s (%(state)s); "
                "%(skipped)s passed over by the filter, %(failed)s not sent, "
                "%(not_deleted)s sent but not deleted."
            )
            % {
                "moved": record["moved"],
                "dlq": record["source"],
                "name": record["destination"],
                "state": MOVE_STATES.get(record["state"], record["state"]),
                "skipped": record["skipped"],
                "failed": record["failed"],
                "not_deleted": record["not_deleted"],
            },
        )
        for text in record["errors"]:
            messages.error(request, scrub(text))

    def _move(self, request: HttpRequest, name: str, move_id: str) -> dict[str, Any]:
        from sqs_broker import moves

        self._require(request, "redrive_queue")
        record = moves.get(move_id)
        if record is None or record["destination"] != name:
            raise Http404(_("No move %(id)s is known (moves are kept a day).") % {"id": move_id})
        return record

    @method_decorator(require_http_methods(["GET"]))
    def move_view(self, request: HttpRequest, name: str, move_id: str) -> HttpResponse:
        """A move's progress; the page steps it while open (dashboard.js) and can cancel it."""
        record = self._move(request, name, move_id)
        context = self._context(
            request,
            _("Moving %(dlq)s back to %(name)s") % {"dlq": record["source"], "name": name},
            name=name,
            move=record,
            step_url=reverse("admin:sqs_broker_dashboard_move_step", args=[name, move_id]),
            cancel_url=reverse("admin:sqs_broker_dashboard_move_cancel", args=[name, move_id]),
        )
        return TemplateResponse(request, "sqs_broker/move.html", context)

    def _move_answer(self, request: HttpRequest, record: dict[str, Any]) -> HttpResponse:
        from django.http import JsonResponse

        if "application/json" in request.headers.get("Accept", ""):
            shown = {k: v for k, v in record.items() if k not in ("seen", "user")}
            shown["state_label"] = str(MOVE_STATES.get(record["state"], record["state"]))
            return JsonResponse(shown)
        return HttpResponseRedirect(
            reverse("admin:sqs_broker_dashboard_move", args=[record["destination"], record["id"]])
        )

    @method_decorator(require_http_methods(["POST"]))
    def move_step_view(self, request: HttpRequest, name: str, move_id: str) -> HttpResponse:
        """One bounded step of the move; JSON progress for the page's script, else a redirect."""
        from sqs_broker import moves, stats

        self._move(request, name, move_id)
        record = moves.step(move_id, stats.celery_app())
        self._log_move(request, record)
        return self._move_answer(request, record)

    @method_decorator(require_http_methods(["POST"]))
    def move_cancel_view(self, request: HttpRequest, name: str, move_id: str) -> HttpResponse:
        """Cancel the move (CancelMessageMoveTask for a native one)."""
        from sqs_broker import moves, stats

        self._move(request, name, move_id)
        record = moves.cancel(move_id, stats.celery_app())
        self._log_move(request, record)
        return self._move_answer(request, record)

    # --- find a task ---

    @method_decorator(require_http_methods(["GET"]))
    def task_view(self, request: HttpRequest) -> HttpResponse:
        """A task's stored result by id: state, exception, scrubbed traceback, admin link."""
        from sqs_broker import results

        self._require(request)
        task_id = request.GET.get("id", "").strip()[:255]
        found, error = None, None
        if task_id:
            try:
                found = results.lookup([task_id]).get(task_id)
            except Exception as exc:  # a backend down: say so, not "not found"
                error = scrub(f"{type(exc).__name__}: {exc}")
        context = self._context(
            request,
            _("Task %(id)s") % {"id": task_id} if task_id else _("Find a task"),
            task_id=task_id,
            result=found,
            lookup_error=error,
            task_url=reverse("admin:sqs_broker_dashboard_task"),
        )
        return TemplateResponse(request, "sqs_broker/task.html", context)


#: A move's states as people read them.
MOVE_STATES = {
    "running": gettext_lazy("running"),
    "done": gettext_lazy("done"),
    "cancelled": gettext_lazy("cancelled"),
    "failed": gettext_lazy("failed"),
}
