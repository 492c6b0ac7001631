"""sqs_broker.findings.catalogue: every id in code, catalogue and docs, with its level."""

from __future__ import annotations

import re
from pathlib import Path

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
from sqs_broker import findings
from tests.support import ROOT


def test_catalogue__every_id_in_code_is_catalogued_and_documented() -> None:
    """Ids in findings.py, CATALOGUE and docs/findings.md are the same set, with levels."""
    source = "".join(p.read_text() for p in sorted((ROOT / "sqs_broker" / "findings").glob("*.py")))
    in_code = set(re.findall(r'"(sqs_broker\.[EWI]\d{3})"', source))
    table = dict(re.findall(r"^\| `(sqs_broker\.[EWI]\d{3})` \| (\w+) \|", _docs(), flags=re.M))
    assert in_code == set(findings.CATALOGUE)
    assert set(table) == set(findings.CATALOGUE)
    for finding_id, level in table.items():
        assert findings.make(finding_id, "m", "h").level == level, finding_id


def _docs() -> str:
    return (Path(ROOT) / "docs" / "findings.md").read_text()
