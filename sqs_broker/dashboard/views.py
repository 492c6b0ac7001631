"""The dashboard's pages in the Django admin: the dashboard, a queue's page, its actions, a task.

Each view is a function of the :class:`~sqs_broker.admin.DashboardAdmin` that
routes to it and the request; ``admin.py`` checks the permissions and the
HTTP method before calling it (see its ``get_urls``), so a view here only
reads, acts and renders. Every number comes from :func:`sqs_broker.stats.gather`
(or :func:`~sqs_broker.stats.queue_detail`); every SQS change goes through
:mod:`sqs_broker.actions` or :mod:`sqs_broker.moves` and is logged as an admin
``LogEntry``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from sqs_broker import actions, envelopes, history, moves, remote, results, sqs, stats, triage
from sqs_broker.conf import app_settings
from sqs_broker.dashboard import charts, panels
from sqs_broker.dashboard import rows as table
from sqs_broker.models import Dashboard, Revocation
from sqs_broker.redact import scrub
from sqs_broker.schema import QueueDetail
from sqs_broker.topology import Topology

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    #: The ModelAdmin a view is routed from: its site's context and its model's options.
    Admin = ModelAdmin[Any]

#: A move's states as people read them.
MOVE_STATES = {
    "running": gettext_lazy("running"),
    "done": gettext_lazy("done"),
    "cancelled": gettext_lazy("cancelled"),
    "failed": gettext_lazy("failed"),
}


#: Where deletions are recorded beside the LogEntry (as the commands record theirs).
audit = logging.getLogger("sqs_broker.audit")


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


def context(model_admin: Admin, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    """What every page's template reads: the admin site's context, the links, the permissions."""
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        # The page needs the width more than the model list beside it.
        "is_nav_sidebar_enabled": False,
        "app_label": model_admin.model._meta.app_label,
        "dashboard_url": reverse("admin:sqs_broker_dashboard_changelist"),
        "can_purge": request.user.has_perm("sqs_broker.purge_queue"),
        "can_redrive": request.user.has_perm("sqs_broker.redrive_queue"),
        "set_language_url": _url("set_language"),
        "stats_url": _url("sqs_broker:stats"),
        "metrics_url": _url("sqs_broker:metrics"),
        "task_url": reverse("admin:sqs_broker_dashboard_task"),
        "workers_url": reverse("admin:sqs_broker_dashboard_workers"),
        "remote_enabled": remote.enabled(),
        "can_revoke": request.user.has_perm("sqs_broker.revoke_task"),
        "languages": settings.LANGUAGES,
        **extra,
    }


# --- the dashboard ---


def dashboard(
    model_admin: Admin, request: HttpRequest, extra_context: dict[str, Any] | None = None
) -> HttpResponse:
    """The dashboard: every queue, the findings, workers, tasks and configuration."""
    try:
        window = stats.parse_window(request.GET.get("window"))
    except ValueError:
        window = stats.DEFAULT_WINDOW
        messages.warning(
            request,
            _("The window must be one of the choices offered; showing the last %(s)s s.")
            % {"s": window},
        )
    topo = Topology.of()
    data = stats.gather(topo, window=window)
    names = [q["name"] for q in data["queues"]]
    names += [q["dlq"]["name"] for q in data["queues"] if q["dlq"]]
    axis = history.history_window()
    series = history.history(names, window=axis)
    # Remote control's mailboxes and reply queues get a table of their own, below the task queues.
    task_queues = [q for q in data["queues"] if q["kind"] == "task"]
    mailbox_rows = [q for q in data["queues"] if q["kind"] != "task"]
    rows = table.queue_rows(
        task_queues,
        series,
        data["findings"],
        window=axis,
        can_purge=request.user.has_perm("sqs_broker.purge_queue"),
        can_redrive=request.user.has_perm("sqs_broker.redrive_queue"),
    )
    problems, others = panels.findings_by_level(data["findings"])
    page = context(
        model_admin,
        request,
        _("SQS dashboard"),
        data=data,
        rows=rows,
        mailbox_rows=mailbox_rows,
        labels=table.labels(),
        backoff_rows=[r for r in rows if r["q"]["backoff_policy"]],
        refresh_seconds=app_settings.REFRESH_SECONDS,
        window=window,
        windows=stats.WINDOWS,
        history_hours=app_settings.HISTORY_HOURS,
        telemetry=panels.panels(data),
        findings_by_level=problems,
        findings_info=others,
        backoff_open=any(r["findings"] for r in rows if r["q"]["backoff_policy"]),
        **(extra_context or {}),
    )
    return TemplateResponse(request, "sqs_broker/dashboard.html", page)


# --- one queue ---


def _queue(name: str, topo: Topology) -> QueueDetail:
    """The queue's row and findings, or 404 for a queue the app does not use."""
    detail = stats.queue_detail(name, topo)
    if detail is None:
        raise Http404(_("No queue of this app is called %(name)s.") % {"name": name})
    return detail


