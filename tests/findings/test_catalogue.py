"""sqs_broker.findings.catalogue: every id in code is catalogued, with its level."""

from __future__ import annotations

import re

import project.demo.tasks  # noqa: F401 - registers the demo tasks on every app
from sqs_broker import findings
from tests.support import ROOT


def test_catalogue__every_id_in_code_is_catalogued() -> None:
    """Ids named in the findings package and CATALOGUE are the same set; levels follow letters.

    docs/findings.md's table is written from the catalogue (tests/findings/test_docs.py).
    """
    source = "".join(p.read_text() for p in sorted((ROOT / "sqs_broker" / "findings").glob("*.py")))
    in_code = set(re.findall(r'"(sqs_broker\.[EWI]\d{3})"', source))
    assert in_code == set(findings.CATALOGUE)
    letters = {"E": "error", "W": "warning", "I": "info"}
    for finding_id in findings.CATALOGUE:
        expected = letters[finding_id.rsplit(".", 1)[1][0]]
        assert findings.make(finding_id, "m", "h").level == expected, finding_id
