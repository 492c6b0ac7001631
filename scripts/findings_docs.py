#!/usr/bin/env python3
"""Writes docs/findings.md's table of ids from the catalogue (sqs_broker.findings.docs).

    .venv/bin/python scripts/findings_docs.py           # rewrite the table
    .venv/bin/python scripts/findings_docs.py --check   # exit 1 when the page is out of date

The findings package translates its messages, so Django's settings must exist before it is
imported; the table needs none of the project's, so bare defaults are configured here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure()

from sqs_broker.findings.docs import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
