"""What the action commands share: the owned-queue rule, the typed confirmation, the audit line,
and Ctrl-C held off while SQS is changing a queue."""

from __future__ import annotations

import getpass
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from django.core.management.base import CommandError

from sqs_broker import actions
from sqs_broker.management.commands._base import EXIT_INTERRUPTED, EXIT_USAGE
from sqs_broker.sqs import QueueState
from sqs_broker.topology import Topology


def owned(name: str, topo: Topology) -> QueueState:
    """A fresh state of ``name``, or a CommandError when the app does not own it or SQS fails."""
    state = actions.owned_state(name, topo)
    if state is None:
        raise CommandError(
            f"{name} is not a queue of this app (declared, predefined, or their dead-letter "
            "queue); queues found only under the prefix are never changed.",
            returncode=EXIT_USAGE,
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
    try:
        # The prompt is inside the try: a Ctrl-C right after it is printed is still "at the prompt".
        out.write(f"{what.capitalize()}? Type the queue's name ({name}) to confirm: ", ending="")
        out.flush()
        typed = stdin.readline()
    except KeyboardInterrupt:
        out.write("")  # the prompt's line ends before the refusal
        raise CommandError(
            "Interrupted at the prompt: nothing was done.", returncode=EXIT_INTERRUPTED
        ) from None
    if not (hasattr(stdin, "isatty") and stdin.isatty()):
        # A terminal echoes the typed line and its newline; piped input is not echoed,
        # so end the prompt's line before the result or the refusal is printed.
        out.write("")
    if typed.strip() != name:
        raise CommandError(
            "The name typed does not match: nothing was done (type the queue's name, or "
            "pass --yes).",
            returncode=EXIT_USAGE,
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


class HeldInterrupt:
    """Ctrl-C during a change to a queue: held until the change and its audit line are done.

    The first Ctrl-C is noted (:attr:`pressed`) and said on ``err``; the code
    asks :attr:`pressed` when the change is recorded. Inside :meth:`may_stop`
    (a wait for SQS's answer) a second Ctrl-C raises ``KeyboardInterrupt`` at
    once: the caller then records that the outcome is unknown. Anywhere else it
    is noted too, so an audit line being written is never cut short.
    """

    def __init__(self, err: Any) -> None:
        self.err = err
        self.pressed = 0
        self._stoppable = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.pressed += 1
        if self.pressed == 1:
            self.err.write(
                "Ctrl-C: finishing the change SQS was asked for and recording it, then stopping "
                "(Ctrl-C again to stop waiting for SQS's answer)."
            )
        elif self._stoppable:
            raise KeyboardInterrupt

    @contextmanager
    def may_stop(self) -> Iterator[None]:
        """A block a second Ctrl-C may stop (a request to SQS, no local bookkeeping)."""
        self._stoppable = True
        try:
            if self.pressed > 1:
                raise KeyboardInterrupt
            yield
        finally:
            self._stoppable = False


@contextmanager
def interrupts_held(err: Any) -> Iterator[HeldInterrupt]:
    """Hold Ctrl-C (SIGINT) inside the block: see :class:`HeldInterrupt`.

    Only the main thread may set a signal handler; elsewhere (a command run
    from a thread) Ctrl-C cannot reach the command and nothing is held.
    """
    held = HeldInterrupt(err)
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = signal.signal(signal.SIGINT, held)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)
