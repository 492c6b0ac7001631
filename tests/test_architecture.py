"""docs/architecture.md's module map kept equal to the tree of sqs_broker/."""

from __future__ import annotations

import re
from pathlib import Path

from tests.contracts import PACKAGE, ROOT

DOC = ROOT / "docs" / "architecture.md"


def _map_rows() -> dict[str, str]:
    """Each name of the map's first column (``x.py`` or ``x/``) with its row's text."""
    text = DOC.read_text()
    section = text.split("## The module map", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            rows[name] = cells[1]
    return rows


def _tree() -> tuple[set[str], dict[str, set[str]]]:
    """Top-level modules (``x.py``) and, per package directory (``x/``), its modules' names."""
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    packages: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        folder = path.parent.relative_to(PACKAGE)
        if folder == Path(".") or "migrations" in folder.parts:
            continue
        names = packages.setdefault(f"{folder.as_posix()}/", set())
        if path.name != "__init__.py":
            names.add(path.stem)
    # A package holding only packages (management/) is named by its inner one.
    return modules, {folder: names for folder, names in packages.items() if names}


def test_module_map__lists_every_module() -> None:
    """Every module and package is a row; a package's row names each of its modules."""
    rows = _map_rows()
    modules, packages = _tree()
    assert sorted(modules - rows.keys()) == []
    assert sorted(packages.keys() - rows.keys()) == []
    unnamed = {
        folder: sorted(n for n in names if f"`{n}`" not in rows[folder])
        for folder, names in packages.items()
    }
    assert {folder: names for folder, names in unnamed.items() if names} == {}


def test_module_map__every_listed_module_exists() -> None:
    """No row names a module or package that is not in the tree."""
    missing = [name for name in _map_rows() if not (PACKAGE / name).exists()]
    assert missing == []
