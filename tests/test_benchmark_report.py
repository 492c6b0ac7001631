"""benchmarks/report.py: a benchmark's figures replace its marked section of docs/benchmarks.md."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks import report
from tests.support import ROOT

MACHINE = report.Machine(
    load_before=1.5,
    load_after=2.25,
    cpus=2,
    python="3.11.7",
    when=datetime(2026, 12, 6, 19, 40, tzinfo=UTC),
)
PAGE = """# Benchmarks

Prose before.

<!-- benchmark: alpha -->
| old | table |
|---|---|
| 1 | 2 |
<!-- /benchmark -->

Prose between.

<!-- benchmark: beta -->
untouched
<!-- /benchmark -->
"""


def test_replace_section__replaces_only_between_its_markers() -> None:
    """The named section's content changes; the prose and the other section stay as written."""
    result = report.replace_section(PAGE, "alpha", "NEW BODY\n")
    assert result == PAGE.replace("| old | table |\n|---|---|\n| 1 | 2 |\n", "NEW BODY\n")
    assert report.replace_section(result, "alpha", "NEW BODY") == result


def test_replace_section__missing_section_names_the_markers() -> None:
    """A page without the section is an error saying which two lines to add."""
    with pytest.raises(
        ValueError, match=r"<!-- benchmark: gamma --> is missing.*<!-- /benchmark -->"
    ):
        report.replace_section(PAGE, "gamma", "body")


def test_replace_section__section_twice_is_an_error() -> None:
    """Two sections of one name would leave one stale: refused."""
    doubled = PAGE + "\n<!-- benchmark: beta -->\nagain\n<!-- /benchmark -->\n"
    with pytest.raises(ValueError, match="appears 2 times"):
        report.replace_section(doubled, "beta", "body")


def test_replace_section__unclosed_section_is_an_error() -> None:
    """An opening marker without its closing line is refused, not read to the end of the page."""
    with pytest.raises(ValueError, match="no closing"):
        report.replace_section("<!-- benchmark: alpha -->\n| a |\n", "alpha", "body")


def test_markers__name_checked() -> None:
    """A section name that could not be a marker is refused."""
    with pytest.raises(ValueError, match="section name"):
        report.markers("Two Words")


def test_markdown_table__rows_as_wide_as_the_header() -> None:
    """Cells are joined with pipes, a pipe in a cell escaped; a short row is an error."""
    table = report.Table(["case", "figure"], [["a|b", 1.5]], title="What it measures.")
    assert report.markdown_table(table) == (
        "What it measures.\n\n| case | figure |\n|---|---|\n| a\\|b | 1.5 |"
    )
    with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
        report.markdown_table(report.Table(["case", "figure"], [["a"]]))


def test_render__tables_then_command_date_and_load() -> None:
    """The section ends with the command, the date, the CPUs, the load before and after."""
    body = report.render([report.Table(["a"], [[1]])], "python -m benchmarks.x --n 3", MACHINE)
    assert body == (
        "| a |\n|---|\n| 1 |\n\n"
        "Measured with `python -m benchmarks.x --n 3` on 2026-12-06 19:40 UTC: 2 CPUs, "
        "load average (1 min) 1.50 before and 2.25 after, Python 3.11.7."
    )


def test_write__rewrites_the_page_in_place(tmp_path: Path) -> None:
    """write() replaces the section in the file and leaves the rest byte for byte."""
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE)
    table = report.Table(["case", "s"], [["one", "0.10"]])
    report.write("beta", [table], MACHINE, command="cmd", page=page)
    text = page.read_text()
    assert text.startswith(PAGE.split("<!-- benchmark: beta -->")[0])
    assert "| one | 0.10 |" in text and "untouched" not in text
    assert "Measured with `cmd` on 2026-12-06 19:40 UTC" in text


def test_command_line__as_a_reader_types_it() -> None:
    """A script's path becomes its ``-m`` form; ``--write-docs`` is left out, arguments kept."""
    argv = [str(ROOT / "benchmarks" / "scale.py"), "--quick", "--write-docs", "--cases", "a b"]
    assert report.command_line(argv) == ".venv/bin/python -m benchmarks.scale --quick --cases 'a b'"


def test_page__has_the_section_of_every_benchmark_that_writes() -> None:
    """Each name a script writes has its section in docs/benchmarks.md (no failure after a run)."""
    source = "".join(p.read_text() for p in (ROOT / "benchmarks").glob("*.py"))
    names = set(re.findall(r'report\.write\(\s*"([a-z0-9_-]+)"', source))
    assert {"run", "scale", "dashboard_fetch", "load_stats", "telemetry_overhead"} <= names
    page = report.PAGE.read_text()
    for name in names:
        start, end = report.markers(name)
        assert page.count(start) == 1, start
        report.replace_section(page, name, "x")  # closed, and once


def test_doc_tables__run_and_scale_outputs() -> None:
    """benchmarks.run and benchmarks.scale turn their JSON into tables of even width."""
    from benchmarks import run, scale

    speed = {"tasks_per_s": 10.0, "requests_per_task": 0.5}
    latency = {
        "latency": {"mean_s": 0.01, "share_over_100ms": 0.02, "samples": 300},
        "idle_receives_per_queue_hour": 164.0,
        "idle_usd_per_queue_month": 0.05,
    }
    out = {
        "publish": {"delay": speed, "batch": speed},
        "publish_50ms": {"delay": speed, "batch": speed},
        "end_to_end": dict.fromkeys(run.E2E_LABELS, speed),
        "latency_idle": {"stock": latency, "project": latency},
        "backlog": {key: {**speed, "tasks": 600} for key in run.BACKLOG_LABELS},
        "dashboard": {"1": {"queues": 1, "added_latency_ms": 0, "wall_s": 0.01, "requests": 1}},
    }
    tables = run.doc_tables(out)
    assert [t.headers[0] for t in tables][3] == "backlog (600 tasks, prefork -c 2, local-aws-sqs)"
    for table in tables:
        report.markdown_table(table)
    scale_out = {
        "server": "moto",
        "database": "sqlite",
        "latency": 0.0,
        "data": {"task_counters": 10, "queue_samples": 20, "seconds": 1},
        "publish": {
            "tasks": 100,
            "added_latency_ms": 20,
            "one_at_a_time": {"seconds": 2.0},
            "concurrent": {"concurrency": 8, "seconds": 0.5},
            "speedup": 4.0,
            "fifo": {"groups": 10, "each_group_in_order": True, "seconds": 1.0},
        },
    }
    tables = scale.doc_tables(scale_out)
    assert tables[-1].rows[1] == ["8 batches at a time", "0.50", "×4.0"]
    for table in tables:
        report.markdown_table(table)
