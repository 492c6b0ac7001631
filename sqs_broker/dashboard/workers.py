"""The workers' pages: the tasks each worker holds, and the worker actions.

Every call to the workers goes through :mod:`sqs_broker.remote` (bounded by
the heartbeats' count of live workers and a short timeout). Each action is a
confirmation page (GET) and its POST, behind its own permission
(``admin.py``); a POST without its ``confirm`` field naming the target does
nothing. Each action is logged as an admin ``LogEntry`` and on the
``sqs_broker.audit`` logger, and what the workers answered (or that some
did not) is said on the next page.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin.models import CHANGE
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from sqs_broker import remote, revocations
from sqs_broker.conf import app_settings
from sqs_broker.dashboard.views import audit, context, log_action
from sqs_broker.models import Revocation, WorkerHeartbeat
from sqs_broker.redact import scrub

if TYPE_CHECKING:
    from sqs_broker.dashboard.views import Admin

#: A rate limit as Celery reads it: tasks per second, or per s, m or h ("10/m"); 0 removes it.
RATE = re.compile(r"^\d+(\.\d+)?(/[smh])?$")
#: Task names as Celery registers them: no spaces, at most the column's length.
TASK_NAME = re.compile(r"^[^\s]{1,255}$")
#: The most processes a pool grows or shrinks by in one action.
MAX_RESIZE = 32


def _permissions(request: HttpRequest) -> dict[str, bool]:
    has = request.user.has_perm
    return {
        "can_revoke": has("sqs_broker.revoke_task"),
        "can_rate_limit": has("sqs_broker.rate_limit_task"),
        "can_resize": has("sqs_broker.resize_pool"),
        "can_shutdown": has("sqs_broker.shutdown_worker"),
    }


def _page(model_admin: Admin, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return context(
        model_admin,
        request,
        title,
        how_to_turn_on=remote.HOW_TO_TURN_ON,
        reply_timeout=remote.reply_timeout(),
        **_permissions(request),
        **extra,
    )


def _to_workers() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:sqs_broker_dashboard_workers"))


def say(request: HttpRequest, outcome: remote.Outcome, what: str) -> str:
    """Tell the user what the workers answered; the same as one line for the logs."""
    if not outcome.enabled:
        text = _("Remote control is off: %(how)s.") % {"how": remote.HOW_TO_TURN_ON}
        messages.warning(request, text)
        return "remote control off, not sent"
    if outcome.error:
        messages.error(
            request,
            _("%(what)s failed: %(error)s") % {"what": what, "error": outcome.error},
        )
        return f"failed: {outcome.error}"
    parts = []
    if outcome.sent_only:
        messages.success(
            request,
            _(
                "%(what)s: sent. A worker shutting down does not answer; its heartbeat shows it "
                "stopped once it has finished its running tasks."
            )
            % {"what": what},
        )
        parts.append("sent")
    if outcome.done:
        messages.success(
            request,
            _("%(what)s: done by %(workers)s.")
            % {"what": what, "workers": ", ".join(sorted(outcome.done))},
        )
        parts.append("done by " + ", ".join(sorted(outcome.done)))
    for hostname, why in sorted(outcome.refused.items()):
        messages.warning(
            request, _("Worker %(worker)s answered: %(why)s") % {"worker": hostname, "why": why}
        )
        parts.append(f"{hostname}: {why}")
    for note in outcome.notes:
        messages.warning(request, note)
        parts.append(note)
    if outcome.missing:
        messages.warning(
            request,
            _("No answer within %(s)s s from: %(workers)s.")
            % {"s": f"{remote.reply_timeout():g}", "workers": ", ".join(outcome.missing)},
        )
        parts.append("no answer from " + ", ".join(outcome.missing))
    if not parts:
        messages.warning(request, _("%(what)s: no worker answered.") % {"what": what})
        parts.append("no worker answered")
    return "; ".join(parts)


def _record(request: HttpRequest, target: str, text: str) -> None:
    """The action as a LogEntry and an audit line."""
    log_action(request, target, text, CHANGE)
    audit.info("admin by %s: %s", request.user.get_username(), scrub(text))


# --- the workers' tasks ---


def workers(model_admin: Admin, request: HttpRequest) -> HttpResponse:
    """Per worker, the tasks it runs, holds and waits to run (their ETA), and the actions."""
    found = remote.tasks()
    page = _page(model_admin, request, _("Workers' tasks"), found=found)
    return TemplateResponse(request, "sqs_broker/workers.html", page)


# --- revoke ---


def revoke(model_admin: Admin, request: HttpRequest) -> HttpResponse:
    """GET: what revoking a task does; POST (``confirm`` = the id): store it and broadcast it."""
    data = request.POST if request.method == "POST" else request.GET
    task_id = data.get("id", "").strip()[: revocations.MAX_TASK_ID]
    reason = data.get("reason", "").strip()
    terminate = data.get("terminate") == "on"
    error = None
    if request.method == "POST":
        if not task_id or data.get("confirm") != task_id:
            error = _("Nothing was revoked: confirm on this page which task to revoke.")
        elif len(reason) > revocations.MAX_REASON:
            error = _("A reason is at most %(n)s characters.") % {"n": revocations.MAX_REASON}
        else:
            return _revoke(request, task_id, reason, terminate)
    live = remote.live_workers()
    page = _page(
        model_admin,
        request,
        _("Revoke task %(id)s?") % {"id": task_id} if task_id else _("Revoke a task"),
        task_id=task_id,
        reason=reason,
        form_error=error,
        revoked=Revocation.objects.filter(task_id=task_id).first() if task_id else None,
        refresh=app_settings.REVOCATION_REFRESH,
        revocations_on=app_settings.REVOCATIONS,
        terminating=[w for w in live if w.pool in remote.TERMINATING_POOLS],
        not_terminating=[w for w in live if w.pool not in remote.TERMINATING_POOLS],
    )
    status = 400 if error else 200
    return TemplateResponse(request, "sqs_broker/confirm_revoke.html", page, status=status)


def _revoke(request: HttpRequest, task_id: str, reason: str, terminate: bool) -> HttpResponse:
    user = request.user.get_username()
    try:
        stored = revocations.revoke([task_id], user=user, reason=reason, via="admin")
    except ValueError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(
            reverse("admin:sqs_broker_dashboard_revoke") + "?" + urlencode({"id": task_id})
        )
    until = stored.expires_at.isoformat(timespec="seconds")
    messages.success(
        request,
        _(
            "Revoked %(id)s until %(until)s: workers refuse it from their next refresh (within "
            "%(s)s s), those started later included."
        )
        % {"id": task_id, "until": until, "s": f"{app_settings.REVOCATION_REFRESH:g}"},
    )
    text = f"Revoked task {task_id} until {until}" + (f" ({reason})" if reason else "")
    if remote.enabled():
        outcome = remote.revoke(task_id, terminate=terminate)
        what = _("Revoke broadcast of %(id)s") % {"id": task_id}
        said = say(request, outcome, what)
        text += f"; broadcast{' with terminate' if terminate else ''}: {said}"
        audit.info("admin by %s: revoke of %s broadcast: %s", user, task_id, scrub(said))
    log_action(request, task_id, text + ".", CHANGE)
    return HttpResponseRedirect(
        reverse("admin:sqs_broker_dashboard_task") + "?" + urlencode({"id": task_id})
    )


# --- rate limit ---


def rate_limit(model_admin: Admin, request: HttpRequest) -> HttpResponse:
    """GET: the rate-limit form for a task; POST (``confirm`` = the task name): set it."""
    data = request.POST if request.method == "POST" else request.GET
    task_name = data.get("task", "").strip()
    rate = data.get("rate", "").strip()
    hostname = data.get("worker", "").strip()
    error = None
    if task_name and not TASK_NAME.match(task_name):
        error = _("A task name is 1 to 255 characters without spaces, e.g. billing.tasks.charge.")
    elif request.method == "POST":
        if not task_name or data.get("confirm") != task_name:
            error = _("Nothing was changed: confirm on this page which task to limit.")
        elif not RATE.match(rate):
            error = _(
                "The rate must be a number of tasks per second, or per s, m or h: 10, 10/m, "
                "100/h; 0 removes the limit."
            )
        elif remote.enabled():
            outcome = remote.rate_limit(task_name, rate, [hostname] if hostname else None)
            where = hostname or "every worker"
            what = _("Rate limit of %(task)s set to %(rate)s on %(where)s") % {
                "task": task_name,
                "rate": rate,
                "where": hostname or _("every worker"),
            }
            said = say(request, outcome, what)
            _record(
                request,
                task_name,
                f"Rate limit of task {task_name} set to {rate} on {where}: {said}.",
            )
            return _to_workers()
    page = _page(
        model_admin,
        request,
        _("Set the rate limit of %(task)s?") % {"task": task_name}
        if task_name
        else _("Set a task's rate limit"),
        task_name=task_name,
        rate=rate,
        hostname=hostname,
        form_error=error,
    )
    status = 400 if error else 200
    return TemplateResponse(request, "sqs_broker/confirm_rate_limit.html", page, status=status)


# --- one worker: its pool, its shutdown ---


def _heartbeat(hostname: str) -> WorkerHeartbeat | None:
    return WorkerHeartbeat.objects.filter(hostname=hostname).first()


def pool(model_admin: Admin, request: HttpRequest, hostname: str) -> HttpResponse:
    """GET: grow or shrink a worker's pool; POST (``confirm`` = the hostname): do it."""
    beat = _heartbeat(hostname)
    data = request.POST if request.method == "POST" else request.GET
    direction = data.get("direction", "grow")
    error = None
    try:
        n = int(data.get("n", "1"))
    except ValueError:
        n = 0
    if direction not in ("grow", "shrink") or not 1 <= n <= MAX_RESIZE:
        error = _("Grow or shrink by a whole number from 1 to %(max)s.") % {"max": MAX_RESIZE}
    elif request.method == "POST" and data.get("confirm") != hostname:
        error = _("Nothing was changed: confirm on this page which worker to resize.")
    resizable = beat is None or beat.pool in remote.RESIZABLE_POOLS
    if request.method == "POST" and error is None and resizable and remote.enabled():
        by = n if direction == "grow" else -n
        outcome = remote.resize_pool(hostname, by)
        what = (
            _("Pool of %(worker)s grown by %(n)s")
            if by > 0
            else _("Pool of %(worker)s shrunk by %(n)s")
        ) % {"worker": hostname, "n": n}
        said = say(request, outcome, what)
        _record(request, hostname, f"Pool of worker {hostname}: {direction} by {n}: {said}.")
        return _to_workers()
    page = _page(
        model_admin,
        request,
        _("Resize the pool of %(worker)s?") % {"worker": hostname},
        hostname=hostname,
        beat=beat,
        resizable=resizable,
        direction=direction,
        n=n or 1,
        max_resize=MAX_RESIZE,
        form_error=error,
    )
    status = 400 if error else 200
    return TemplateResponse(request, "sqs_broker/confirm_pool.html", page, status=status)


def shutdown(model_admin: Admin, request: HttpRequest, hostname: str) -> HttpResponse:
    """GET: what a shutdown does; POST (the hostname typed): shut the worker down warmly."""
    mistyped = request.method == "POST" and request.POST.get("confirm", "").strip() != hostname
    if request.method == "POST" and not mistyped and remote.enabled():
        outcome = remote.shutdown(hostname)
        what = _("Shutdown of %(worker)s") % {"worker": hostname}
        said = say(request, outcome, what)
        _record(request, hostname, f"Shutdown of worker {hostname}: {said}.")
        return _to_workers()
    page = _page(
        model_admin,
        request,
        _("Shut down %(worker)s?") % {"worker": hostname},
        hostname=hostname,
        beat=_heartbeat(hostname),
        mistyped=mistyped,
    )
    status = 400 if mistyped else 200
    return TemplateResponse(request, "sqs_broker/confirm_shutdown.html", page, status=status)
