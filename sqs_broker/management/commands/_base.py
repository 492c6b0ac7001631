"""What the ``sqs_*`` commands share: their exit statuses, usage errors, and option ranges.

Exit status of every command built on :class:`SqsCommand`: 0 done or
healthy; 1 findings, a firing alert, or SQS refused; 2 could not check (SQS
or the configuration did not answer); 64 a usage error (an unknown or
missing option, a value out of range, a queue that is not the app's, a
confirmation not given: nothing was done); 130 interrupted by Ctrl-C.
Django's own parser exits 2 on a usage error, the status a cron job or CI
reads as "could not check"; 64 is sysexits.h's ``EX_USAGE``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser

#: Findings, a firing alert, SQS refused the action.
EXIT_FINDINGS = 1
#: Could not check: SQS or the configuration did not answer.
EXIT_COULD_NOT_CHECK = 2
#: The command line was wrong (sysexits.h's EX_USAGE): nothing was done.
EXIT_USAGE = 64
#: Stopped by Ctrl-C (128 + SIGINT, what a shell reports for a process it interrupted).
EXIT_INTERRUPTED = 130


class UsageParser(CommandParser):
    """Django's parser with usage errors on :data:`EXIT_USAGE` instead of argparse's 2."""

    def error(self, message: str) -> Any:
        if self.called_from_command_line:
            self.print_usage(sys.stderr)
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")
        raise CommandError(f"Error: {message}", returncode=EXIT_USAGE)


#: Django's options every command takes, which argparse does not pass on to a subcommand:
#: ``sqs_alerts check -v 2`` would otherwise be an unknown option.
_DJANGO_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("-v", "--verbosity"), {"type": int, "choices": [0, 1, 2, 3]}),
    (("--settings",), {}),
    (("--pythonpath",), {}),
    (("--traceback",), {"action": "store_true"}),
    (("--no-color",), {"action": "store_true"}),
    (("--force-color",), {"action": "store_true"}),
)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found.append(sub)
                found.extend(_subparsers(sub))
    return found


class SqsCommand(BaseCommand):
    """A ``BaseCommand`` whose usage errors exit 64 and whose subcommands take Django's options.

    Options given to ``call_command`` as keywords skip argparse's ``type=``:
    those typed by :func:`number` are range-checked again before ``handle``.
    A Ctrl-C the command does not handle itself ends it with one line and
    :data:`EXIT_INTERRUPTED`, not a traceback.
    """

    _ranged: dict[str, tuple[str, Callable[[str], Any]]] = {}

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        subs = _subparsers(parser)
        self._ranged = {
            action.dest: (
                action.option_strings[-1] if action.option_strings else action.dest,
                cast("Callable[[str], Any]", action.type),
            )
            for each in [parser, *subs]
            for action in each._actions
            if getattr(action.type, "ranged", False)
        }
        for each in [parser, *subs]:
            # Same state, one method different: the parser Django built, built once.
            each.__class__ = UsageParser
        django_options = list(_DJANGO_OPTIONS)
        if self.requires_system_checks:
            django_options.append((("--skip-checks",), {"action": "store_true"}))
        for sub in subs:
            for flags, extra in django_options:
                # SUPPRESS: given after the subcommand, it is set; not given, the value
                # parsed before the subcommand (or Django's default) stays.
                sub.add_argument(*flags, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **extra)
        return parser

    def execute(self, *args: Any, **options: Any) -> Any:
        for dest, (flag, parse) in self._ranged.items():
            value = options.get(dest)
            if value is not None:
                try:
                    parse(str(value))
                except argparse.ArgumentTypeError as exc:
                    raise CommandError(
                        f"Error: argument {flag}: {exc}", returncode=EXIT_USAGE
                    ) from None
        try:
            return super().execute(*args, **options)
        except KeyboardInterrupt:
            raise CommandError("Interrupted.", returncode=EXIT_INTERRUPTED) from None


def number(
    kind: Callable[[str], float] | type[int],
    low: float | None = None,
    high: float | None = None,
    unit: str = "",
) -> Callable[[str], Any]:
    """An argparse ``type=`` that accepts a finite ``kind`` from ``low`` to ``high`` (inclusive).

    argparse names the option in its error: ``argument --interval: must be a
    number of seconds from 0.1 to 86400; got 1e-300``.
    """
    what = "a whole number" if kind is int else "a number"
    if unit:
        what += f" of {unit}"
    if low is not None and high is not None:
        bounds = f" from {low:g} to {high:g}"
    elif low is not None:
        bounds = f" of {low:g} or more"
    elif high is not None:
        bounds = f" of {high:g} or less"
    else:
        bounds = ""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}{bounds}; got {text!r}") from None
        if (
            not math.isfinite(value)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            raise argparse.ArgumentTypeError(f"must be {what}{bounds}; got {text}")
        return value

    parse.__name__ = what  # argparse's fallback message names the type
    parse.ranged = True  # type: ignore[attr-defined]
    return parse


#: The shortest --interval: a pass every 0.1 s is already a load on SQS and the database;
#: below it (``1e-300``) a loop does nothing but call SQS.
MIN_INTERVAL = 0.1
#: The longest --interval: a day (a longer one is a cron job's work).
MAX_INTERVAL = 86400.0
#: The widest --indent that still reads as JSON (and cannot fill a disk with spaces).
MAX_INDENT = 8

interval_seconds = number(float, MIN_INTERVAL, MAX_INTERVAL, "seconds")
