"""What the browser tests share: Debian's chromium, its marks, and the CSP watcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

#: Debian's chromium (scripts/bootstrap installs it with SQS_BROKER_BROWSER=1); Playwright
#: never downloads a browser here.
CHROMIUM = "/usr/bin/chromium"

#: The marks of a module of browser tests.
MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]

#: Records every CSP violation the page reports, before any of its scripts run.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless, as a container runs it."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