def queue(
    model_admin: Admin,
    request: HttpRequest,
    name: str,
    peeked: list[dict[str, Any]] | None = None,
    topo: Topology | None = None,
) -> HttpResponse:
    """One queue: its depths, history chart, findings, backoff and (after a peek) messages."""
    detail = _queue(name, topo or Topology.of())
    row = detail["queue"]
    names = [name] + ([row["dlq"]["name"]] if row["dlq"] else [])
    axis = history.history_window()
    series = history.history(names, window=axis)
    page = context(
        model_admin,
        request,
        _("Queue %(name)s") % {"name": name},
        q=row,
        chart=charts.history_chart(series[name], window=axis),
        dlq_chart=charts.history_chart(series[row["dlq"]["name"]], window=axis)
        if row["dlq"]
        else None,
        backoff_chart=charts.backoff_chart(row["backoff_policy"]),
        findings=detail["findings"],
        history_hours=app_settings.HISTORY_HOURS,
        peeked=peeked,
        dead_letter_of=detail["dead_letter_of"],
        breakdown=triage.last(name),
    )
    return TemplateResponse(request, "sqs_broker/queue.html", page)


def peek(model_admin: Admin, request: HttpRequest, name: str) -> HttpResponse:
    """Receive up to 10 messages, show them, and let them go again (POST only)."""
    # A receive raises each message's receive count, so it is an action:
    # POST only, and the permission of those who handle dead letters (admin.py).
    topo = Topology.of()
    state = _fresh_state(name, topo)
    if state.error is not None:
        messages.error(request, state.error)
        return queue(model_admin, request, name, peeked=[], topo=topo)
    try:
        received = actions.peek(state, topo)
    except Exception as exc:
        messages.error(request, sqs.error_text(exc)[0])
        return queue(model_admin, request, name, peeked=[], topo=topo)
    log_action(request, name, f"Peeked at {len(received)} messages of {name}.")
    found = _with_results(request, received)
    return queue(model_admin, request, name, peeked=found, topo=topo)


def _with_results(request: HttpRequest, received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message's summary with its stored result (state, exception, traceback), if any."""
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


def _fresh_state(name: str, topo: Topology) -> sqs.QueueState:
    """The queue's state straight from SQS (an action never trusts the cache)."""
    state = actions.owned_state(name, topo)
    if state is None:
        raise Http404(_("No queue of this app is called %(name)s.") % {"name": name})
    return state


def _to_dashboard() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:sqs_broker_dashboard_changelist"))


def purge(model_admin: Admin, request: HttpRequest, name: str) -> HttpResponse:
    """GET: what a purge would delete; POST: purge the queue."""
    topo = Topology.of()
    state = _fresh_state(name, topo)
    typed = request.POST.get("confirm", "").strip()
    mistyped = request.method == "POST" and typed != name
    if request.method == "POST" and state.error is None and not mistyped:
        try:
            actions.purge(state, topo)
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
            return _to_dashboard()
        count = state.int("ApproximateNumberOfMessages") or 0
        log_action(request, name, f"Purged SQS queue {name} (about {count} messages).", DELETION)
        messages.success(
            request,
            _(
                "Purge of %(name)s started: SQS deletes its messages within about 60 "
                "seconds, and allows the next purge of this queue after that."
            )
            % {"name": name},
        )
        return _to_dashboard()
    page = context(
        model_admin,
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
        request, "sqs_broker/confirm_purge.html", page, status=400 if mistyped else 200
    )


def redrive(model_admin: Admin, request: HttpRequest, name: str) -> HttpResponse:
    """GET: the move form (all, or by task name or exception, at a rate); POST: start it."""
    topo = Topology.of()
    source = _fresh_state(name, topo)
    policy = sqs.redrive_policy(source)
    if policy is None:
        raise Http404(
            _("Queue %(name)s has no dead-letter queue (no RedrivePolicy).") % {"name": name}
        )
    dlq = actions.dead_letter_state(source, topo)
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
                topo,
                task=task or None,
                exception=exception or None,
                rate=rate,
                limit=app_settings.REDRIVE_LIMIT,
                user=request.user.get_username(),
                include_succeeded=request.POST.get("include_succeeded") == "on",
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
            return _to_dashboard()
        else:
            # The first step runs now: a small move is done before the page shows.
            record = moves.step(record["id"], topo)
            _log_move(request, record, started=True)
            return HttpResponseRedirect(
                reverse("admin:sqs_broker_dashboard_move", args=[name, record["id"]])
            )
    page = context(
        model_admin,
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
        **(triage.shown(dlq, topo, name) if error is None else {}),
        delete_succeeded_url=reverse("admin:sqs_broker_dashboard_delete_succeeded", args=[name]),
    )
    return TemplateResponse(request, "sqs_broker/confirm_redrive.html", page)


def delete_succeeded(model_admin: Admin, request: HttpRequest, name: str) -> HttpResponse:
    """GET: the dead letters and what would go; POST (DLQ name typed): delete the succeeded."""
    topo = Topology.of()
    dlq = actions.dead_letter_state(_fresh_state(name, topo), topo)
    if dlq is None:
        raise Http404(_("Queue %(name)s has no dead-letter queue.") % {"name": name})
    mistyped = request.method == "POST" and request.POST.get("confirm", "").strip() != dlq.ref.name
    if request.method == "POST" and dlq.error is None and not mistyped:
        try:
            done = triage.delete_succeeded(dlq, topo)
        except Exception as exc:  # the result store or SQS failed: nothing hidden
            messages.error(request, scrub(f"{type(exc).__name__}: {exc}"))
            return _to_dashboard()
        text = triage.describe_deleted(done)
        log_action(request, dlq.ref.name, text, DELETION)
        audit.info("admin by %s: %s", request.user.get_username(), text)
        (messages.warning if done["errors"] else messages.success)(request, text)
        return HttpResponseRedirect(
            reverse("admin:sqs_broker_dashboard_queue", args=[dlq.ref.name])
        )
    page = context(
        model_admin,
        request,
        _("Delete the succeeded dead letters of %(dlq)s?") % {"dlq": dlq.ref.name},
        name=name,
        dlq_name=dlq.ref.name,
        state_error=dlq.error,
        mistyped=mistyped,
        breakdown=triage.last(dlq.ref.name),
    )
    template = "sqs_broker/confirm_delete_succeeded.html"
    return TemplateResponse(request, template, page, status=400 if mistyped else 200)


def _log_move(request: HttpRequest, record: dict[str, Any], started: bool = False) -> None:
    """A LogEntry when a move starts (and is still running) and one when it ends."""
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
            "%(succeeded)s left because their task succeeded, %(skipped)s passed over by "
            "the filter, %(failed)s not sent, %(not_deleted)s sent but not deleted."
        )
        % {
            "moved": record["moved"],
            "dlq": record["source"],
            "name": record["destination"],
            "state": MOVE_STATES.get(record["state"], record["state"]),
            "skipped": record["skipped"],
            "succeeded": len(record.get("succeeded") or {}),
            "failed": record["failed"],
            "not_deleted": record["not_deleted"],
        },
    )
    for text in record["errors"]:
        messages.error(request, scrub(text))


