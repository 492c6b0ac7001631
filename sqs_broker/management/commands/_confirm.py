"""What the action commands share: the owned-queue rule, the typed confirmation, the audit line."""

from __future__ import annotations

import getpass
import logging
import sys
from typing import Any

from django.core.management.base import CommandError

from sqs_broker import actions
from sqs_broker.sqs import QueueState
from sqs_broker.topology import Topology


def owned(name: str, topo: Topology) -> QueueState:
    """A fresh state of ``name``, or a CommandError when the app does not own it or SQS fails."""
    state = actions.owned_state(name, topo)
    if state is None:
        raise CommandError(
            f"{name} is not a queue of this app (declared, predefined, or their dead-letter "
            "queue); queues found only under the prefix are never changed.",
            returncode=2,
        )
    if state.error:
        raise CommandError(f"{name}: {state.error}", returncode=1)
    return state


def confirm(name: str, what: str, options: dict[str, Any], out: Any) -> None:
    """Go on with ``--yes``, or when the queue's name is typed; else a CommandError.

    The name is read from standard input (``options["stdin"]`` when given), so
    ``echo celery | manage.py sqs_purge celery`` is a typed confirmation too; an
    empty input (no terminal, nothing piped) refuses.
    """
    if options.get("yes"):
        return
    stdin = options.get("stdin") or sys.stdin
    out.write(f"{what.capitalize()}? Type the queue's name ({name}) to confirm: ", ending="")
    out.flush()
    typed = stdin.readline()
    if not (hasattr(stdin, "isatty") and stdin.isatty()):
        # A terminal echoes the typed line and its newline; piped input is not echoed,
        # so end the prompt's line before the result or the refusal is printed.
        out.write("")
    if typed.strip() != name:
        raise CommandError(
            "The name typed does not match: nothing was done (type the queue's name, or "
            "pass --yes).",
            returncode=2,
        )


#: Where the action commands record what they changed. A shell has no Django user to write
#: the admin's LogEntry for, so the record goes to the project's logging instead.
audit_logger = logging.getLogger("sqs_broker.audit")


def audit(command: str, text: str) -> None:
    """Record ``text`` (what was done to what, how many messages) with the command and OS user."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        who = "?"
    audit_logger.info("%s by %s: %s", command, who, text)
