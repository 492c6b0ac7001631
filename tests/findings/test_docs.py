"""sqs_broker.findings.docs: docs/findings.md's table of ids is what the catalogue writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sqs_broker.findings import docs, live, url
from sqs_broker.findings.catalogue import CATALOGUE
from tests.support import ROOT


def test_page__is_what_the_catalogue_writes() -> None:
    """docs/findings.md's table equals the one written now (else: scripts/findings_docs.py)."""
    text = docs.PAGE.read_text()
    assert docs.rewritten(text) == text, "docs/findings.md is stale: run scripts/findings_docs.py"


def test_table__every_catalogued_id_once_in_catalogue_order() -> None:
    """One row per catalogued id, in the catalogue's order, with its level and caveat."""
    rows = docs.table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == list(CATALOGUE)
    assert rows[0].startswith("| `sqs_broker.E001` | error | offline | `url` | DEBUG is on")


def test_raised_by__follows_helpers_and_tables() -> None:
    """A check's ids include those of the helpers it calls and the id tables they read."""
    found = docs.raised_by(live.queue_findings)
    assert found["sqs_broker.E006"] == {"sqs_broker.findings.visibility"}
    assert found["sqs_broker.E017"] == {"sqs_broker.findings.failures"}
    assert "sqs_broker.W016" in found
    # make() checks every id against the catalogue: that is no reason to list them all.
    assert "sqs_broker.E001" not in found
    assert set(docs.raised_by(url.not_sqs)) == {"sqs_broker.W001"}


def test_where__offline_and_online_checks() -> None:
    """An id an offline and a queue check can both raise is listed under both."""
    table = {row.split("`")[1]: row for row in docs.table().splitlines()[2:]}
    assert "| offline, online | `visibility` |" in table["sqs_broker.E006"]
    assert "| online | `live` |" in table["sqs_broker.W016"]


def test_rewritten__without_markers_is_an_error() -> None:
    """A page that lost its markers is refused with the lines to put back."""
    with pytest.raises(ValueError, match="<!-- findings: ids --> and <!-- /findings -->"):
        docs.rewritten("# Findings\n\nno table\n")


def test_main__check_then_write(tmp_path: Path) -> None:
    """--check exits 1 on a stale page and changes nothing; without it the page is rewritten."""
    page = tmp_path / "findings.md"
    stale = "# Findings\n\n<!-- findings: ids -->\n| old |\n<!-- /findings -->\n\nAfter.\n"
    page.write_text(stale)
    assert docs.main(["--check", "--page", str(page)]) == 1
    assert page.read_text() == stale
    assert docs.main(["--page", str(page)]) == 0
    assert page.read_text().endswith("<!-- /findings -->\n\nAfter.\n")
    assert docs.main(["--check", "--page", str(page)]) == 0


def test_script__runs_without_a_django_project() -> None:
    """scripts/findings_docs.py needs no DJANGO_SETTINGS_MODULE (nor manage.py)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "findings_docs.py"), "--check"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
