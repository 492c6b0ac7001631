"""docs/findings.md's table of ids, written from the catalogue and the registered checks.

    .venv/bin/python scripts/findings_docs.py            # rewrite the table in docs/findings.md
    .venv/bin/python scripts/findings_docs.py --check    # exit 1 when the page differs, else 0

(The script configures bare Django settings first: the topic modules mark their messages for
translation at import, which needs settings; the table itself needs none of a project's, and no
network. ``python -m sqs_broker.findings.docs`` works where ``DJANGO_SETTINGS_MODULE`` is set.)

Each row is one :data:`~sqs_broker.findings.catalogue.CATALOGUE` entry: the id, its level
(from the letter), where it is raised (``offline`` when an offline check can return it,
``online`` when an access, queue or account check can, ``measured`` when it is judged
from telemetry and samples: on the dashboard, in ``stats.json`` and ``sqs_check``), the topic
module that makes it, and the caveat. "Where" is read from the registry: the registered checks'
code, and the functions and constants of this package it uses, are searched for each id, so the
column follows the code.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import CodeType, FunctionType
from typing import Any

from sqs_broker.findings import base
from sqs_broker.findings.catalogue import CATALOGUE, UNCHECKABLE

#: The page the table lives in, when this package runs from a checkout.
PAGE = Path(__file__).resolve().parents[2] / "docs" / "findings.md"
START, END = "<!-- findings: ids -->", "<!-- /findings -->"
FINDING_ID = re.compile(r"sqs_broker\.[EWI]\d{3}")
#: How a registry stage reads in the table.
WHERE: dict[base.Stage, str] = {
    "offline": "offline",
    "access": "online",
    "queue": "online",
    "account": "online",
    "measured": "measured",
}
PACKAGE = "sqs_broker.findings"
#: Modules that name every id (the catalogue, and ``make`` checking against it): not followed.
NOT_FOLLOWED = (f"{PACKAGE}.base", f"{PACKAGE}.catalogue")


def _codes(code: CodeType) -> Iterator[CodeType]:
    """``code`` and the code objects nested in it (comprehensions, inner functions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _codes(const)


def _strings(value: Any) -> Iterator[str]:
    """Every string in ``value``, looking into tuples, lists, sets and dicts."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.items():
            yield from _strings(item)
    elif isinstance(value, tuple | list | set | frozenset):
        for item in value:
            yield from _strings(item)


def raised_by(function: Callable[..., Any]) -> dict[str, set[str]]:
    """The ids ``function`` can make, each with the modules whose code names it.

    Follows the functions of this package that ``function`` calls by their global name, and
    the constants it reads (a table of ids, say), as far as they go.
    """
    found: dict[str, set[str]] = {}
    seen: set[int] = set()
    pending: list[Callable[..., Any]] = [function]
    while pending:
        current = pending.pop()
        if id(current) in seen or not isinstance(current, FunctionType):
            continue
        seen.add(id(current))
        module = current.__module__
        for code in _codes(current.__code__):
            for text in _strings(code.co_consts):
                for finding_id in FINDING_ID.findall(text):
                    found.setdefault(finding_id, set()).add(module)
            for name in code.co_names:
                target = current.__globals__.get(name)
                if target is CATALOGUE or target is UNCHECKABLE:
                    continue
                if isinstance(target, FunctionType):
                    if target.__module__.startswith(PACKAGE) and target.__module__ not in (
                        NOT_FOLLOWED
                    ):
                        pending.append(target)
                elif isinstance(target, dict | tuple | list | frozenset):
                    for text in _strings(target):
                        for finding_id in FINDING_ID.findall(text):
                            found.setdefault(finding_id, set()).add(module)
    return found


def where_and_module(checks: Iterable[base.Check]) -> dict[str, tuple[list[str], list[str]]]:
    """For each id the registered ``checks`` can raise: the stages and the topic modules."""
    stages: dict[str, set[str]] = {}
    modules: dict[str, set[str]] = {}
    for check in checks:
        for finding_id, found_in in raised_by(check.function).items():
            stages.setdefault(finding_id, set()).add(WHERE.get(check.stage, check.stage))
            modules.setdefault(finding_id, set()).update(found_in)
    order = list(WHERE.values())
    return {
        finding_id: (
            sorted(stages[finding_id], key=lambda s: order.index(s) if s in order else len(order)),
            sorted(m.removeprefix(PACKAGE + ".") for m in modules[finding_id]),
        )
        for finding_id in stages
    }


def table() -> str:
    """The Markdown table of every catalogued id, in catalogue order.

    Every topic module is registered by then: importing this module ran the package's
    ``__init__``, which imports them all.
    """
    checks = {
        check
        for stage in WHERE
        for is_sqs in (True, False)
        for check in base.registered(stage, is_sqs)
    }
    found = where_and_module(checks)
    lines = [
        "| id | level | where | module | the caveat it guards |",
        "|---|---|---|---|---|",
    ]
    for finding_id, caveat in CATALOGUE.items():
        level = base.make(finding_id, "", "").level
        if finding_id in found:
            stages, modules = found[finding_id]
            where = ", ".join(stages)
            module = ", ".join(f"`{m}`" for m in modules)
        else:
            # Catalogued but made outside the registered checks: sqs_check never reports it.
            where, module = "not by `sqs_check`", "—"
        cell = caveat.replace("|", "\\|")
        lines.append(f"| `{finding_id}` | {level} | {where} | {module} | {cell} |")
    return "\n".join(lines)


def rewritten(text: str) -> str:
    """``text`` (the page) with the table between its markers replaced by :func:`table`."""
    pattern = re.compile(rf"^{re.escape(START)}\n.*?^{re.escape(END)}$", re.M | re.S)
    if len(pattern.findall(text)) != 1:
        raise ValueError(
            f"docs/findings.md needs the lines {START} and {END} once around the table of ids"
        )
    return pattern.sub(lambda _m: f"{START}\n{table()}\n{END}", text)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the page, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 when the page differs from what would be written "
        "(default: rewrite it)",
    )
    parser.add_argument("--page", type=Path, default=PAGE, help=f"the page (default {PAGE})")
    args = parser.parse_args(argv)
    text = args.page.read_text()
    new = rewritten(text)
    if args.check:
        if new != text:
            print(f"{args.page} is out of date: run scripts/findings_docs.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        args.page.write_text(new)
        print(f"wrote the table of ids in {args.page}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