def _move(name: str, move_id: str) -> dict[str, Any]:
    record = moves.get(move_id)
    if record is None or record["destination"] != name:
        raise Http404(_("No move %(id)s is known (moves are kept a day).") % {"id": move_id})
    return record


def move(model_admin: Admin, request: HttpRequest, name: str, move_id: str) -> HttpResponse:
    """A move's progress; the page steps it while open (dashboard.js) and can cancel it."""
    record = _move(name, move_id)
    page = context(
        model_admin,
        request,
        _("Moving %(dlq)s back to %(name)s") % {"dlq": record["source"], "name": name},
        name=name,
        move=record,
        step_url=reverse("admin:sqs_broker_dashboard_move_step", args=[name, move_id]),
        cancel_url=reverse("admin:sqs_broker_dashboard_move_cancel", args=[name, move_id]),
    )
    return TemplateResponse(request, "sqs_broker/move.html", page)


def _move_answer(request: HttpRequest, record: dict[str, Any]) -> HttpResponse:
    if "application/json" in request.headers.get("Accept", ""):
        shown = {k: v for k, v in record.items() if k not in ("seen", "user", "succeeded")}
        shown["succeeded"] = len(record.get("succeeded") or {})
        shown["state_label"] = str(MOVE_STATES.get(record["state"], record["state"]))
        return JsonResponse(shown)
    return HttpResponseRedirect(
        reverse("admin:sqs_broker_dashboard_move", args=[record["destination"], record["id"]])
    )


def move_step(model_admin: Admin, request: HttpRequest, name: str, move_id: str) -> HttpResponse:
    """One bounded step of the move; JSON progress for the page's script, else a redirect."""
    _move(name, move_id)
    record = moves.step(move_id, Topology.of())
    _log_move(request, record)
    return _move_answer(request, record)


def move_cancel(model_admin: Admin, request: HttpRequest, name: str, move_id: str) -> HttpResponse:
    """Cancel the move (CancelMessageMoveTask for a native one)."""
    _move(name, move_id)
    record = moves.cancel(move_id, Topology.of())
    _log_move(request, record)
    return _move_answer(request, record)


# --- find a task ---


def task(model_admin: Admin, request: HttpRequest) -> HttpResponse:
    """A task's stored result by id: state, exception, scrubbed traceback, admin link."""
    task_id = request.GET.get("id", "").strip()[:255]
    found, error = None, None
    if task_id:
        try:
            found = results.lookup([task_id]).get(task_id)
        except Exception as exc:  # a backend down: say so, not "not found"
            error = scrub(f"{type(exc).__name__}: {exc}")
    page = context(
        model_admin,
        request,
        _("Task %(id)s") % {"id": task_id} if task_id else _("Find a task"),
        task_id=task_id,
        result=found,
        lookup_error=error,
        seen=triage.where_is(task_id) if task_id else None,
        revoked=Revocation.objects.filter(task_id=task_id).first() if task_id else None,
        revoke_url=reverse("admin:sqs_broker_dashboard_revoke"),
        task_url=reverse("admin:sqs_broker_dashboard_task"),
    )
    return TemplateResponse(request, "sqs_broker/task.html", page)
