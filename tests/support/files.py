"""A copy of the files a fresh clone would have, for the packaging and stack tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support import ROOT


def fresh_copy(target: Path) -> Path:
    """The files a clone would have (tracked, plus new ones git does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target
