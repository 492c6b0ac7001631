"""Writes a benchmark's figures into docs/benchmarks.md, so no timing is copied by hand.

Each benchmark owns one marked section of the page::

    <!-- benchmark: NAME -->
    ...replaced whole on every write...
    <!-- /benchmark -->

:func:`write` replaces what is between the markers with the benchmark's tables, the command
that produced them, the date and the machine (CPUs, load average before and after, Python).
Everything outside the markers (how to read the figures, what they say) stays as written.
A script opts in with ``--write-docs`` (:func:`add_flag`); without it it only prints.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The page the sections live in.
PAGE = ROOT / "docs" / "benchmarks.md"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass(frozen=True)
class Table:
    """One table of a section: its header row and rows of already formatted cells."""

    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    #: A line above the table saying what it measures (optional).
    title: str = ""


@dataclass(frozen=True)
class Machine:
    """Where and when the figures were measured."""

    load_before: float
    load_after: float
    cpus: int = field(default_factory=lambda: os.cpu_count() or 0)
    python: str = field(default_factory=platform.python_version)
    when: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def since(cls, load_before: float) -> Machine:
        """The machine now, with the 1-minute load average taken before the run."""
        return cls(load_before=load_before, load_after=os.getloadavg()[0])


def load_now() -> float:
    """The 1-minute load average, to pass to :meth:`Machine.since` after the run."""
    return os.getloadavg()[0]


def markdown_table(table: Table) -> str:
    """``table`` as a Markdown table (pipes inside cells escaped)."""
    width = len(table.headers)
    for row in table.rows:
        if len(row) != width:
            raise ValueError(f"a row has {len(row)} cells, the header {width}: {list(row)}")

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [line(table.headers), "|" + "---|" * width, *(line(row) for row in table.rows)]
    if table.title:
        lines.insert(0, table.title + "\n")
    return "\n".join(lines)


def render(tables: Sequence[Table], command: str, machine: Machine) -> str:
    """The body of a section: the tables, then the command and the machine."""
    if not tables:
        raise ValueError("a section needs at least one table")
    parts = [markdown_table(t) for t in tables]
    parts.append(
        f"Measured with `{command}` on {machine.when:%Y-%m-%d %H:%M} UTC: {machine.cpus} CPUs, "
        f"load average (1 min) {machine.load_before:.2f} before and {machine.load_after:.2f} "
        f"after, Python {machine.python}."
    )
    return "\n\n".join(parts)


def markers(name: str) -> tuple[str, str]:
    """The opening and closing marker lines of section ``name``."""
    if not NAME.fullmatch(name):
        raise ValueError(f"section name {name!r}: use lower-case letters, digits, '-' and '_'")
    return f"<!-- benchmark: {name} -->", "<!-- /benchmark -->"


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with section ``name``'s content replaced by ``body``.

    A page without the section, or with it twice, or unclosed, is an error naming the
    marker to fix: a figure must never be appended where nobody reads it.
    """
    start, end = markers(name)
    pattern = re.compile(rf"^{re.escape(start)}\n.*?^{re.escape(end)}$", re.M | re.S)
    found = pattern.findall(text)
    if len(found) != 1:
        count = text.count(start)
        problem = "is missing" if count == 0 else f"appears {count} times"
        if count == 1:
            problem = f"has no closing {end} line after it"
        raise ValueError(
            f"the section {start} {problem} in the page; put the two marker lines, "
            f"{start} and {end}, once where the figures belong"
        )
    return pattern.sub(lambda _m: f"{start}\n{body.strip()}\n{end}", text)


def write(
    name: str, tables: Sequence[Table], machine: Machine, *, command: str = "", page: Path = PAGE
) -> None:
    """Replace section ``name`` of ``page`` with ``tables``, the command and the machine."""
    body = render(tables, command or command_line(), machine)
    text = page.read_text()
    page.write_text(replace_section(text, name, body))
    print(f"wrote section {name!r} of {page}", file=sys.stderr)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran this benchmark as a reader types it, without ``--write-docs``."""
    args = list(sys.argv if argv is None else argv)
    script = Path(args[0])
    if script.suffix == ".py" and script.parent.name == "benchmarks":
        program = f".venv/bin/python -m benchmarks.{script.stem}"
    else:
        program = ".venv/bin/python " + shlex.quote(args[0])
    rest = [a for a in args[1:] if a != "--write-docs"]
    return " ".join([program, *map(shlex.quote, rest)])


def add_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--write-docs`` option every benchmark script offers."""
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="also write the figures into docs/benchmarks.md's section of this benchmark "
        "(default: off, print only)",
    )
